"""fetch.py against loopback servers that misbehave on purpose (tests/fixtures_ingest.py)."""

from __future__ import annotations

import gzip
import re
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from feedletter.config import Gather
from feedletter.errors import FetchError
from feedletter.ingest import connections, fetch
from feedletter.ingest.connections import check_address
from feedletter.ingest.fetch import DEFAULT_USER_AGENT, Fetcher
from tests.fixtures_ingest import RSS, RudeServer, rude, send
from tests.fixtures_tls import self_signed

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


def test_no_more_threads_than_the_hosts_serve_at_once() -> None:
    with Fetcher(per_host=2) as f:
        one_host = [f"https://a.example/feed/{i}" for i in range(50)]
        assert f.threads_for(one_host, 16) == 2
        assert f.threads_for([*one_host, "https://B.example/x", "http://c.example:8080/y"], 16) == 6
        assert f.threads_for([f"https://h{i}.example/" for i in range(50)], 16) == 16
        assert f.threads_for([], 16) == 1


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


def test_the_watchdog_thread_ends_with_the_fetcher_or_when_idle(rude: RudeServer,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A long-running process (``serve``) makes a fetcher per run: none may keep a thread behind."""
    url = rude.route("/feed", lambda r: send(r, 200, RSS))

    def watchdogs() -> int:
        return sum(t.name == "feedletter-watchdog" and t.is_alive() for t in threading.enumerate())

    before = watchdogs()
    for _ in range(3):
        with Fetcher(allow_private=True, timeout=30) as f:
            assert f.get(url).status == 200
            assert watchdogs() == before + 1
    _wait_for(lambda: watchdogs() == before)

    monkeypatch.setattr(connections.Watchdog, "_IDLE", 0.1)
    with Fetcher(allow_private=True, timeout=0.2) as f:
        f.get(url)
        # Left open: the thread ends once the request's deadline has passed and it idled a while.
        _wait_for(lambda: watchdogs() == before)
        assert f.get(url).status == 200  # and the next request has one again
        assert watchdogs() == before + 1
    _wait_for(lambda: watchdogs() == before)


def _wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "still not so after 5 s"
        time.sleep(0.02)


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
                                  "[::1]", "[fe80::1]", "[fd00::1]", "[::ffff:127.0.0.1]", "0.0.0.0", "localhost",
                                  # NAT64, 6to4 and IPv4-compatible forms of loopback, private and metadata
                                  "[64:ff9b::7f00:1]", "[64:ff9b::a00:1]", "[64:ff9b:1::a9fe:a9fe]",
                                  "[2002:7f00:1::]", "[2002:c0a8:101::1]", "[::7f00:1]", "[::a9fe:a9fe]"])
def test_ssrf_guard_refuses_non_public_addresses(host: str) -> None:
    with pytest.raises(FetchError, match=r"refused: .* resolves to non-public address") as caught:
        check_address(f"http://{host}/feed.xml", allow_private=False)
    assert "allow_private" in str(caught.value) and not caught.value.transient
    check_address(f"http://{host}/feed.xml", allow_private=True)


@pytest.mark.parametrize("address", ["64:ff9b::808:808", "2002:808:808::1", "2606:4700::1111"])
def test_an_ipv6_address_carrying_a_public_ipv4_address_is_public(address: str) -> None:
    from feedletter.ingest.connections import _refusal

    assert _refusal("feeds.example.org", address) is None


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


@pytest.fixture
def tls(rude: RudeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RudeServer, Path]]:
    """The rude server behind TLS, with a certificate of its own; ``SSL_CERT_FILE`` is left to the test."""
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    rude.httpd.socket = context.wrap_socket(rude.httpd.socket, server_side=True)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    yield rude, cert


def test_https_is_fetched_only_from_a_trusted_certificate(tls: tuple[RudeServer, Path],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    rude, cert = tls
    url = rude.route("/feed", lambda r: send(r, 200, RSS)).replace("http://", "https://")
    with Fetcher(allow_private=True, timeout=5) as f, pytest.raises(FetchError, match="CERTIFICATE_VERIFY_FAILED"):
        f.get(url)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # how a private CA is trusted, as with curl or requests
    with Fetcher(allow_private=True, timeout=5) as f:
        assert [f.get(url).body for _ in range(3)] == [RSS] * 3
    assert rude.hits["/feed"] == 3 and len(rude.connections) == 1  # kept alive across TLS too


def _close_after(request: BaseHTTPRequestHandler) -> None:
    """Answer, then hang up without having said so, as servers do when their keep-alive runs out."""
    send(request, 200, RSS)
    request.close_connection = True


def test_a_connection_the_server_closed_is_not_reused(rude: RudeServer, fetcher: Fetcher,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch, "STALE", ())  # no second try: the check before reuse alone must see it
    url = rude.route("/feed", _close_after)
    for _ in range(3):
        assert fetcher.get(url).body == RSS
        time.sleep(0.05)  # the server's close has arrived
    assert rude.hits["/feed"] == 3 and len(rude.connections) == 3


def test_a_request_on_a_connection_closed_meanwhile_is_sent_again(rude: RudeServer, fetcher: Fetcher,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # The server's close can cross the next request on the wire; the check before reuse cannot
    # see that case, so it is made to miss every close here.
    monkeypatch.setattr(connections, "_still_open", lambda conn: conn.sock is not None)
    url = rude.route("/feed", _close_after)
    for _ in range(3):
        assert fetcher.get(url).body == RSS
        time.sleep(0.05)
    assert rude.hits["/feed"] == 3


def test_spaces_and_non_ascii_in_a_url_are_percent_encoded(rude: RudeServer, fetcher: Fetcher) -> None:
    rude.route("/caf%C3%A9%20feed.xml", lambda r: send(r, 200, RSS))
    assert fetcher.get(rude.url("/café feed.xml")).body == RSS
    assert fetcher.get(rude.url("/caf%C3%A9%20feed.xml")).body == RSS  # already encoded: left alone


def test_chunked_and_raw_deflate_bodies_are_decoded(rude: RudeServer, fetcher: Fetcher) -> None:
    def chunked(request: BaseHTTPRequestHandler) -> None:
        raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)  # "deflate" without its zlib wrapper, as some send it
        packed = raw.compress(RSS) + raw.flush()
        request.send_response(200)
        request.send_header("Transfer-Encoding", "chunked")
        request.send_header("Content-Encoding", "deflate")
        request.end_headers()
        for start in range(0, len(packed), 50):
            piece = packed[start:start + 50]
            request.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        request.wfile.write(b"0\r\n\r\n")

    url = rude.route("/chunked", chunked)
    assert fetcher.get(url).body == RSS
    assert fetcher.get(url).body == RSS and len(rude.connections) == 1  # read to its end: reused


def test_an_encoding_not_asked_for_is_a_clear_error(rude: RudeServer, fetcher: Fetcher) -> None:
    url = rude.route("/br", lambda r: send(r, 200, b"\x1b\x00", {"Content-Encoding": "br"}))
    with pytest.raises(FetchError, match="Content-Encoding 'br', which was not asked for") as caught:
        fetcher.get(url)
    assert not caught.value.transient
    bad = rude.route("/bad-gzip", lambda r: send(r, 200, b"not gzip at all", {"Content-Encoding": "gzip"}))
    with pytest.raises(FetchError, match="body is not valid gzip"):
        fetcher.get(bad)


def test_a_refused_connection_says_so(fetcher: Fetcher) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        with pytest.raises(FetchError, match=r"connection failed: .*Connection refused") as caught:
            fetcher.get(f"http://127.0.0.1:{port}/feed")
    assert caught.value.transient


def test_a_redirect_to_a_utf8_location_is_followed(rude: RudeServer, fetcher: Fetcher) -> None:
    def moved(request: BaseHTTPRequestHandler) -> None:
        # The UTF-8 bytes on the wire as servers send them (send_header would encode Latin-1).
        request.wfile.write("HTTP/1.1 301 Moved\r\nLocation: /névé.xml\r\nContent-Length: 0\r\n\r\n".encode())

    rude.route("/old.xml", moved)
    rude.route("/n%C3%A9v%C3%A9.xml", lambda r: send(r, 200, RSS))
    result = fetcher.get(rude.url("/old.xml"))
    assert result.body == RSS and result.moved_to == rude.url("/névé.xml")


def test_a_header_value_with_a_line_break_is_refused(rude: RudeServer, fetcher: Fetcher) -> None:
    url = rude.route("/feed", lambda r: send(r, 200, RSS))
    with pytest.raises(FetchError, match="cannot send the request") as caught:
        fetcher.get(url, etag='"v1"\r\nX-Injected: yes')
    assert not caught.value.transient and rude.hits["/feed"] == 0


def test_map_keeps_order_and_raises_the_first_failure_after_all_ran() -> None:
    ran: list[int] = []

    def work(i: int) -> int:
        time.sleep(0.001 * (i % 3))
        ran.append(i)
        if i in (7, 3):
            raise ValueError(f"item {i}")
        return i * i

    with Fetcher() as f:
        assert list(f.map(lambda i: i * i, list(range(50)), workers=4)) == [i * i for i in range(50)]
        with pytest.raises(ValueError, match="item 3"):
            f.map(work, list(range(20)), workers=4)
    assert sorted(ran) == list(range(20))
