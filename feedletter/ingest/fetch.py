"""HTTP for feeds and article pages: conditional GET, caps, redirects, an SSRF guard, politeness.

One :class:`Fetcher` serves a whole gather run: a bounded thread pool, a per-host limit and
kept-alive connections shared by the threads, so that hundreds of feeds cost a few connections.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

from feedletter.config import Config, Source
from feedletter.errors import FetchError
from feedletter.ingest.connections import STALE, ConnectionKey, ConnectionPool, Watchdog, destination, quick_ack

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_USER_AGENT = "feedletter/0.1 (+https://github.com/feedletter/feedletter)"
_REDIRECTS = {301, 302, 303, 307, 308}
_PERMANENT = {301, 308}
# Statuses worth trying again later; everything else in 4xx is the request's own fault.
_TRANSIENT = {408, 425, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class FetchResult:
    url: str
    status: int
    body: bytes | None  # None when the server answered 304 Not Modified
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    moved_to: str | None = None  # set after a permanent redirect: the new URL to store
    seconds: float = 0.0

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class Fetcher:
    """Fetch URLs politely with hard limits; safe to share between threads.

    On http.client directly, not requests or urllib3: a conditional GET answered 304 costs about
    0.1 ms of CPU here against 0.25 ms through urllib3 and 2.6 ms through requests, and a run where
    nothing changed is little else (bench/bench_gather.py, second run). What those libraries would
    add is here, and tested: connection reuse, redirects, gzip/deflate, caps and timeouts.
    """

    def __init__(self, *, timeout: float = 20.0, max_bytes: int = 10 * 1024 * 1024,
                 user_agent: str = DEFAULT_USER_AGENT, per_host: int = 4, max_redirects: int = 5,
                 allow_private: bool = False, connect_timeout: float = 10.0) -> None:
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_bytes = max_bytes
        self.user_agent = user_agent
        self.per_host = per_host
        self.max_redirects = max_redirects
        self.allow_private = allow_private
        self._hosts: dict[str, threading.Semaphore] = {}
        self._hosts_lock = threading.Lock()
        self._connections = ConnectionPool(per_host)
        self._watchdog = Watchdog()

    def _host_slot(self, host: str) -> threading.Semaphore:
        with self._hosts_lock:
            slot = self._hosts.get(host)
            if slot is None:
                slot = self._hosts[host] = threading.Semaphore(self.per_host)
            return slot

    def get(self, url: str, *, etag: str | None = None, last_modified: str | None = None,
            accept: str = "*/*", allow_private: bool | None = None) -> FetchResult:
        """GET ``url`` with conditional headers; raise FetchError on any failure."""
        private = self.allow_private if allow_private is None else allow_private
        started = time.monotonic()
        deadline = started + self.timeout
        headers = {"Accept": accept, "User-Agent": self.user_agent, "Accept-Encoding": "gzip, deflate"}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        current, moved_to, permanent = url, None, True
        # The watchdog shuts the sockets of this request at the deadline, so a server that
        # drips its headers or body a byte at a time cannot hold the run past the total timeout.
        sockets: list[socket.socket] = []
        self._watchdog.watch(deadline, sockets)
        try:
            for _ in range(self.max_redirects + 1):
                key, target = destination(current, pinned=not private)
                with self._host_slot(key[1]):
                    conn, response = self._request(url, key, target, headers, deadline, sockets)
                    try:
                        status = response.status
                        if status in _REDIRECTS:
                            location = response.getheader("Location")
                            if not location:
                                raise FetchError(url, f"HTTP {status} without Location", status=status,
                                                 transient=False)
                            permanent = permanent and status in _PERMANENT
                            current = urljoin(current, _header_text(location).strip())
                            if permanent:
                                moved_to = current
                            continue
                        if status == 304:
                            return FetchResult(current, 304, None, etag, last_modified,
                                               moved_to=moved_to, seconds=time.monotonic() - started)
                        if status >= 400:
                            raise _http_error(url, response)
                        body = self._read(url, response, deadline)
                        return FetchResult(
                            current, status, body,
                            etag=response.getheader("ETag"),
                            last_modified=response.getheader("Last-Modified"),
                            content_type=response.getheader("Content-Type"),
                            moved_to=moved_to, seconds=time.monotonic() - started)
                    finally:
                        self._finish(key, conn, response, deadline)
            raise FetchError(url, f"more than {self.max_redirects} redirects", transient=False)
        finally:
            sockets.clear()  # done: nothing left for the watchdog to shut

    def _request(self, url: str, key: ConnectionKey, target: str, headers: dict[str, str], deadline: float,
                 sockets: list[socket.socket]) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        for attempt in range(2):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FetchError(url, f"timed out after {self.timeout:g}s")
            conn, reused = self._connections.take(key, min(remaining, self.connect_timeout))
            try:
                if conn.sock is None:
                    conn.connect()
                sock = conn.sock
                assert sock is not None
                sockets.append(sock)  # before the deadline is checked: the watchdog cannot miss it
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                sock.settimeout(remaining)
                conn.request("GET", target, headers=headers)
                quick_ack(sock)
                response = conn.getresponse()
            except ValueError as exc:  # http.client refuses a header value with a line break in it
                conn.close()
                raise FetchError(url, f"cannot send the request: {exc}", transient=False) from None
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                late = time.monotonic() >= deadline
                if reused and attempt == 0 and not late and isinstance(exc, STALE):
                    continue  # the server closed the idle connection as we sent: once more, on a new one
                if late or isinstance(exc, TimeoutError):
                    raise FetchError(url, f"timed out after {self.timeout:g}s") from None
                raise FetchError(url, f"connection failed: {_reason(exc)}") from None
            if time.monotonic() >= deadline:
                # The watchdog cut the headers short, and http.client took what came for a response.
                response.close()
                conn.close()
                raise FetchError(url, f"timed out after {self.timeout:g}s (slow headers)")
            return conn, response
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _read(self, url: str, response: http.client.HTTPResponse, deadline: float) -> bytes:
        declared = response.getheader("Content-Length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            raise FetchError(url, f"body of {int(declared)} bytes exceeds the {self.max_bytes}-byte cap",
                             transient=False)
        decoder = _decoder(url, response.getheader("Content-Encoding"))
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                # read1: whatever one recv brings, so the deadline is checked however slow the sender.
                chunk = response.read1(65536)
                if decoder is not None:
                    # Decoded at most one byte past the cap at a time: a gzip bomb stops at the cap.
                    chunk = decoder.decompress(chunk, self.max_bytes - size + 1) if chunk else decoder.flush()
                if not chunk:
                    break
                size += len(chunk)
                if size > self.max_bytes:
                    raise FetchError(url, f"body exceeds the {self.max_bytes}-byte cap", transient=False)
                if time.monotonic() > deadline:
                    raise FetchError(url, f"timed out after {self.timeout:g}s (slow body)")
                chunks.append(chunk)
            if time.monotonic() >= deadline:  # the watchdog closed the socket: a cut, not an end
                raise FetchError(url, f"timed out after {self.timeout:g}s (slow body)")
        except (OSError, http.client.HTTPException) as exc:
            if time.monotonic() >= deadline:
                raise FetchError(url, f"timed out after {self.timeout:g}s (slow body)") from None
            raise FetchError(url, f"reading body failed: {_reason(exc)}") from None
        except zlib.error as exc:
            raise FetchError(url, f"body is not valid {response.getheader('Content-Encoding')}: {exc}",
                             transient=False) from None
        return b"".join(chunks)

    def _finish(self, key: ConnectionKey, conn: http.client.HTTPConnection, response: http.client.HTTPResponse,
                deadline: float) -> None:
        """Keep the connection for the next request if the rest of the response is short, else drop it.

        http.client refuses a new request on a connection whose last response was not read to the end.
        """
        if not response.isclosed() and not response.will_close and time.monotonic() < deadline:
            left = response.length  # None when chunked
            with contextlib.suppress(OSError, http.client.HTTPException):
                if left is None or left <= 65536:
                    response.read(65536)  # an error page or a redirect's note: usually a few hundred bytes
        if response.isclosed() and not response.will_close and conn.sock is not None:
            self._connections.give_back(key, conn)
        else:
            response.close()
            conn.close()

    def threads_for(self, urls: Iterable[str], workers: int) -> int:
        """Threads worth starting for ``urls``: at most ``workers``, and no more than their hosts serve.

        A thread beyond ``per_host`` times the number of hosts would only wait for a host's slot, and
        handing slots around among waiting threads costs CPU: 500 answers of 304 from one host took
        0.17-0.19 s on 16 threads and 0.12-0.18 s on 4 (the loopback bench farm).
        """
        hosts = {(urlsplit(url).hostname or "").lower() for url in urls}
        return max(1, min(workers, self.per_host * len(hosts)))

    def map(self, func: Callable[[T], R], items: Sequence[T], *, workers: int) -> Iterator[R]:
        """Run ``func`` over ``items`` on a bounded pool, yielding results in input order.

        ``workers`` threads take the items in turn; the first exception (in input order) is raised
        once all are done. Plain threads rather than an executor: a future per item (a lock and a
        condition each) was a tenth of a run of 500 answers of 304.
        """
        if not items:
            return iter(())
        results: list[Any] = [None] * len(items)
        failures: dict[int, BaseException] = {}
        turn = iter(range(len(items)))
        lock = threading.Lock()

        def work() -> None:
            while True:
                with lock:
                    i = next(turn, -1)
                if i < 0:
                    return
                try:
                    results[i] = func(items[i])
                except BaseException as exc:  # handed to the caller below, as an executor would
                    failures[i] = exc

        threads = [threading.Thread(target=work, name=f"feedletter-fetch-{n}", daemon=True)
                   for n in range(max(1, min(workers, len(items))))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise failures[min(failures)]
        return iter(results)

    def close(self) -> None:
        self._watchdog.close()
        self._connections.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _header_text(value: str) -> str:
    """A header as UTF-8 where it is: http.client reads header bytes as Latin-1, servers send UTF-8."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def _decoder(url: str, encoding: str | None) -> Any:
    """A zlib decompressor for the body's Content-Encoding, or None for a plain body."""
    name = (encoding or "").strip().lower()
    if name in ("", "identity"):
        return None
    if name in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if name == "deflate":
        return _Deflate()
    raise FetchError(url, f"body sent with Content-Encoding {encoding!r}, which was not asked for",
                     transient=False)


