"""The web client's HTTP server: ``client/web``'s own files, two vendor files, ``config.json``.

What the app is (its file table, content types, ``config.json`` and Content-Security-Policy)
is the app's own knowledge, in :mod:`client.webapp`; this module only serves it. Files are
looked up by exact relative path in a table built when the server starts: a request path is
never joined onto the file system, so no ``..``, symlink or encoded-slash trick can reach
anything else, and there is no directory listing. Every response carries the app's
Content-Security-Policy (scripts from this origin only, no inline script, no eval, network
connections only to the stack's own endpoints) and the usual hardening headers.

The listener has the deadlines and caps of :class:`infra.local.http.HttpLimits` (request head
within 10 s, idle keep-alive closed then, 512 connections at once); it takes no request
bodies, so one declared above 64 KiB is answered 413 unread (:func:`web_limits`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from aiohttp import web

from client.webapp import CONTENT_TYPES, WEB_ROOT, content_security_policy, served_files
from infra.local.hosts import HostAllowList
from infra.local.http import AppServer, HttpLimits
from infra.local.web.developer import DeveloperPage

log = logging.getLogger("iotchat.web")

WebConfig = Callable[[], dict[str, Any]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The app only GETs files: no request needs a body.
MAX_BODY_BYTES = 64 * 1024


def web_limits(limits: HttpLimits) -> HttpLimits:
    """The stack's HTTP limits as the web app's listener applies them (small bodies only)."""
    return dataclasses.replace(limits, max_body_bytes=min(limits.max_body_bytes, MAX_BODY_BYTES))


class WebServer:
    """Serves the web client on one port; start once, stop once.

    Only ``Host`` names that are loopback ones or in ``allowed_hosts`` are answered (403 for
    any other, before anything else: :mod:`infra.local.http`).
    """

    def __init__(
        self,
        config: WebConfig,
        root: Path = WEB_ROOT,
        allowed_hosts: tuple[str, ...] = (),
        limits: HttpLimits | None = None,
        developer: DeveloperPage | None = None,
    ) -> None:
        """``developer``: the developer page under ``/_iotchat/`` (docs/tracing.md)."""
        self.config = config
        self.root = root.resolve()
        self.files: dict[str, Path] = {}
        self.port: int | None = None
        self.app = web.Application(middlewares=[self._security_headers])
        self.app.router.add_get("/config.json", self._config)
        if developer is not None:
            developer.add_routes(self.app)
        self.app.router.add_get("/{path:.*}", self._file)
        self._server = AppServer(
            self.app, HostAllowList(allowed_hosts), web_limits(limits or HttpLimits()), "web"
        )

    def scan(self) -> dict[str, Path]:
        """URL path -> file, for the app's own files and the vendor files that exist."""
        return served_files(self.root)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on ``host:port`` (0 picks a free port) and return the bound port."""
        self.files = self.scan()
        self.port = await self._server.start(host, port)
        log.info("web client on http://%s:%d/", host, self.port)
        return self.port

    async def stop(self) -> None:
        await self._server.stop()

    @web.middleware
    async def _security_headers(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            self._add_headers(exc.headers)
            raise
        self._add_headers(response.headers)
        return response

    def _add_headers(self, headers: MutableMapping[str, str]) -> None:
        headers["Content-Security-Policy"] = content_security_policy(self.config())
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "no-referrer"
        headers["X-Frame-Options"] = "DENY"
        headers["Cross-Origin-Opener-Policy"] = "same-origin"
        headers["Cross-Origin-Resource-Policy"] = "same-origin"

    async def _config(self, request: web.Request) -> web.Response:
        return web.Response(
            text=json.dumps(self.config()),
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    async def _file(self, request: web.Request) -> web.StreamResponse:
        # raw_path, undecoded: "/a%2F..%2Fb" is simply not a key of the table.
        path = request.raw_path.partition("?")[0]
        file = self.files.get(path)
        if file is None:
            raise web.HTTPNotFound(text="Not Found\n")
        return web.FileResponse(
            file,
            headers={
                "Content-Type": CONTENT_TYPES[file.suffix],
                "Cache-Control": "no-cache",
            },
        )
