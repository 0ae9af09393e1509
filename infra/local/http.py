"""One aiohttp application on one TCP port: the start and stop both local HTTP servers share.

The edge API (``AWS_ENDPOINT_URL``) and the web app's server are plain aiohttp applications.
Serving one takes the same steps each time: set up a runner, listen (cleaning the runner up
when the port is taken), read back the port actually bound (port 0 picks a free one), and
clean up exactly once on stop.

Both answer only the ``Host`` names :mod:`infra.local.hosts` allows (loopback, plus the names
given with ``iotchat up --allow-host``): the first middleware of every application served
here refuses any other ``Host`` with 403, before the application's own middlewares (CORS,
the edge API's routing by ``X-Amz-Target``), before the body is read and before any
signature is checked, so a DNS-rebinding page reaches nothing.

Both hold up under hostile traffic with the same :class:`HttpLimits`:

* **Request head deadline** (``header_timeout``, 10 s): from accept, or from the end of the
  previous response on a keep-alive connection, the request line and headers must be
  complete within it, or the connection is closed. This is aiohttp's keep-alive timer
  (https://docs.aiohttp.org/en/stable/web_reference.html#aiohttp.web.AppRunner, ``**kwargs``
  of the web protocol), which aiohttp arms at accept and after each response and which
  closes the connection if no complete request has arrived by then; bytes trickled in do not
  re-arm it. So a silent socket, a half-sent request line and an idle keep-alive connection
  are all closed after ``header_timeout``. Header sizes are capped (``max_line_size``,
  ``max_field_size``, ``max_headers``): aiohttp answers 400 past them.
* **Body deadline** (``body_timeout`` + declared length / ``body_min_rate``; for a chunked
  body, the listener's largest body): a body not fully received by then has its connection
  closed (:func:`body_limits_middleware`), whoever is, or is not, reading it.
* **Body size before the body**: a ``Content-Length`` above the listener's ``max_body_bytes``
  is answered 413 before a byte of the body is read, and without ``100 Continue``; the edge
  API checks each service's own, smaller limit the same way and reads bodies with
  :func:`read_body`, which counts a chunked body as it arrives.
* **Connection cap** (``max_connections`` open at once per listener): one more is answered
  ``503 Service Unavailable`` and closed at once, so a flood of sockets holds a bounded
  number of descriptors, each for at most the head deadline.
* A handler whose client disconnected is cancelled (aiohttp's ``handler_cancellation``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http import HttpVersion11

from infra.local.hosts import HOST_REFUSED, LOOPBACK_ONLY, HostAllowList

log = logging.getLogger("iotchat.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# The answer to a request whose declared body is above the limit (given), in the app's shape.
TooLarge = Callable[[web.Request, int], web.StreamResponse]

MiB = 1024 * 1024
# A request key: set when the route deferred ``Expect: 100-continue`` to read_body.
_EXPECT_DEFERRED = web.RequestKey("iotchat.expect_deferred", bool)
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_FULL_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 21\r\n"
    b"Retry-After: 1\r\n"
    b"Connection: close\r\n"
    b"\r\n"
    b"too many connections\n"
)
# How often a listener that is full says so in the log.
_FULL_LOG_EVERY = 10.0


@dataclass(frozen=True)
class HttpLimits:
    """What one HTTP listener allows each connection (see the module docstring)."""

    # Seconds from accept (or the previous response) to a complete request head; also how
    # long an idle keep-alive connection is kept.
    header_timeout: float = 10.0
    # The body deadline: this floor plus the declared length at body_min_rate bytes/s.
    body_timeout: float = 10.0
    body_min_rate: int = 256 * 1024
    # The largest body the listener reads at all (a handler may allow less).
    max_body_bytes: int = 16 * MiB
    # Connections open at once; one more is answered 503 and closed.
    max_connections: int = 512
    # aiohttp's request head limits (it answers 400 past them).
    max_line_size: int = 8190
    max_field_size: int = 8190
    max_headers: int = 100
    # How long an unread body is drained after the answer (so the client reads the answer
    # instead of a reset) before the connection is closed.
    lingering_time: float = 2.0

    def body_deadline(self, length: int | None) -> float:
        """Seconds a body of ``length`` bytes (None: chunked) may take to arrive."""
        size = self.max_body_bytes if length is None else min(length, self.max_body_bytes)
        return self.body_timeout + size / self.body_min_rate


class BodyTooLarge(Exception):
    """A request body above ``limit`` bytes: declared so, or counted so as it arrived."""

    def __init__(self, limit: int, size: int | None) -> None:
        super().__init__(f"request body over {limit} bytes")
        self.limit = limit
        self.size = size


def declared_too_large(request: web.BaseRequest, limit: int) -> bool:
    """True when the request's ``Content-Length`` is above ``limit`` (nothing read)."""
    length = request.content_length
    return length is not None and length > limit


async def defer_expect(request: web.Request) -> None:
    """An ``expect_handler`` for routes whose handler reads the body with :func:`read_body`:
    ``100 Continue`` is sent only once the request passed its checks and the body is wanted,
    so a refused client never sends its body at all."""
    request[_EXPECT_DEFERRED] = True


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, read only if it is at most ``limit`` bytes: a larger
    ``Content-Length`` raises :class:`BodyTooLarge` before anything is read, and a chunked
    body raises it as soon as it has grown past ``limit``. Sends ``100 Continue`` if the
    route deferred it (:func:`defer_expect`). The listener's body deadline bounds the time."""
    length = request.content_length
    if length is not None and length > limit:
        raise BodyTooLarge(limit, length)
    if request.get(_EXPECT_DEFERRED) and request.version == HttpVersion11:
        expect = request.headers.get("Expect", "")
        if expect.lower() == "100-continue":
            await request.writer.write(_CONTINUE)
            request.writer.output_size = 0
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(limit, None)
    return bytes(body)


