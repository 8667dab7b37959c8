"""A loopback HTTP server whose every route misbehaves on purpose, for the fetch and health tests.

Routes are plain functions registered per test: ``server.route("/feed", handler)`` where the
handler gets the request handler and writes whatever it likes (slowly, too large, redirecting).
The server counts requests, remembers their headers, and tracks concurrent ones per path.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

Handler = Callable[[BaseHTTPRequestHandler], None]


class RudeServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 with test-defined routes."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.hits: Counter[str] = Counter()
        self.headers: list[dict[str, str]] = []
        self.connections: set[tuple[str, int]] = set()
        self.active = 0
        self.peak = 0
        self.lock = threading.Lock()
        server = self

        class Request(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                with server.lock:
                    server.hits[path] += 1
                    server.headers.append(dict(self.headers.items()))
                    server.connections.add(self.client_address)
                    server.active += 1
                    server.peak = max(server.peak, server.active)
                try:
                    handler = server.routes.get(path)
                    if handler is None:
                        self.send_response(404)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                    else:
                        handler(self)
                finally:
                    with server.lock:
                        server.active -= 1

            def log_message(self, format: str, *args: object) -> None:
                del format, args

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Request)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def route(self, path: str, handler: Handler) -> str:
        self.routes[path] = handler
        return self.url(path)


def send(request: BaseHTTPRequestHandler, status: int, body: bytes = b"",
         headers: dict[str, str] | None = None) -> None:
    """A well-formed response with a Content-Length."""
    request.send_response(status)
    for name, value in (headers or {}).items():
        request.send_header(name, value)
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    if body:
        request.wfile.write(body)


RSS = (b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Rude</title>'
       b"<link>https://rude.example/</link><item><title>One</title><link>https://rude.example/1</link>"
       b"<guid>rude-1</guid><description>&lt;p&gt;First post body.&lt;/p&gt;</description></item>"
       b"</channel></rss>")


@pytest.fixture
def rude() -> Iterator[RudeServer]:
    server = RudeServer()
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()
