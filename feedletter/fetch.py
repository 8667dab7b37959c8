"""HTTP for feeds and article pages: conditional GET, caps, redirects, an SSRF guard, politeness.

One :class:`Fetcher` serves a whole gather run: a bounded thread pool, a per-host limit and
urllib3 connection pools shared by the threads, so that hundreds of feeds cost a few connections.
"""

from __future__ import annotations

import contextlib
import heapq
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import urllib3
from urllib3 import BaseHTTPResponse, HTTPConnectionPool, HTTPSConnectionPool, PoolManager, Timeout
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util import connection

from feedletter.errors import FetchError

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


def _refusal(host: str, address: str) -> str | None:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if not ip.is_global or ip.is_multicast:
        return f"refused: {host} resolves to non-public address {ip} (set allow_private: true to allow)"
    return None


def public_addresses(url: str, host: str, port: int) -> list[str]:
    """Resolve ``host``; raise FetchError unless every address it has is public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise FetchError(url, f"cannot resolve {host}: {exc.strerror}") from None
    addresses = [str(info[4][0]) for info in infos]
    for address in addresses:
        if (problem := _refusal(host, address)) is not None:
            raise FetchError(url, problem, transient=False)
    return addresses


def check_address(url: str, *, allow_private: bool) -> None:
    """Refuse URLs whose host resolves to loopback, private, link-local or reserved addresses."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise FetchError(url, f"only http and https URLs are fetched, not {parts.scheme or 'none'}",
                         transient=False)
    host = parts.hostname
    if not host:
        raise FetchError(url, "URL has no host", transient=False)
    if not allow_private:
        public_addresses(url, host, parts.port or (443 if parts.scheme == "https" else 80))


class _Watched:
    """Connections register their socket with the request that uses them, for its watchdog."""

    local = threading.local()

    def _watch(self) -> None:
        sockets: list[socket.socket] | None = getattr(_Watched.local, "sockets", None)
        sock = getattr(self, "sock", None)
        if sockets is not None and sock is not None and sock not in sockets:
            sockets.append(sock)

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        self._watch()

    def request(self, *args: Any, **kwargs: Any) -> None:
        self._watch()  # a kept-alive connection is already connected
        super().request(*args, **kwargs)  # type: ignore[misc]
        _quick_ack(getattr(self, "sock", None))


def _quick_ack(sock: socket.socket | None) -> None:
    """Acknowledge the response's first segment at once rather than after the delayed-ACK timer.

    A server that writes its headers and its body separately with Nagle's algorithm on (Python's
    http.server, many app servers) holds the body until the headers are acknowledged; Linux delays
    that acknowledgement by up to 40 ms on a kept-alive connection. Measured on the loopback feed
    farm: 43 ms per feed with connection reuse, 0.7 ms with this. Not every platform has it.
    """
    option = getattr(socket, "TCP_QUICKACK", None)
    if sock is not None and option is not None:
        # A socket the watchdog already closed, or a platform that refuses the option: no harm.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, option, 1)


class _PinnedMixin(_Watched):
    """Connect only to an address checked to be public, so that DNS cannot change its answer
    between the check and the connection (DNS rebinding): the check and the connect use one lookup."""

    def _new_conn(self) -> socket.socket:
        host, port = self._dns_host, self.port  # type: ignore[attr-defined]
        addresses = public_addresses(f"{host}:{port}", host, port)
        error: OSError | None = None
        for address in addresses:
            try:
                return connection.create_connection((address, port), self.timeout,  # type: ignore[attr-defined]
                                                    socket_options=self.socket_options)  # type: ignore[attr-defined]
            except TimeoutError as exc:
                raise ConnectTimeoutError(self, f"connect to {host} timed out") from exc
            except OSError as exc:
                error = exc
        raise NewConnectionError(self, f"cannot connect to {host}: {error}")  # type: ignore[arg-type]


class _OpenHTTP(_Watched, HTTPConnection):
    pass


class _OpenHTTPS(_Watched, HTTPSConnection):
    pass


class _PinnedHTTP(_PinnedMixin, HTTPConnection):
    pass


class _PinnedHTTPS(_PinnedMixin, HTTPSConnection):
    pass


def _pool_manager(per_host: int, *, pinned: bool) -> PoolManager:
    http_cls, https_cls = (_PinnedHTTP, _PinnedHTTPS) if pinned else (_OpenHTTP, _OpenHTTPS)
    manager = PoolManager(num_pools=256, maxsize=per_host, retries=False)
    manager.pool_classes_by_scheme = {
        "http": type("Pool", (HTTPConnectionPool,), {"ConnectionCls": http_cls}),
        "https": type("Pool", (HTTPSConnectionPool,), {"ConnectionCls": https_cls}),
    }
    return manager


