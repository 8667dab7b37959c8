"""fetch.py against loopback servers that misbehave on purpose (tests/fixtures_ingest.py)."""

from __future__ import annotations

import gzip
import re
import socket
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from feedletter.config import Gather
from feedletter.errors import FetchError
from feedletter.fetch import DEFAULT_USER_AGENT, Fetcher, check_address
from tests.fixtures_ingest import RSS, RudeServer, rude, send

__all__ = ["rude"]


def _slow(seconds: float) -> object:
    def handler(request: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        send(request, 200, RSS)
    return handler


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with Fetcher(allow_private=True, timeout=5) as f:
        yield f


def test_default_pool_suits_two_cores() -> None:
    settings = Gather()
    assert settings.concurrency == 16 and settings.per_host == 4 and settings.max_bytes == 10 * 1024 * 1024


def test_pool_is_bounded(rude: RudeServer) -> None:
    urls = [rude.route(f"/f{i}", _slow(0.2)) for i in range(9)]  # type: ignore[arg-type]
    with Fetcher(allow_private=True, per_host=16) as f:
        results = list(f.map(f.get, urls, workers=3))
    assert [r.status for r in results] == [200] * 9
    assert rude.peak == 3


def test_per_host_limit(rude: RudeServer) -> None:
    urls = [rude.route(f"/f{i}", _slow(0.2)) for i in range(8)]  # type: ignore[arg-type]
    with Fetcher(allow_private=True, per_host=2) as f:
        list(f.map(f.get, urls, workers=8))
    assert rude.peak == 2


def test_connections_are_reused(rude: RudeServer, fetcher: Fetcher) -> None:
    url = rude.route("/feed", lambda r: send(r, 200, RSS))
    for _ in range(5):
        assert fetcher.get(url).body == RSS
    assert rude.hits["/feed"] == 5 and len(rude.connections) == 1


def test_conditional_get_user_agent_and_encoding_headers(rude: RudeServer, fetcher: Fetcher) -> None:
    def handler(request: BaseHTTPRequestHandler) -> None:
        if request.headers.get("If-None-Match") == '"v1"' or \
                request.headers.get("If-Modified-Since") == "Tue, 14 Nov 2023 22:13:20 GMT":
            send(request, 304, headers={"ETag": '"v1"'})
        else:
            send(request, 200, RSS, {"ETag": '"v1"', "Last-Modified": "Tue, 14 Nov 2023 22:13:20 GMT"})

    url = rude.route("/feed", handler)
    first = fetcher.get(url)
    assert first.status == 200 and first.etag == '"v1"' and first.last_modified
    again = fetcher.get(url, etag=first.etag, last_modified=first.last_modified)
    assert again.not_modified and again.body is None
    only_date = fetcher.get(url, last_modified=first.last_modified)
    assert only_date.not_modified
    sent = rude.headers[1]
    assert sent["If-None-Match"] == '"v1"' and sent["User-Agent"] == DEFAULT_USER_AGENT
    assert "gzip" in sent["Accept-Encoding"] and "deflate" in sent["Accept-Encoding"]


@pytest.mark.parametrize("encoding,encode", [("gzip", gzip.compress), ("deflate", zlib.compress)])
def test_compressed_bodies_are_decoded(rude: RudeServer, fetcher: Fetcher, encoding: str, encode: object) -> None:
    packed = encode(RSS)  # type: ignore[operator]
    url = rude.route("/feed", lambda r: send(r, 200, packed, {"Content-Encoding": encoding}))
    assert fetcher.get(url).body == RSS


def test_declared_body_over_the_cap_is_refused(rude: RudeServer) -> None:
    url = rude.route("/big", lambda r: send(r, 200, b"x" * 5000))
    with Fetcher(allow_private=True, max_bytes=4096) as f, pytest.raises(FetchError, match="exceeds the 4096-byte cap"):
        f.get(url)


def test_undeclared_body_over_the_cap_is_aborted(rude: RudeServer) -> None:
    def endless(request: BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("Connection", "close")
        request.end_headers()  # no Content-Length: read until close, which never comes in time
        try:
            for _ in range(10_000):
                request.wfile.write(b"y" * 65536)
        except OSError:
            pass  # the client hung up, as it should

    url = rude.route("/endless", endless)
    started = time.monotonic()
    with Fetcher(allow_private=True, max_bytes=1024 * 1024) as f, pytest.raises(FetchError, match="exceeds"):
        f.get(url)
    assert time.monotonic() - started < 3


def test_gzip_bomb_stops_at_the_cap(rude: RudeServer) -> None:
    bomb = gzip.compress(b"\0" * (20 * 1024 * 1024))  # 20 kB on the wire
    url = rude.route("/bomb", lambda r: send(r, 200, bomb, {"Content-Encoding": "gzip"}))
    with Fetcher(allow_private=True, max_bytes=1024 * 1024) as f, pytest.raises(FetchError, match="exceeds"):
        f.get(url)


def test_read_timeout(rude: RudeServer) -> None:
    url = rude.route("/sleepy", _slow(3))  # type: ignore[arg-type]
    started = time.monotonic()
    with Fetcher(allow_private=True, timeout=0.5) as f, pytest.raises(FetchError, match="timed out"):
        f.get(url)
    assert time.monotonic() - started < 2


def test_connect_timeout() -> None:
    # A listener that never accepts, its backlog filled: further connects hang in SYN.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    time.sleep(0.1)
    started = time.monotonic()
    try:
        with Fetcher(allow_private=True, timeout=10, connect_timeout=0.5) as f, \
                pytest.raises(FetchError, match=r"timed out|connection failed"):
            f.get(f"http://127.0.0.1:{port}/feed")
        assert time.monotonic() - started < 3
    finally:
        for s in [*fillers, listener]:
            s.close()


def test_drip_fed_body_cannot_outlast_the_total_timeout(rude: RudeServer) -> None:
    def drip(request: BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("Content-Length", "100000")
        request.end_headers()
        try:
            for _ in range(1000):
                request.wfile.write(b"<")
                request.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass

    url = rude.route("/drip", drip)
    started = time.monotonic()
    with Fetcher(allow_private=True, timeout=1.0) as f, pytest.raises(FetchError, match="timed out"):
        f.get(url)
    assert time.monotonic() - started < 2.5


def test_drip_fed_headers_cannot_outlast_the_total_timeout(rude: RudeServer) -> None:
    def drip(request: BaseHTTPRequestHandler) -> None:
        try:
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"z" * 1000:
                request.wfile.write(bytes([byte]))
                request.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass

    url = rude.route("/drip-headers", drip)
    started = time.monotonic()
    with Fetcher(allow_private=True, timeout=1.0) as f, pytest.raises(FetchError, match="timed out"):
        f.get(url)
    assert time.monotonic() - started < 2.5


def test_redirects_are_followed_up_to_the_limit(rude: RudeServer, fetcher: Fetcher) -> None:
    for i in range(5):
        rude.route(f"/r{i}", lambda r, i=i: send(r, 302, headers={"Location": f"/r{i + 1}"}))
    rude.route("/r5", lambda r: send(r, 200, RSS))
    result = fetcher.get(rude.url("/r0"))  # five hops: the default limit
    assert result.body == RSS and result.url == rude.url("/r5") and result.moved_to is None
    with Fetcher(allow_private=True, max_redirects=3) as f, pytest.raises(FetchError, match="more than 3 redirects"):
        f.get(rude.url("/r0"))


@pytest.mark.parametrize("status,moved", [(301, True), (308, True), (302, False), (307, False)])
def test_permanent_redirect_reports_the_new_url(rude: RudeServer, fetcher: Fetcher, status: int, moved: bool) -> None:
    rude.route("/old", lambda r: send(r, status, headers={"Location": "/new"}))
    new = rude.route("/new", lambda r: send(r, 200, RSS))
    result = fetcher.get(rude.url("/old"))
    assert result.url == new and result.body == RSS
    assert result.moved_to == (new if moved else None)


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_reported(rude: RudeServer, fetcher: Fetcher, status: int) -> None:
    url = rude.route("/busy", lambda r: send(r, status, headers={"Retry-After": "120"}))
    with pytest.raises(FetchError) as caught:
        fetcher.get(url)
    assert caught.value.retry_after == 120 and caught.value.transient and caught.value.status == status
    assert str(caught.value).startswith(f"fetch: {url}: HTTP {status}")


def test_retry_after_as_a_date(rude: RudeServer, fetcher: Fetcher) -> None:
    from email.utils import formatdate

    later = formatdate(time.time() + 600, usegmt=True)
    url = rude.route("/busy", lambda r: send(r, 503, headers={"Retry-After": later}))
    with pytest.raises(FetchError) as caught:
        fetcher.get(url)
    assert caught.value.retry_after is not None and 590 < caught.value.retry_after <= 600


@pytest.mark.parametrize("host", ["127.0.0.1", "10.1.2.3", "172.16.0.9", "192.168.1.1", "169.254.169.254",
                                  "[::1]", "[fe80::1]", "[fd00::1]", "[::ffff:127.0.0.1]", "0.0.0.0", "localhost"])
def test_ssrf_guard_refuses_non_public_addresses(host: str) -> None:
    with pytest.raises(FetchError, match=r"refused: .* resolves to non-public address") as caught:
        check_address(f"http://{host}/feed.xml", allow_private=False)
    assert "allow_private" in str(caught.value) and not caught.value.transient
    check_address(f"http://{host}/feed.xml", allow_private=True)


def test_ssrf_guard_refuses_before_any_request(rude: RudeServer) -> None:
    url = rude.route("/feed", lambda r: send(r, 200, RSS))
    with Fetcher() as f, pytest.raises(FetchError, match=re.escape("non-public address 127.0.0.1")):
        f.get(url)
    assert rude.hits["/feed"] == 0
    with Fetcher() as f:  # the per-request override, as a source's allow_private gives it
        assert f.get(url, allow_private=True).body == RSS


def test_schemes_other_than_http_are_refused() -> None:
    for url in ("file:///etc/passwd", "ftp://example.org/feed", "gopher://x/"):
        with pytest.raises(FetchError, match="only http and https"):
            check_address(url, allow_private=True)


def _fake_dns(monkeypatch: pytest.MonkeyPatch, answers: list[str]) -> list[str]:
    """Stand in for the outside resolver: each lookup of rebind.example gets the next answer."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def lookup(host: str, port: object, *args: object, **kwargs: object) -> list[tuple[object, ...]]:
        if host == "rebind.example":
            address = answers[min(len(asked), len(answers) - 1)]
            asked.append(address)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, port, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    return asked


def test_dns_rebinding_cannot_reach_loopback(rude: RudeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    rude.route("/feed", lambda r: send(r, 200, RSS))
    port = rude.httpd.server_address[1]
    # First answer public (what a separate pre-check would see), then loopback (the rebind).
    asked = _fake_dns(monkeypatch, ["192.0.2.10", "127.0.0.1"])
    with Fetcher(timeout=1.5, connect_timeout=0.5) as f, pytest.raises(FetchError):
        f.get(f"http://rebind.example:{port}/feed")
    assert rude.hits["/feed"] == 0 and asked[0] == "192.0.2.10"
    # The connection went to the one address that was checked, never to a second lookup's.
    assert len(asked) == 1


def test_a_name_resolving_to_loopback_is_refused(rude: RudeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    rude.route("/feed", lambda r: send(r, 200, RSS))
    _fake_dns(monkeypatch, ["127.0.0.1"])
    with Fetcher() as f, pytest.raises(FetchError, match=r"rebind\.example resolves to non-public address 127\.0"):
        f.get(f"http://rebind.example:{rude.httpd.server_address[1]}/feed")
    assert rude.hits["/feed"] == 0
