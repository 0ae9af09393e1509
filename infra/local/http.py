"""One aiohttp application on one TCP port: the start and stop both local HTTP servers share.

The edge API (``AWS_ENDPOINT_URL``) and the web app's server are plain aiohttp applications.
Serving one takes the same steps each time: set up a runner, bind a site (cleaning the runner
up when the port is taken), read back the port actually bound (port 0 picks a free one), and
clean up exactly once on stop.

Both answer only the ``Host`` names :mod:`infra.local.hosts` allows (loopback, plus the names
given with ``iotchat up --allow-host``): the first middleware of every application served
here refuses any other ``Host`` with 403, before the application's own middlewares (CORS,
the edge API's routing by ``X-Amz-Target``), before the body is read and before any
signature is checked, so a DNS-rebinding page reaches nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from infra.local.hosts import HOST_REFUSED, LOOPBACK_ONLY, HostAllowList

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def host_middleware(hosts: HostAllowList) -> Callable[..., Awaitable[web.StreamResponse]]:
    """A middleware answering 403 to a request whose ``Host`` ``hosts`` does not allow."""

    @web.middleware
    async def check_host(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not hosts.allows(request.headers.get("Host")):
            return web.Response(status=403, text=HOST_REFUSED)
        return await handler(request)

    return check_host


class AppServer:
    """Serves ``app`` on one port; start once, stop once (a second stop does nothing).

    ``hosts`` decides which ``Host`` headers are answered; its check runs first, before every
    middleware ``app`` was built with.
    """

    def __init__(self, app: web.Application, hosts: HostAllowList = LOOPBACK_ONLY) -> None:
        self.app = app
        self.hosts = hosts
        app.middlewares.insert(0, host_middleware(hosts))
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0 picks a free port) and return the bound port."""
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
