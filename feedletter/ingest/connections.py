"""Connections for the fetcher: the SSRF guard on addresses, sockets pinned to a checked address, and
a pool of kept-alive connections shared by the fetch threads, and the watchdog that ends a request at
its deadline.
"""

from __future__ import annotations

import contextlib
import heapq
import http.client
import ipaddress
import re
import select
import socket
import ssl
import threading
import time
from urllib.parse import quote, urlsplit

from feedletter.errors import FetchError

# IPv6 prefixes that carry an IPv4 address a gateway (or the host itself) may route to: NAT64
# (64:ff9b::/96 and the local-use 64:ff9b:1::/48) and IPv4-compatible addresses (::/96) carry it
# in their last 32 bits, 6to4 (2002::/16) in the 32 bits after the prefix. Such an address is only
# as public as the IPv4 address it carries ("64:ff9b::7f00:1" reaches 127.0.0.1 through NAT64).
_IN_LAST_32 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"),
               ipaddress.IPv6Network("::/96"))
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")


def _carried_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _SIX_TO_FOUR:
        return ip.sixtofour
    if any(ip in net for net in _IN_LAST_32) and int(ip) & 0xFFFFFFFF and ip not in (
            ipaddress.IPv6Address("::1"), ipaddress.IPv6Address("::")):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _refusal(host: str, address: str) -> str | None:
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        carried = _carried_ipv4(ip)
        if carried is not None and (not carried.is_global or carried.is_multicast):
            return (f"refused: {host} resolves to non-public address {carried} (inside {ip}; "
                    "set allow_private: true to allow)")
        ip = carried or ip
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
    (_, host, port, _), _ = destination(url, pinned=not allow_private)
    if not allow_private:
        public_addresses(url, host, port)


def quick_ack(sock: socket.socket | None) -> None:
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


class _Connection(http.client.HTTPConnection):
    """A kept-alive HTTP connection; ``pinned`` connects only to addresses checked to be public.

    The check and the connect use one DNS lookup, so DNS cannot change its answer between them
    (rebinding).
    """

    def __init__(self, host: str, port: int, timeout: float, *, pinned: bool) -> None:
        super().__init__(host, port, timeout=timeout)
        if pinned:
            self._create_connection = _pinned_connect


class _SecureConnection(http.client.HTTPSConnection):
    """The same for https: the certificate is checked against the name, not the pinned address."""

    def __init__(self, host: str, port: int, timeout: float, *, pinned: bool, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        if pinned:
            self._create_connection = _pinned_connect


def _pinned_connect(address: tuple[str, int], timeout: float | None = None,
                    source_address: tuple[str, int] | None = None) -> socket.socket:
    host, port = address
    error: OSError | None = None
    for ip in public_addresses(f"{host}:{port}", host, port):
        try:
            return socket.create_connection((ip, port), timeout, source_address)
        except TimeoutError:
            raise
        except OSError as exc:
            error = exc
    raise OSError(f"cannot connect to {host}: {error}")


ConnectionKey = tuple[str, str, int, bool]  # scheme, host, port, pinned


class ConnectionPool:
    """Idle kept-alive connections by scheme, host, port and pinning; safe to share between threads."""

    def __init__(self, per_host: int) -> None:
        self.per_host = per_host
        self._idle: dict[ConnectionKey, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._context: ssl.SSLContext | None = None

    def take(self, key: ConnectionKey, connect_timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        """An idle connection still open (and True), else a new, unconnected one (and False)."""
        with self._lock:
            idle = self._idle.get(key)
            while idle:
                conn = idle.pop()
                if _still_open(conn):
                    return conn, True
                conn.close()
        scheme, host, port, pinned = key
        if scheme == "https":
            return _SecureConnection(host, port, connect_timeout, pinned=pinned, context=self.context()), False
        return _Connection(host, port, connect_timeout, pinned=pinned), False

    def context(self) -> ssl.SSLContext:
        with self._lock:
            if self._context is None:  # 10-20 ms to load the system's certificates: once, when first needed
                self._context = ssl.create_default_context()
            return self._context

    def give_back(self, key: ConnectionKey, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.per_host:
                idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle = [c for conns in self._idle.values() for c in conns]
            self._idle.clear()
        for conn in idle:
            conn.close()


def _still_open(conn: http.client.HTTPConnection) -> bool:
    """A kept-alive connection has nothing to read while idle: if it has, the server closed it."""
    sock = conn.sock
    if sock is None:
        return False
    try:
        if hasattr(select, "poll"):  # select() cannot take descriptors above 1023
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return not poller.poll(0)
        return not select.select([sock], [], [], 0)[0]
    except (OSError, ValueError):
        return False


# What a kept-alive connection the server has just closed raises on the next request.
STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


# Characters left as they are in a request target; anything else (spaces, non-ASCII) is %-encoded.
_TARGET_SAFE = "/?&=;:@!$'()*+,~%-._[]"


def destination(url: str, *, pinned: bool) -> tuple[ConnectionKey, str]:
    """The connection key and request target of ``url``; FetchError for what cannot be fetched."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchError(url, f"only http and https URLs are fetched, not {scheme or 'none'}", transient=False)
    try:
        host, port = parts.hostname, parts.port
        if not host:
            raise FetchError(url, "URL has no host", transient=False)
        if not host.isascii():
            host = host.encode("idna").decode("ascii")
    except (ValueError, UnicodeError) as exc:
        raise FetchError(url, f"bad host or port: {exc}", transient=False) from None
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    if not _PLAIN_TARGET.fullmatch(target):
        target = quote(target, safe=_TARGET_SAFE)
    return (scheme, host, port or (443 if scheme == "https" else 80), pinned), target


_PLAIN_TARGET = re.compile(r"[!-~]*")  # printable ASCII, no spaces


class Watchdog:
    """One thread per fetcher that shuts a request's sockets when its deadline passes.

    One shared thread rather than a timer thread per request: starting a thread cost more than
    the rest of a 304 answer (bench/bench_gather.py, second run). The thread ends when the fetcher
    is closed, or when it has had nothing to watch for ``_IDLE`` seconds: a long-running process
    (``feedletter serve``) makes a fetcher for every run, and must not keep a thread for each.
    """

    _IDLE = 2.0

    def __init__(self) -> None:
        self._due: list[tuple[float, int, list[socket.socket]]] = []
        self._wake = threading.Condition()
        self._count = 0
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(self, deadline: float, sockets: list[socket.socket]) -> None:
        with self._wake:
            self._count += 1
            heapq.heappush(self._due, (deadline, self._count, sockets))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="feedletter-watchdog", daemon=True)
                self._thread.start()
            elif self._due[0][2] is sockets:
                self._wake.notify()

    def close(self) -> None:
        """Forget the deadlines (every request has ended) and let the thread end now."""
        with self._wake:
            self._closed = True
            self._due.clear()
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._due and self._due[0][0] > time.monotonic():
                    self._wake.wait(self._due[0][0] - time.monotonic())
                if not self._due:
                    if not self._closed:
                        self._wake.wait(self._IDLE)
                    if not self._due:
                        self._thread = None  # under the lock: the next watch() starts a new thread
                        return
                    continue
                _, _, sockets = heapq.heappop(self._due)
                expired = list(sockets)
            for sock in expired:
                with contextlib.suppress(OSError):  # already closed: the request ended on its own
                    sock.shutdown(socket.SHUT_RDWR)
