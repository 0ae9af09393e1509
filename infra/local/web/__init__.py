"""The local web server for the web app in client/web."""

from .server import (
    CONTENT_TYPES,
    VENDOR_FILES,
    WEB_ROOT,
    Handler,
    WebConfig,
    WebServer,
    config_from_stack,
    content_security_policy,
)

__all__ = [
    "CONTENT_TYPES",
    "VENDOR_FILES",
    "WEB_ROOT",
    "Handler",
    "WebConfig",
    "WebServer",
    "config_from_stack",
    "content_security_policy",
]
