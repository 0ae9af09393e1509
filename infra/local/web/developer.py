"""The developer page, ``/_iotchat/`` on the web server: a look inside the running stack.

It lists the stack's rules, functions, tables with their item counts and connected clients
with their subscriptions, and follows the trace log live (with a topic filter). What it shows
is the whole stack's traffic, so it answers only the local admin, and only on loopback:

- a request from a non-loopback address, or with a ``Host`` that is not a loopback name (even
  one ``--allow-host`` admits for the chat), gets 403;
- the page's data needs a session: ``POST /_iotchat/login`` with the local admin's access key
  id and secret (from ``stack.json``), compared in constant time, sets an HttpOnly,
  SameSite=Strict cookie for ``/_iotchat/``; a login from another origin is refused, and
  failed logins are throttled;
- the page is three fixed files (no path from a request reaches the file system), rendered as
  text by its script (``textContent``), under the web app's Content-Security-Policy.
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from infra.local.trace import TraceFilter, TraceLog

PREFIX = "/_iotchat/"
COOKIE = "iotchat_dev"
SESSION_LIFETIME = 12 * 3600.0
MAX_SESSIONS = 32
# Failed logins allowed per minute before the next ones get 429.
MAX_FAILED_LOGINS = 5
MAX_TRACE_ENTRIES = 500
PAGE_DIR = Path(__file__).resolve().parent / "developer"
FILES = {
    PREFIX: ("index.html", "text/html; charset=utf-8"),
    PREFIX + "developer.js": ("developer.js", "text/javascript; charset=utf-8"),
    PREFIX + "developer.css": ("developer.css", "text/css; charset=utf-8"),
}
LOOPBACK_ADDRESSES = frozenset({"127.0.0.1", "::1"})
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]"})

Overview = Callable[[], Awaitable[dict[str, Any]]]
AdminCheck = Callable[[str, str], bool]


def admin_check(access_key_id: str, secret_access_key: str) -> AdminCheck:
    """Whether a login names the local admin's keys (constant-time comparisons)."""

    def check(key_id: str, secret: str) -> bool:
        same_id = hmac.compare_digest(key_id.encode(), access_key_id.encode())
        same_secret = hmac.compare_digest(secret.encode(), secret_access_key.encode())
        return same_id and same_secret

    return check


class DeveloperPage:
    """The page's routes on the web server's aiohttp application."""

    def __init__(self, overview: Overview, trace: TraceLog, is_admin: AdminCheck) -> None:
        self.overview = overview
        self.trace = trace
        self.is_admin = is_admin
        self.files = {path: (PAGE_DIR / name).read_bytes() for path, (name, _) in FILES.items()}
        self._sessions: OrderedDict[str, float] = OrderedDict()
        self._failures: deque[float] = deque()

    def add_routes(self, app: web.Application) -> None:
        for path in FILES:
            app.router.add_get(path, self._file)
        app.router.add_post(PREFIX + "login", self._login)
        app.router.add_post(PREFIX + "logout", self._logout)
        app.router.add_get(PREFIX + "api/session", self._session)
        app.router.add_get(PREFIX + "api/overview", self._overview)
        app.router.add_get(PREFIX + "api/trace", self._trace)

    # ------------------------------------------------------------------ doors

    @staticmethod
    def _loopback_only(request: web.Request) -> None:
        host = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
        if request.remote not in LOOPBACK_ADDRESSES or host.lower() not in LOOPBACK_NAMES:
            raise web.HTTPForbidden(text="the developer page answers on loopback only\n")

    def _has_session(self, request: web.Request) -> bool:
        token = request.cookies.get(COOKIE, "")
        expires = self._sessions.get(token) if token else None
        return expires is not None and expires >= time.time()

    def _signed_in(self, request: web.Request) -> None:
        self._loopback_only(request)
        if not self._has_session(request):
            raise web.HTTPUnauthorized(
                text=json.dumps({"error": "sign in with the local admin's keys"}),
                content_type="application/json",
            )

    # ------------------------------------------------------------------ routes

    async def _file(self, request: web.Request) -> web.Response:
        self._loopback_only(request)
        content_type = FILES[request.path][1]
        return web.Response(
            body=self.files[request.path],
            headers={"Content-Type": content_type, "Cache-Control": "no-store"},
        )

    async def _login(self, request: web.Request) -> web.Response:
        self._loopback_only(request)
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"http://{request.host}":
            raise web.HTTPForbidden(text="login from another origin\n")
        now = time.time()
        while self._failures and self._failures[0] < now - 60:
            self._failures.popleft()
        if len(self._failures) >= MAX_FAILED_LOGINS:
            raise web.HTTPTooManyRequests(text="too many failed logins; wait a minute\n")
        try:
            body = await request.json()
            key_id, secret = str(body["accessKeyId"]), str(body["secretAccessKey"])
        except (ValueError, KeyError, TypeError):
            raise web.HTTPBadRequest(text="send accessKeyId and secretAccessKey\n") from None
        if not self.is_admin(key_id, secret):
            self._failures.append(now)
            raise web.HTTPUnauthorized(text="not the local admin's keys\n")
        token = secrets.token_urlsafe(32)
        self._sessions[token] = now + SESSION_LIFETIME
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        response = web.Response(status=204)
        response.set_cookie(
            COOKIE,
            token,
            path=PREFIX,
            httponly=True,
            samesite="Strict",
            max_age=int(SESSION_LIFETIME),
        )
        return response

    async def _logout(self, request: web.Request) -> web.Response:
        self._loopback_only(request)
        self._sessions.pop(request.cookies.get(COOKIE, ""), None)
        response = web.Response(status=204)
        response.del_cookie(COOKIE, path=PREFIX)
        return response

    async def _session(self, request: web.Request) -> web.Response:
        self._loopback_only(request)
        return web.json_response(
            {"signedIn": self._has_session(request)}, headers={"Cache-Control": "no-store"}
        )

    async def _overview(self, request: web.Request) -> web.Response:
        self._signed_in(request)
        return web.json_response(await self.overview(), headers={"Cache-Control": "no-store"})

    async def _trace(self, request: web.Request) -> web.Response:
        """Entries after ``after`` (a ``seq``); with ``topic``, only the traces with a message
        on a matching topic among the entries kept in memory."""
        self._signed_in(request)
        try:
            after = int(request.query.get("after", "0"))
        except ValueError:
            raise web.HTTPBadRequest(text="after: a number\n") from None
        topic = request.query.get("topic") or None
        entries = self.trace.since(after, limit=len(self.trace.recent))
        if topic is not None:
            selection = TraceFilter(topic)
            entries = [e for e in self.trace.since(0, len(self.trace.recent)) if selection.wants(e)]
            entries = [e for e in entries if e["seq"] > after]
        return web.json_response(
            {"entries": entries[-MAX_TRACE_ENTRIES:], "last": self.trace.sequence},
            headers={"Cache-Control": "no-store"},
        )
