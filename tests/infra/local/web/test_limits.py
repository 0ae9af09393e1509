"""The deadlines and caps every local HTTP listener applies (:mod:`infra.local.http`), seen on
the web app's listener (and, for bodies, on a small app served the same way) with short limits:
a silent, half-sent, trickled or idle connection is closed by the head deadline, a slow body by
its deadline, a body declared too large is refused unread, and connections beyond the cap are
answered 503 at once, while a normal request on another connection is served meanwhile."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from aiohttp import web

from infra.local.http import AppServer, BodyTooLarge, HttpLimits, defer_expect, read_body
from infra.local.web import WebServer
from tests.support.stack import serve_in_thread
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(60)

HEAD_DEADLINE = 1.0
LIMITS = HttpLimits(
    header_timeout=HEAD_DEADLINE,
    body_timeout=1.0,
    body_min_rate=1000,  # bytes/s: a 1,000-byte body has 1 s + 1 s
    max_connections=4,
)
ECHO_LIMIT = 2000


@pytest.fixture(scope="module")
def web_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    root = tmp_path_factory.mktemp("web-limits")
    (root / "index.html").write_text("<!doctype html><title>t</title>")
    server = WebServer(dict, root=root, limits=LIMITS)
    with serve_in_thread(
        lambda: server.start("127.0.0.1", 0), server.stop, ready_timeout=10, stop_timeout=10
    ) as port:
        yield port


async def _echo(request: web.Request) -> web.Response:
    try:
        return web.Response(body=await read_body(request, ECHO_LIMIT))
    except BodyTooLarge:
        return web.Response(status=413, text="too large\n")


@pytest.fixture(scope="module")
def echo_port() -> Iterator[int]:
    """An app that reads bodies (up to 2,000 bytes), served with the same limits."""
    app = web.Application()
    app.router.add_post("/echo", _echo, expect_handler=defer_expect)
    server = AppServer(app, limits=LIMITS, name="echo")
    with serve_in_thread(
        lambda: server.start("127.0.0.1", 0), server.stop, ready_timeout=10, stop_timeout=10
    ) as port:
        yield port


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.settimeout(10)
    return sock


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _get(port: int) -> bytes:
    with _connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        return _answer(sock)


def _closed_after(sock: socket.socket) -> tuple[bytes, float]:
    """What the server sent before closing, and how long after now it closed."""
    started = time.monotonic()
    data = _answer(sock)
    return data, time.monotonic() - started


def test_silent_and_half_sent_connections_are_closed_while_others_are_served(
    web_port: int,
) -> None:
    silent = _connect(web_port)
    half = _connect(web_port)
    half.sendall(b"GET / HT")
    trickled = _connect(web_port)
    opened = time.monotonic()
    for byte in b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n":  # one byte at a time, never done
        try:
            trickled.sendall(bytes([byte]))
        except OSError:
            break  # already closed: the deadline counts from accept, not from the last byte
        time.sleep(0.05)
    assert _get(web_port).startswith(b"HTTP/1.1 200 OK")  # served meanwhile
    for sock in (silent, half, trickled):
        with sock:
            try:
                data, _ = _closed_after(sock)
            except ConnectionResetError:
                data = b""
            assert data == b""  # closed without an answer
    # Each closed by its deadline, counted from accept (generous bound for a loaded machine).
    assert time.monotonic() - opened < HEAD_DEADLINE + 5


def test_an_idle_keep_alive_connection_is_closed_after_the_deadline(web_port: int) -> None:
    with _connect(web_port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 OK")
        rest, waited = _closed_after(sock)
        assert b"HTTP/1.1" not in rest  # nothing more was sent; then it was closed
        assert waited < HEAD_DEADLINE + 5


def test_a_body_declared_too_large_for_the_web_app_is_refused_unread(web_port: int) -> None:
    with _connect(web_port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 70000\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 413 ")
    assert _get(web_port).startswith(b"HTTP/1.1 200 OK")


def test_connections_beyond_the_cap_are_answered_503_at_once(web_port: int) -> None:
    wait_for(lambda: _get(web_port).startswith(b"HTTP/1.1 200"), timeout=10)
    held = [_connect(web_port) for _ in range(LIMITS.max_connections)]
    try:
        with _connect(web_port) as extra:  # answered at once, not held until a deadline
            data, _ = _closed_after(extra)
        assert data.startswith(b"HTTP/1.1 503 Service Unavailable")
    finally:
        for sock in held:
            sock.close()
    # Once the held ones are gone the listener serves again.
    wait_for(lambda: _get(web_port).startswith(b"HTTP/1.1 200"), timeout=10)


def _post(port: int, head: bytes, body: bytes = b"") -> socket.socket:
    sock = _connect(port)
    sock.sendall(b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n" + head + b"\r\n" + body)
    return sock


def test_a_body_is_read_within_its_limit_and_its_deadline(echo_port: int) -> None:
    with _post(echo_port, b"Content-Length: 5\r\nConnection: close\r\n", b"hello") as sock:
        assert _answer(sock).endswith(b"\r\n\r\nhello")
    # Slower than its deadline (1 s + 1,000 bytes at 1,000 bytes/s): cut off.
    with _post(echo_port, b"Content-Length: 1000\r\n", b"x" * 10) as sock:
        data, waited = _closed_after(sock)
    assert data == b""
    assert 1.5 < waited < 2 + 5
    # Declared above the handler's limit: 413 before any of it is sent.
    with _post(echo_port, b"Content-Length: 5000\r\n") as sock:
        assert sock.recv(65536).startswith(b"HTTP/1.1 413 ")
    # Chunked: counted as it arrives, refused once past the limit.
    chunk = b"%x\r\n%s\r\n" % (1500, b"y" * 1500)
    with _post(echo_port, b"Transfer-Encoding: chunked\r\n", chunk * 2) as sock:
        assert sock.recv(65536).startswith(b"HTTP/1.1 413 ")


def test_100_continue_is_sent_only_for_a_body_that_will_be_read(echo_port: int) -> None:
    expect = b"Expect: 100-continue\r\n"
    with _post(echo_port, b"Content-Length: 5000\r\n" + expect) as sock:
        assert sock.recv(65536).startswith(b"HTTP/1.1 413 ")  # no 100 Continue first
    with _post(echo_port, b"Content-Length: 3\r\nConnection: close\r\n" + expect) as sock:
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"abc")
        assert _answer(sock).endswith(b"\r\n\r\nabc")


def test_the_body_deadline_grows_with_the_declared_length() -> None:
    assert LIMITS.body_deadline(1000) == pytest.approx(2.0)
    assert LIMITS.body_deadline(None) == pytest.approx(1.0 + LIMITS.max_body_bytes / 1000)