class _Deflate:
    """"deflate" as servers send it: zlib-wrapped as the standard says, or raw as some do."""

    def __init__(self) -> None:
        self._inner = zlib.decompressobj()
        self._started = False

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if not self._started:
            self._started = True
            try:
                return self._inner.decompress(data, max_length)
            except zlib.error:
                self._inner = zlib.decompressobj(-zlib.MAX_WBITS)
        return self._inner.decompress(data, max_length)

    def flush(self) -> bytes:
        return self._inner.flush()


def _http_error(url: str, response: http.client.HTTPResponse) -> FetchError:
    status = response.status
    retry_after = _retry_after(response.getheader("Retry-After"))
    note = f" (retry after {retry_after:g}s)" if retry_after else ""
    return FetchError(url, f"HTTP {status} {response.reason or ''}".rstrip() + note, status=status,
                      transient=status in _TRANSIENT, retry_after=retry_after)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _reason(exc: Exception) -> str:
    text = str(exc) or exc.__class__.__name__
    return text if len(text) <= 200 else text[:199] + "…"


def make_fetcher(config: Config) -> Fetcher:
    """The run's fetcher, with the config's limits."""
    g = config.gather
    return Fetcher(timeout=g.timeout, max_bytes=g.max_bytes, user_agent=g.user_agent,
                   per_host=g.per_host, allow_private=config.allow_private)


def private_allowed(config: Config, source: Source) -> bool:
    """Whether ``source`` may be fetched from private and loopback addresses (its own setting, else the config's)."""
    return config.allow_private if source.allow_private is None else source.allow_private
