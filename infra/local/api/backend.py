"""How a JSON-protocol service forwarded by the edge API describes itself.

DynamoDB and Kinesis run as local emulators (dynalite, kinesalite) that speak the service's
own JSON protocol. Each service's folder says, with one :class:`ServiceBackend` in its
``api.py``, which ``X-Amz-Target`` prefix is its own, where its emulator listens and what the
edge must do around forwarding; the edge API (:mod:`infra.local.api.server`) does the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# The emulator's current base URL, or None while it is not running.
Endpoint = Callable[[], str | None]


@dataclass(frozen=True)
class ServiceBackend:
    """A JSON-protocol service the edge forwards to a local emulator.

    ``error_prefix`` qualifies the edge's own error codes as the service does; with a
    ``signing_name``, the edge verifies each request's SigV4 signature before forwarding.
    """

    name: str
    target_prefix: str
    endpoint: Endpoint
    error_prefix: str = ""
    signing_name: str | None = None
    # Called with the target and the request body after each successful request.
    on_success: Callable[[str, bytes], None] | None = None
