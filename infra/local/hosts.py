"""Which ``Host`` a local listener answers: loopback names only, unless the user adds one.

A page on any web site can make a browser send requests to ``127.0.0.1``: through DNS
rebinding, an attacker's name first resolves to the attacker's server and then to loopback,
so the browser treats the local stack as the attacker's own origin. The request still carries
the attacker's name in ``Host``, so every HTTP listener of the stack (the API endpoint, the
web app, the plain and TLS WebSocket listeners) refuses, with 403 and before anything else,
a ``Host`` that is not a loopback address, ``localhost`` or a ``*.localhost`` name (which
browsers resolve to loopback themselves, RFC 6761), or a name given with ``iotchat up
--allow-host``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable


def host_name(header: str) -> str:
    """The name part of a ``Host`` header (port and IPv6 brackets removed), lower-cased."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else ""
    if value.count(":") > 1:
        return value  # a bare IPv6 address (no brackets, so no port)
    name, _, port = value.rpartition(":")
    if name and port.isdigit():
        return name
    return value


def is_loopback_name(name: str) -> bool:
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class HostAllowList:
    """Decides a ``Host`` header: loopback always, plus the names configured."""

    def __init__(self, extra_names: Iterable[str] = ()) -> None:
        self.extra = frozenset(name.strip().lower().rstrip(".") for name in extra_names if name)

    def allows(self, header: str | None) -> bool:
        if not header:
            return False  # HTTP/1.1 requires Host; without one nothing says where it was sent
        name = host_name(header).rstrip(".")
        return is_loopback_name(name) or name in self.extra


LOOPBACK_ONLY = HostAllowList()
HOST_REFUSED = "Forbidden: this Host is not served here (iotchat up --allow-host adds one)\n"
