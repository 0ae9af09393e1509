"""Which door a command must come through (docs/protocol.md, "Guests and signed-in people").

On AWS anyone who knows a guest identity id can get its credentials, so nothing private may
rest on a guest identity. Direct messages and groups therefore come only through
``chat/private``, which only the signed-in role and IoT policy may publish to; the rule
``chat_private`` marks what it hands over with ``door = "private"``, a field the client cannot
write (its payload stays encoded). Nothing here trusts what a message says about its sender.
"""

from __future__ import annotations

from typing import Any

from .protocol import ProtocolError, ref_of

PRIVATE = "private"
# Every request that reads or writes a direct conversation or a group names it in one of
# these fields; ``create`` makes a group before it has an id.
PRIVATE_FIELDS = ("to", "with", "group")
PRIVATE_TYPES = ("create",)


def is_private(request: dict[str, Any]) -> bool:
    return request.get("type") in PRIVATE_TYPES or any(f in request for f in PRIVATE_FIELDS)


def require_door(request: dict[str, Any], door: object) -> None:
    """Refuse a private request that did not come through the signed-in door."""
    if door != PRIVATE and is_private(request):
        raise ProtocolError(
            "SIGN_IN_REQUIRED",
            "direct messages and groups need a signed-in account (sent on chat/private)",
            ref_of(request),
        )
