"""One aiohttp application on one TCP port: the start and stop both local HTTP servers share.

The edge API (``AWS_ENDPOINT_URL``) and the web app's server are plain aiohttp applications.
Serving one takes the same steps each time: set up a runner, bind a site (cleaning the runner
up when the port is taken), read back the port actually bound (port 0 picks a free one), and
clean up exactly once on stop.
"""

from __future__ import annotations

from aiohttp import web


class AppServer:
    """Serves ``app`` on one port; start once, stop once (a second stop does nothing)."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
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