class Fetcher:
    """Fetch URLs politely with hard limits; safe to share between threads.

    urllib3 directly, not requests: a conditional GET answered 304 costs 0.5 ms of CPU instead
    of 2.6 ms, which is most of a gather run where nothing changed (bench/bench_gather.py).
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
        self._pinned = _pool_manager(per_host, pinned=True)
        self._open = _pool_manager(per_host, pinned=False)
        self._watchdog = _Watchdog()

    def _host_slot(self, url: str) -> threading.Semaphore:
        host = (urlsplit(url).hostname or "").lower()
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
        _Watched.local.sockets = sockets
        self._watchdog.watch(deadline, sockets)
        try:
            for _ in range(self.max_redirects + 1):
                check_address(current, allow_private=True)  # scheme and host; addresses at connect
                with self._host_slot(current):
                    response = self._request(current, headers, deadline, private)
                    try:
                        if response.status in _REDIRECTS:
                            location = response.headers.get("Location")
                            if not location:
                                raise FetchError(url, f"HTTP {response.status} without Location",
                                                 status=response.status, transient=False)
                            permanent = permanent and response.status in _PERMANENT
                            current = urljoin(current, location)
                            if permanent:
                                moved_to = current
                            continue
                        if response.status == 304:
                            return FetchResult(current, 304, None, etag, last_modified,
                                               moved_to=moved_to, seconds=time.monotonic() - started)
                        if response.status >= 400:
                            raise _http_error(url, response)
                        body = self._read(url, response, deadline)
                        return FetchResult(
                            current, response.status, body,
                            etag=response.headers.get("ETag"),
                            last_modified=response.headers.get("Last-Modified"),
                            content_type=response.headers.get("Content-Type"),
                            moved_to=moved_to, seconds=time.monotonic() - started)
                    finally:
                        _finish(response)
            raise FetchError(url, f"more than {self.max_redirects} redirects", transient=False)
        finally:
            sockets.clear()  # done: nothing left for the watchdog to shut
            _Watched.local.sockets = None

    def _request(self, url: str, headers: dict[str, str], deadline: float, private: bool) -> BaseHTTPResponse:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchError(url, f"timed out after {self.timeout:g}s")
        manager = self._open if private else self._pinned
        try:
            response = manager.request("GET", url, headers=headers, redirect=False, preload_content=False,
                                   decode_content=True, retries=False,
                                   timeout=Timeout(connect=min(remaining, self.connect_timeout),
                                                   read=remaining))
        except (TimeoutError, urllib3.exceptions.TimeoutError):
            raise FetchError(url, f"timed out after {self.timeout:g}s") from None
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            if time.monotonic() >= deadline:
                raise FetchError(url, f"timed out after {self.timeout:g}s") from None
            raise FetchError(url, f"connection failed: {_reason(exc)}") from None
        if time.monotonic() >= deadline:
            # The watchdog cut the headers short, and http.client took what came for a response.
            response.close()
            response.release_conn()
            raise FetchError(url, f"timed out after {self.timeout:g}s (slow headers)")
        return response

    def _read(self, url: str, response: BaseHTTPResponse, deadline: float) -> bytes:
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            raise FetchError(url, f"body of {int(declared)} bytes exceeds the {self.max_bytes}-byte cap",
                             transient=False)
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                # read1: whatever one recv brings, so the deadline is checked however slow the sender.
                chunk = response.read1(65536)
                if not chunk:
                    break
                size += len(chunk)
                if size > self.max_bytes:  # counted after gzip/deflate decoding: bombs stop here too
                    raise FetchError(url, f"body exceeds the {self.max_bytes}-byte cap", transient=False)
                if time.monotonic() > deadline:
                    raise FetchError(url, f"timed out after {self.timeout:g}s (slow body)")
                chunks.append(chunk)
            if time.monotonic() >= deadline:  # the watchdog closed the socket: a cut, not an end
                raise FetchError(url, f"timed out after {self.timeout:g}s (slow body)")
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            if time.monotonic() >= deadline:
                raise FetchError(url, f"timed out after {self.timeout:g}s (slow body)") from None
            raise FetchError(url, f"reading body failed: {_reason(exc)}") from None
        return b"".join(chunks)

    def map(self, func: Callable[[T], R], items: Sequence[T], *, workers: int) -> Iterator[R]:
        """Run ``func`` over ``items`` on a bounded pool, yielding results in input order."""
        if not items:
            return iter(())
        pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(items))),
                                  thread_name_prefix="feedletter-fetch")
        try:
            return iter(list(pool.map(func, items)))
        finally:
            pool.shutdown(wait=True)

    def close(self) -> None:
        self._pinned.clear()
        self._open.clear()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _finish(response: BaseHTTPResponse) -> None:
    """Hand the connection back for reuse if the rest of the response is short, else drop it.

    http.client refuses a new request on a connection whose last response was not read to the end.
    """
    left = response.length_remaining
    try:
        if left is not None and left <= 65536:
            response.drain_conn()
        else:
            response.close()
    except (OSError, urllib3.exceptions.HTTPError):
        response.close()
    response.release_conn()


class _Watchdog:
    """One thread per Fetcher that shuts a request's sockets when its deadline passes.

    One shared thread rather than a timer thread per request: starting a thread cost more than
    the rest of a 304 answer (bench/bench_gather.py, second run).
    """

    def __init__(self) -> None:
        self._due: list[tuple[float, int, list[socket.socket]]] = []
        self._wake = threading.Condition()
        self._count = 0
        self._thread: threading.Thread | None = None

    def watch(self, deadline: float, sockets: list[socket.socket]) -> None:
        with self._wake:
            self._count += 1
            heapq.heappush(self._due, (deadline, self._count, sockets))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="feedletter-watchdog", daemon=True)
                self._thread.start()
            elif self._due[0][2] is sockets:
                self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._due or self._due[0][0] > time.monotonic():
                    self._wake.wait(self._due[0][0] - time.monotonic() if self._due else None)
                _, _, sockets = heapq.heappop(self._due)
                expired = list(sockets)
            for sock in expired:
                with contextlib.suppress(OSError):  # already closed: the request ended on its own
                    sock.shutdown(socket.SHUT_RDWR)


def _http_error(url: str, response: BaseHTTPResponse) -> FetchError:
    status = response.status
    retry_after = _retry_after(response.headers.get("Retry-After"))
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
    text = str(exc.args[0]) if exc.args else exc.__class__.__name__
    # urllib3 nests the useful part after the last colon of a long repr
    return text.rsplit(": ", 1)[-1].rstrip(")'\"") if len(text) > 160 else text
