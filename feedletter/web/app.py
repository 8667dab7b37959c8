"""The small web app behind ``feedletter web``: subscribe, confirm, one-click unsubscribe, the archive.

Routes:

- ``POST /unsubscribe/{token}``: unsubscribes at once and answers 200. Mail providers send it for
  RFC 8058 one-click (body ``List-Unsubscribe=One-Click``); the confirm page's button sends it too.
  The signed token is the authority, so the body's encoding (urlencoded or multipart) does not matter.
- ``GET /unsubscribe/{token}``: a page with an Unsubscribe button. It changes nothing, because mail
  scanners open every link in a message.
- ``GET|POST /unsubscribe/test-send``: the link of test sends and previews; says nobody was unsubscribed.
- ``GET /confirm/{token}``: activates a pending subscriber (double opt-in).
- ``GET /subscribe?newsletter=NAME`` shows a form; ``POST /subscribe`` (``email``, ``newsletter``,
  optional ``name``) records a pending subscriber and mails the confirm link.
- everything else: the static archive from ``site.archive_dir``.

Token URLs are never cached and never leak as a Referer.
"""

from __future__ import annotations

import contextlib
import html
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from feedletter import subscribers
from feedletter.config import Config
from feedletter.errors import ConfigError, DeliveryError
from feedletter.store import Store
from feedletter.subscribers import SubscriberError
from feedletter.web import optin

MAX_FORM_BYTES = 16 * 1024
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex",
            "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                                       "frame-ancestors 'none'"}


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    """A plain page; ``body`` is HTML built by the caller from escaped values."""
    document = (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        "<meta name=\"color-scheme\" content=\"light dark\">"
        f"<title>{html.escape(title)}</title><style>body{{font-family:-apple-system,'Segoe UI',Roboto,"
        "Helvetica,Arial,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;line-height:1.5}"
        "button{font-size:1rem;padding:.6rem 1.2rem;border:0;border-radius:4px;background:#1d5fa8;"
        "color:#fff;cursor:pointer}input{font-size:1rem;padding:.4rem;width:100%;box-sizing:border-box;"
        "margin:.2rem 0 .8rem}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>")
    return HTMLResponse(document, status_code=status, headers=_HEADERS)


