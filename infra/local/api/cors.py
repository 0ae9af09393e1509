"""CORS for the edge API, so the web client (another origin) can call Cognito from a browser.

AWS's Cognito endpoints answer browsers' preflights; locally the edge API must too, as
LocalStack does. Only loopback origins are let in: the stack serves its own web client on
127.0.0.1, and no page from the internet should be able to drive a developer's local stack
through their browser.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from urllib.parse import urlsplit

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
ALLOWED_METHODS = "GET, HEAD, POST, PUT, DELETE, OPTIONS"
# What the AWS SDKs and the web client send on the JSON and REST protocols.
ALLOWED_HEADERS = ", ".join(
    (
        "authorization",
        "content-type",
        "x-amz-content-sha256",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-target",
        "x-amz-user-agent",
        "amz-sdk-invocation-id",
        "amz-sdk-request",
        "x-amz-mqtt5-correlation-data",
        "x-amz-mqtt5-payload-format-indicator",
        "x-amz-mqtt5-user-properties",
    )
)
EXPOSED_HEADERS = "x-amzn-RequestId, x-amzn-ErrorType, x-amz-request-id, Date"
PREFLIGHT_MAX_AGE = "600"


def is_loopback_origin(origin: str | None) -> bool:
    """True for ``http(s)://127.0.0.1[:port]``, ``localhost`` and ``[::1]``; never ``null``."""
    if not origin:
        return False
    try:
        parts = urlsplit(origin)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or parts.path or parts.query or parts.username:
        return False
    return parts.hostname in LOOPBACK_HOSTS


def _allow(headers: MutableMapping[str, str], origin: str) -> None:
    headers["Access-Control-Allow-Origin"] = origin
    headers["Vary"] = "Origin"


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer preflights for loopback origins; add the allow headers to their responses.

    A request from any other origin is served as before but without CORS headers, so the
    browser keeps the response from the page (non-browser clients send no ``Origin``).
    """
    origin = request.headers.get("Origin")
    allowed = is_loopback_origin(origin)
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        if not allowed:
            return web.Response(status=403, text="CORS origin not allowed\n")
        assert origin is not None
        preflight = web.Response(status=204)
        _allow(preflight.headers, origin)
        preflight.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
        preflight.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        preflight.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
        return preflight
    if not allowed:
        return await handler(request)
    assert origin is not None
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # aiohttp's 404/405 are raised, not returned
        _allow(exc.headers, origin)
        exc.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        raise
    if not response.prepared:
        _allow(response.headers, origin)
        response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
    return response
