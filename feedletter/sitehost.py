"""Serve a folder of feeds and pages on loopback, as a real site would: for the demo and the tests.

Files are served with ETag and Last-Modified and answer conditional requests with 304. The token
``%BASE%`` in any served text file is replaced by the server's own origin, so that a bundled site
can use absolute links without knowing its port in advance. A plain static server would hand out
``%BASE%`` as it is; to serve the demo site by hand::

    python -m feedletter.sitehost demo/site --port 8089
"""

from __future__ import annotations

import hashlib
import mimetypes
import socket
import threading
from collections import Counter
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

BASE_TOKEN = b"%BASE%"
_TYPES = {".xml": "application/xml; charset=utf-8", ".rss": "application/rss+xml; charset=utf-8",
          ".atom": "application/atom+xml; charset=utf-8", ".json": "application/feed+json; charset=utf-8",
          ".html": "text/html; charset=utf-8", ".opml": "text/x-opml; charset=utf-8"}


class SiteHost:
    """A static site on 127.0.0.1 in a background thread; counts the requests and 304s it answers."""

    def __init__(self, root: Path, *, port: int = 0, modified: float = 1763251200.0) -> None:
        self.root = root.resolve()
        self.modified = modified  # fixed, so that a restarted demo site still answers 304
        self.hits: Counter[str] = Counter()
        self.not_modified = 0
        host = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                host._serve(self)

            def log_message(self, format: str, *args: object) -> None:
                del format, args

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="sitehost", daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + "/" + path.lstrip("/")

    def start(self) -> SiteHost:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> SiteHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        path = unquote(urlsplit(request.path).path)
        self.hits[path] += 1
        file = (self.root / path.lstrip("/")).resolve()
        if file.is_dir():
            file = file / "index.html"
        if self.root not in file.parents or not file.is_file():
            self._reply(request, HTTPStatus.NOT_FOUND, b"not found\n", {"Content-Type": "text/plain"})
            return
        body = file.read_bytes().replace(BASE_TOKEN, self.base.encode("ascii"))
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        last_modified = formatdate(self.modified, usegmt=True)
        headers = {"Content-Type": _TYPES.get(file.suffix) or mimetypes.guess_type(file.name)[0]
                   or "application/octet-stream", "ETag": etag, "Last-Modified": last_modified,
                   "Cache-Control": "no-cache"}
        if request.headers.get("If-None-Match") == etag or (
                "If-None-Match" not in request.headers and request.headers.get("If-Modified-Since") == last_modified):
            self.not_modified += 1
            self._reply(request, HTTPStatus.NOT_MODIFIED, b"", headers)
            return
        self._reply(request, HTTPStatus.OK, body, headers)

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: HTTPStatus, body: bytes, headers: dict[str, str]) -> None:
        request.send_response(status)
        for name, value in headers.items():
            request.send_header(name, value)
        if status != HTTPStatus.NOT_MODIFIED:
            request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        if body and request.command != "HEAD":
            request.wfile.write(body)


def port_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:``port`` (the demo's fixed ports, before it starts)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def main(argv: list[str] | None = None) -> None:
    """``python -m feedletter.sitehost FOLDER [--port N]``: serve FOLDER until interrupted."""
    import argparse
    import time

    parser = argparse.ArgumentParser(prog="python -m feedletter.sitehost", description=main.__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--port", type=int, default=8089)
    args = parser.parse_args(argv)
    with SiteHost(args.folder, port=args.port) as site:
        print(f"serving {args.folder} on {site.base} (Ctrl-C stops)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()