def host_middleware(hosts: HostAllowList) -> Callable[..., Awaitable[web.StreamResponse]]:
    """A middleware answering 403 to a request whose ``Host`` ``hosts`` does not allow."""

    @web.middleware
    async def check_host(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not hosts.allows(request.headers.get("Host")):
            return web.Response(status=403, text=HOST_REFUSED)
        return await handler(request)

    return check_host


def _cut_slow_body(request: web.Request, deadline: float) -> None:
    """Close the connection of a request whose body has not fully arrived by its deadline."""
    if request.content.is_eof():
        return
    log.debug(  # not INFO: a flood of slow bodies must not flood the log
        "%s %s: body not received within %.1f s; connection closed",
        request.method,
        request.path,
        deadline,
    )
    request.protocol.force_close()


def plain_too_large(request: web.Request, limit: int) -> web.StreamResponse:
    """``413 Request Entity Too Large`` as plain text."""
    return web.Response(status=413, text="Request Entity Too Large\n")


def body_limits_middleware(
    limits: HttpLimits, too_large: TooLarge = plain_too_large
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """``too_large``'s answer (413) for a declared body above ``limits.max_body_bytes``
    (nothing read, the connection closed after it), and the body deadline for every request
    that has a body."""

    @web.middleware
    async def limit_body(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.can_read_body:
            return await handler(request)
        if declared_too_large(request, limits.max_body_bytes):
            response = too_large(request, limits.max_body_bytes)
            response.force_close()
            return response
        deadline = limits.body_deadline(request.content_length)
        timer = asyncio.get_running_loop().call_later(deadline, _cut_slow_body, request, deadline)
        try:
            return await handler(request)
        finally:
            timer.cancel()

    return limit_body


class _Counted(asyncio.Protocol):
    """The web protocol of one admitted connection, which tells the gate when it is gone."""

    def __init__(self, inner: asyncio.Protocol, gone: Callable[[], None]) -> None:
        self._inner = inner
        self._gone: Callable[[], None] | None = gone

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._gone is not None:
            self._gone()
            self._gone = None
        self._inner.connection_lost(exc)


class _Full(asyncio.Protocol):
    """A connection over the cap: answered 503 and closed at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(_FULL_RESPONSE)
        transport.close()


class _ConnectionGate:
    """The listener's protocol factory: admits up to ``limit`` connections at once."""

    def __init__(self, factory: Callable[[], Any], limit: int, name: str) -> None:
        self._factory = factory
        self.limit = limit
        self.name = name
        self.open = 0
        self.refused = 0
        self._logged_at = -_FULL_LOG_EVERY

    def __call__(self) -> asyncio.Protocol:
        if self.open >= self.limit:
            self.refused += 1
            now = time.monotonic()
            if now - self._logged_at >= _FULL_LOG_EVERY:
                self._logged_at = now
                log.warning(
                    "%s: %d connections open, the most it allows; refusing more (503)",
                    self.name,
                    self.open,
                )
            return _Full()
        self.open += 1
        return _Counted(self._factory(), self._closed)

    def _closed(self) -> None:
        self.open -= 1


class AppServer:
    """Serves ``app`` on one port; start once, stop once (a second stop does nothing).

    ``hosts`` decides which ``Host`` headers are answered; its check runs first, before every
    middleware ``app`` was built with, followed by the body limits of ``limits`` (a body
    declared too large is answered by ``too_large``, in the app's own error shape).
    """

    def __init__(
        self,
        app: web.Application,
        hosts: HostAllowList = LOOPBACK_ONLY,
        limits: HttpLimits | None = None,
        name: str = "http",
        too_large: TooLarge = plain_too_large,
    ) -> None:
        self.app = app
        self.hosts = hosts
        self.limits = limits or HttpLimits()
        self.name = name
        app.middlewares.insert(0, host_middleware(hosts))
        app.middlewares.insert(1, body_limits_middleware(self.limits, too_large))
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self._gate: _ConnectionGate | None = None

    @property
    def open_connections(self) -> int:
        """Connections open now (admitted ones; refused ones are closed at once)."""
        return self._gate.open if self._gate is not None else 0

    @property
    def refused_connections(self) -> int:
        """Connections answered 503 because the listener was full, since start."""
        return self._gate.refused if self._gate is not None else 0

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0 picks a free port) and return the bound port."""
        limits = self.limits
        runner = web.AppRunner(
            self.app,
            access_log=None,
            handler_cancellation=True,
            keepalive_timeout=limits.header_timeout,
            max_line_size=limits.max_line_size,
            max_field_size=limits.max_field_size,
            max_headers=limits.max_headers,
            lingering_time=limits.lingering_time,
        )
        await runner.setup()
        assert runner.server is not None
        gate = _ConnectionGate(runner.server, limits.max_connections, self.name)
        try:
            listener = await asyncio.get_running_loop().create_server(gate, host, port)
        except OSError:
            await runner.cleanup()
            raise
        self._runner, self._listener, self._gate = runner, listener, gate
        self.port = int(listener.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
