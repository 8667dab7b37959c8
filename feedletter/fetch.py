"""HTTP for feeds and article pages: conditional GET, caps, redirects, an SSRF guard, politeness.

One :class:`Fetcher` serves a whole gather run: a bounded thread pool, a per-host limit and one
pooled ``requests`` session per worker thread, so that hundreds of feeds cost a few connections.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TypeVar
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

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


def check_address(url: str, *, allow_private: bool) -> None:
    """Refuse URLs whose host resolves to loopback, private, link-local or reserved addresses."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise FetchError(url, f"only http and https URLs are fetched, not {parts.scheme or 'none'}",
                         transient=False)
    host = parts.hostname
    if not host:
        raise FetchError(url, "URL has no host", transient=False)
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80),
                                   type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise FetchError(url, f"cannot resolve {host}: {exc.strerror}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not address.is_global or address.is_multicast:
            raise FetchError(url, f"refused: {host} resolves to non-public address {address} "
                                  "(set allow_private: true to allow)", transient=False)


class Fetcher:
    """Fetch URLs politely with hard limits; safe to share between threads."""

    def __init__(self, *, timeout: float = 20.0, max_bytes: int = 10 * 1024 * 1024,
                 user_agent: str = DEFAULT_USER_AGENT, per_host: int = 4, max_redirects: int = 5,
                 allow_private: bool = False) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.user_agent = user_agent
        self.per_host = per_host
        self.max_redirects = max_redirects
        self.allow_private = allow_private
        self._local = threading.local()
        self._hosts: dict[str, threading.Semaphore] = {}
        self._hosts_lock = threading.Lock()
        self._sessions: list[requests.Session] = []

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=8, pool_maxsize=self.per_host, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers.update({"User-Agent": self.user_agent,
                                    "Accept-Encoding": "gzip, deflate"})
            self._local.session = session
            with self._hosts_lock:
                self._sessions.append(session)
        return session

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
        headers = {"Accept": accept}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        current, moved_to, permanent = url, None, True
        for _ in range(self.max_redirects + 1):
            check_address(current, allow_private=private)
            with self._host_slot(current):
                response = self._request(current, headers, deadline)
                try:
                    if response.status_code in _REDIRECTS:
                        location = response.headers.get("Location")
                        if not location:
                            raise FetchError(url, f"HTTP {response.status_code} without Location",
                                             status=response.status_code, transient=False)
                        permanent = permanent and response.status_code in _PERMANENT
                        current = urljoin(current, location)
                        if permanent:
                            moved_to = current
                        continue
                    if response.status_code == 304:
                        return FetchResult(current, 304, None, etag, last_modified,
                                           moved_to=moved_to, seconds=time.monotonic() - started)
                    if response.status_code >= 400:
                        raise _http_error(url, response)
                    body = self._read(url, response, deadline)
                    return FetchResult(
                        current, response.status_code, body,
                        etag=response.headers.get("ETag"),
                        last_modified=response.headers.get("Last-Modified"),
                        content_type=response.headers.get("Content-Type"),
                        moved_to=moved_to, seconds=time.monotonic() - started)
                finally:
                    response.close()
        raise FetchError(url, f"more than {self.max_redirects} redirects", transient=False)

    def _request(self, url: str, headers: dict[str, str], deadline: float) -> requests.Response:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchError(url, f"timed out after {self.timeout:g}s")
        try:
            return self._session().get(url, headers=headers, stream=True, allow_redirects=False,
                                       timeout=(min(remaining, 10.0), remaining))
        except requests.Timeout:
            raise FetchError(url, f"timed out after {self.timeout:g}s") from None
        except requests.ConnectionError as exc:
            raise FetchError(url, f"connection failed: {_reason(exc)}") from None
        except requests.RequestException as exc:
            raise FetchError(url, f"request failed: {_reason(exc)}", transient=False) from None

    def _read(self, url: str, response: requests.Response, deadline: float) -> bytes:
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            raise FetchError(url, f"body of {int(declared)} bytes exceeds the {self.max_bytes}-byte cap",
                             transient=False)
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_content(chunk_size=65536):
                size += len(chunk)
                if size > self.max_bytes:
                    raise FetchError(url, f"body exceeds the {self.max_bytes}-byte cap", transient=False)
                if time.monotonic() > deadline:
                    raise FetchError(url, f"timed out after {self.timeout:g}s (slow body)")
                chunks.append(chunk)
        except requests.RequestException as exc:
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
        with self._hosts_lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _http_error(url: str, response: requests.Response) -> FetchError:
    status = response.status_code
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
