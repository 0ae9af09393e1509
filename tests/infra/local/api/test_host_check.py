"""The Host check every local HTTP listener shares (infra/local/http.py's AppServer): loopback
names and the configured ones are served; any other name gets 403 before the application's
own middlewares or handlers see the request."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Awaitable, Callable, Iterator

import pytest
from aiohttp import web

from infra.local.hosts import HostAllowList
from infra.local.http import AppServer
from tests.support.stack import serve_in_thread

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Served:
    def __init__(self, server: AppServer, seen: list[str]) -> None:
        self.server = server
        self.seen = seen

    def get(self, host: str | None, path: str = "/") -> int:
        assert self.server.port is not None
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=5)
        try:
            conn.putrequest("POST", path, skip_host=True)
            if host is not None:
                conn.putheader("Host", host)
            conn.putheader("Content-Length", "2")
            conn.endheaders(b"{}")
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()


@pytest.fixture
def served() -> Iterator[Served]:
    seen: list[str] = []
    lock = threading.Lock()

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        with lock:
            seen.append(request.path)  # what the application's own middlewares see
        return await handler(request)

    async def body(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    app = web.Application(middlewares=[record])
    app.router.add_post("/echo", body)
    server = AppServer(app, HostAllowList(["chat.example.test"]))

    async def start() -> AppServer:
        await server.start("127.0.0.1", 0)
        return server

    with serve_in_thread(start, server.stop, ready_timeout=10, stop_timeout=10):
        yield Served(server, seen)


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "app.localhost", "[::1]:80", "chat.example.test:8080"],
)
def test_loopback_and_configured_names_are_served(served: Served, host: str) -> None:
    assert served.get(host, "/echo") == 200
    assert served.seen == ["/echo"]


@pytest.mark.parametrize(
    "host",
    ["rebind.example", "rebind.example:4566", "127.0.0.1.rebind.example", "example.test", None],
)
def test_other_names_are_refused_before_the_application(served: Served, host: str | None) -> None:
    # No Host at all: HTTP/1.1 requires one, and aiohttp's parser refuses it first (400).
    refused = 403 if host is not None else 400
    assert served.get(host, "/echo") == refused
    assert served.get(host, "/no-such-path") == refused  # not 404: nothing was routed
    assert served.seen == []
    assert served.get("127.0.0.1", "/echo") == 200