class WebApp:
    """The endpoints, bound to a config and a store (database calls run in a worker thread)."""

    def __init__(self, config: Config, store: Store,
                 mailers: optin.MailerFactory = optin.confirmation_mailer) -> None:
        self.config = config
        self.store = store
        self.mailers = mailers

    def _title(self, newsletter: str) -> str:
        found = [n.title for n in self.config.newsletters if n.name == newsletter]
        return found[0] if found else newsletter

    async def unsubscribe_page(self, request: Request) -> Response:
        token = request.path_params["token"]
        try:
            person = await run_in_threadpool(subscribers.from_token, self.store, token, "unsubscribe")
        except SubscriberError as exc:
            return _bad_link(exc)
        title = html.escape(self._title(person.newsletter))
        if person.status == "unsubscribed":
            return _page("You are unsubscribed", f"<p>{html.escape(person.email)} no longer receives {title}.</p>")
        return _page(f"Unsubscribe from {self._title(person.newsletter)}?",
                     f"<p>{html.escape(person.email)} will receive no more issues of {title}.</p>"
                     "<form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">"
                     "<button type=\"submit\">Unsubscribe</button></form>")

    async def unsubscribe(self, request: Request) -> Response:
        try:
            person = await run_in_threadpool(subscribers.unsubscribe, self.store, request.path_params["token"])
        except SubscriberError as exc:
            return _bad_link(exc)
        return _page("You are unsubscribed", f"<p>{html.escape(person.email)} will receive no more issues of "
                                             f"{html.escape(self._title(person.newsletter))}.</p>")

    async def confirm(self, request: Request) -> Response:
        try:
            person = await run_in_threadpool(subscribers.confirm, self.store, request.path_params["token"])
        except SubscriberError as exc:
            return _bad_link(exc)
        return _page("Subscription confirmed", f"<p>{html.escape(person.email)} will receive "
                                               f"{html.escape(self._title(person.newsletter))}. Welcome!</p>")

    async def subscribe_form(self, request: Request) -> Response:
        choices = [n for n in self.config.newsletters if n.name == request.query_params.get("newsletter")] \
            or self.config.newsletters
        if not choices:
            return _page("No newsletters", "<p>There is nothing to subscribe to yet.</p>", 404)
        options = "".join(f"<option value=\"{html.escape(n.name, quote=True)}\">{html.escape(n.title)}</option>"
                          for n in choices)
        return _page("Subscribe", "<form method=\"post\" action=\"/subscribe\">"
                     f"<label>Newsletter<br><select name=\"newsletter\">{options}</select></label><br><br>"
                     "<label>Email<input type=\"email\" name=\"email\" required></label>"
                     "<label>Name (optional)<input type=\"text\" name=\"name\"></label>"
                     "<button type=\"submit\">Subscribe</button></form>")

    async def subscribe(self, request: Request) -> Response:
        if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
            return _page("Too large", "<p>That form was too large.</p>", 413)
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return _page("Unsupported form", "<p>Send the form as application/x-www-form-urlencoded.</p>", 415)
        form = {k: v[0] for k, v in parse_qs((await request.body())[:MAX_FORM_BYTES].decode("utf-8", "replace"),
                                             keep_blank_values=True).items()}
        email, newsletter = form.get("email", "").strip(), form.get("newsletter", "")
        try:
            await run_in_threadpool(optin.subscribe, self.config, self.store, newsletter, email,
                                    form.get("name", "")[:200], mailers=self.mailers)
        except ConfigError:
            return _page("Unknown newsletter", f"<p>There is no newsletter called {html.escape(newsletter)}.</p>",
                         404)
        except SubscriberError:
            return _page("Check the address", f"<p>{html.escape(email) or 'An empty address'} is not a valid "
                                              "email address.</p>", 400)
        except DeliveryError:
            return _page("Please try again later", "<p>We could not send the confirmation email just now.</p>",
                         503)
        # The same answer whether or not the address was already subscribed: the form must not
        # tell strangers who reads what.
        return _page("Check your inbox", f"<p>If {html.escape(email)} is not subscribed yet, a message with a "
                                         "confirmation link is on its way.</p>")


async def test_send_unsubscribe(request: Request) -> Response:
    """The unsubscribe link of a test send or preview (``subscribers.TEST_TOKEN``): it names nobody."""
    del request
    return _page("This was a test send", "<p>Nobody was unsubscribed: this link came in a test send or preview "
                 "of the newsletter. In a real issue, it unsubscribes the reader it was sent to.</p>")


def _bad_link(exc: SubscriberError) -> Response:
    if exc.thing != "token":  # about the person, e.g. a confirm link used after unsubscribing
        return _page("This link does not work", f"<p>{html.escape(exc.thing)} {html.escape(exc.problem)}.</p>", 409)
    if "no such subscriber" in exc.problem:
        return _page("This link does not work", "<p>This address is no longer on our list.</p>", 404)
    reason = "has expired" if exc.problem == "expired" else "is not valid"
    return _page("This link does not work", f"<p>The link {reason}. Please use the link from your most recent "
                                            "email.</p>", 400)


def create_app(config: Config, store: Store, *,
               mailers: optin.MailerFactory = optin.confirmation_mailer) -> Starlette:
    web = WebApp(config, store, mailers)
    archive = config.resolve(config.site.archive_dir)
    # StaticFiles fails every request when its folder is missing; the archive may simply not be
    # written yet, so make the folder and let it answer 404 until then.
    with contextlib.suppress(OSError):
        archive.mkdir(parents=True, exist_ok=True)
    return Starlette(routes=[
        Route(f"/unsubscribe/{subscribers.TEST_TOKEN}", test_send_unsubscribe, methods=["GET", "POST"]),
        Route("/unsubscribe/{token}", web.unsubscribe_page, methods=["GET"]),
        Route("/unsubscribe/{token}", web.unsubscribe, methods=["POST"]),
        Route("/confirm/{token}", web.confirm, methods=["GET"]),
        Route("/subscribe", web.subscribe_form, methods=["GET"]),
        Route("/subscribe", web.subscribe, methods=["POST"]),
        Mount("/", StaticFiles(directory=archive, html=True, check_dir=False), name="archive"),
    ])
