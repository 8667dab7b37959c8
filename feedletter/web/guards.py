"""What the web app checks and adds on every request: same-site form posts, bounded bodies, the
security headers, and redirects that point at ``site.base_url`` whatever the ``Host`` header says.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The static archive's pages: their own inline styles, pictures from the stories' sites, nothing else.
ARCHIVE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def cross_site(request: Request, own: str) -> bool:
    """Whether a form post came from a page not on ``own`` (the site's origin).

    Browsers send ``Origin`` with every form POST (``null`` from a sandbox or a no-referrer page: not
    ours), older ones at least a ``Referer``. A request with neither comes from no browser, so not
    from a page that could make a visitor post unknowingly.
    """
    sent = request.headers.get("origin")
    if sent is not None:
        return sent.strip().lower() != own
    referer = request.headers.get("referer")
    if not referer:
        return False
    return origin(referer) != own


async def read_body(request: Request, limit: int) -> bytes | None:
    """The body, read as it streams in; None as soon as it passes ``limit`` bytes (with or without a
    Content-Length), so a huge or endless chunked body costs at most ``limit`` and one chunk."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


class SafeResponses:
    """ASGI middleware: adds ``defaults`` to responses that lack them (the archive's files) and makes
    every redirect's ``Location`` start with ``base_url``: Starlette builds it from the request's
    ``Host``, which anyone can set."""

    def __init__(self, app: ASGIApp, base_url: str, defaults: dict[str, str]) -> None:
        self.app, self.base, self.defaults = app, base_url.rstrip("/"), defaults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def patched(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.defaults.items():
                    if name not in headers:
                        headers[name] = value
                if "location" in headers:
                    headers["location"] = self.rebase(headers["location"], scope.get("root_path", ""))
            await send(message)

        await self.app(scope, receive, patched)

    def rebase(self, location: str, root_path: str) -> str:
        parts = urlsplit(location)
        if not parts.netloc and not location.startswith("/"):
            return location  # relative to the page: no host in it
        path = parts.path.removeprefix(root_path) if root_path else parts.path
        return f"{self.base}{path if path.startswith('/') else '/' + path}" + (f"?{parts.query}" if parts.query else "")
