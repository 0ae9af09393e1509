"""The web client's HTTP server: ``client/web``'s own files, two vendor files, ``config.json``.

Only files that exist in ``client/web`` (outside ``node_modules``) when the server starts are
served, looked up by exact relative path in a table built then: a request path is never joined
onto the file system, so no ``..``, symlink or encoded-slash trick can reach anything else,
and there is no directory listing. The two npm packages the page imports are served from
``client/web/node_modules`` under fixed paths, so no third-party file is copied into the
repository. Every response carries a Content-Security-Policy that allows scripts from this
origin only (no inline script, no eval) and network connections only to the stack's own
endpoints.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from infra.local.http import AppServer

log = logging.getLogger("iotchat.web")

WEB_ROOT = Path(__file__).resolve().parents[3] / "client" / "web"
# URL path -> file under client/web/node_modules (the package's browser ES module build).
VENDOR_FILES = {
    "/vendor/mqtt.js": "mqtt/dist/mqtt.esm.js",
    "/vendor/aws4fetch.js": "aws4fetch/dist/aws4fetch.esm.js",
}
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
# Not the app: the npm manifests stay private even though they live next to index.html.
_NOT_SERVED = frozenset({"package.json", "package-lock.json"})

WebConfig = Callable[[], dict[str, Any]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def config_from_stack(info: dict[str, Any]) -> dict[str, Any]:
    """The page's ``config.json`` from a stack file: a local stack's loopback ``ws`` listener
    when it has one (no local CA to trust in the browser), else the ``wss`` endpoint."""
    iot = info["iot"]
    host = iot.get("host", "127.0.0.1")
    if iot.get("wsPort"):
        url = f"ws://{host}:{iot['wsPort']}/mqtt"
    elif iot.get("wssPort") and iot["wssPort"] != 443:
        url = f"wss://{host}:{iot['wssPort']}/mqtt"
    else:
        url = f"wss://{host}/mqtt"
    cognito = info.get("cognito", {})
    return {
        "region": info["region"],
        "identityPoolId": cognito.get("identityPoolId"),
        "userPoolId": cognito.get("userPoolId"),
        "userPoolClientId": cognito.get("userPoolClientId"),
        "apiEndpoint": info.get("api", {}).get("endpoint"),
        "iot": {"url": url},
    }


def _origin(url: str | None) -> str | None:
    """``scheme://host[:port]`` of a URL, or None for anything that is not http(s)/ws(s)."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
        return None
    if any(c in parts.netloc for c in " ;,'\"*"):
        return None
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(config: dict[str, Any]) -> str:
    """Scripts and styles from this origin only; connections to this origin, the edge API and
    the IoT endpoint named in the config; no frames, plugins, forms elsewhere or ``<base>``."""
    connect = ["'self'"]
    for url in (config.get("apiEndpoint"), (config.get("iot") or {}).get("url")):
        origin = _origin(url)
        if origin is not None and origin not in connect:
            connect.append(origin)
    region = config.get("region")
    if not config.get("apiEndpoint") and isinstance(region, str) and region.isascii():
        # On AWS the page talks to Cognito's regional endpoints directly.
        for service in ("cognito-identity", "cognito-idp"):
            connect.append(f"https://{service}.{region}.amazonaws.com")
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            "connect-src " + " ".join(connect),
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        )
    )


class WebServer:
    """Serves the web client on one port; start once, stop once."""

    def __init__(self, config: WebConfig, root: Path = WEB_ROOT) -> None:
        self.config = config
        self.root = root.resolve()
        self.files: dict[str, Path] = {}
        self.port: int | None = None
        self.app = web.Application(middlewares=[self._security_headers])
        self.app.router.add_get("/config.json", self._config)
        self.app.router.add_get("/{path:.*}", self._file)
        self._server = AppServer(self.app)

    def scan(self) -> dict[str, Path]:
        """URL path -> file, for the app's own files and the vendor files that exist."""
        files: dict[str, Path] = {}
        for folder, dirs, names in os.walk(self.root):  # symlinked folders are not entered
            # node_modules is reached only through VENDOR_FILES; dot folders never.
            dirs[:] = [d for d in dirs if d != "node_modules" and not d.startswith(".")]
            for name in names:
                path = Path(folder) / name
                if (
                    name.startswith(".")
                    or name in _NOT_SERVED
                    or path.suffix not in CONTENT_TYPES
                    or path.is_symlink()
                    or not path.is_file()
                ):
                    continue
                files["/" + path.relative_to(self.root).as_posix()] = path
        for url, vendored in VENDOR_FILES.items():
            path = self.root / "node_modules" / vendored
            if path.is_file():
                files[url] = path
            else:
                log.warning("%s is missing: run scripts/setup (npm ci in client/web)", path)
        files["/"] = files.get("/index.html", self.root / "index.html")
        return files

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

    def _add_headers(self, headers: Any) -> None:
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
