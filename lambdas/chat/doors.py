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
from .sessions import is_identity_id

PRIVATE = "private"
# Every request that reads or writes a direct conversation or a group names it in one of
# these fields; ``create`` makes a group before it has an id.
PRIVATE_FIELDS = ("recipient", "with", "groupId")
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


class SignedIn:
    """Who has come through the signed-in door: only they are sent private things.

    A guest identity proves nothing (anyone knowing its id can hold it), so a direct message
    or an invitation to one would put something private where anyone can read it. A Cognito
    identity counts as signed in once it sent a request through ``chat/private`` (noted once in
    the state table) or showed its ID token in ``hello`` (its profile is then no guest's,
    lambdas/chat/people.py); a device's certificate proves who it is. Others are refused as
    recipients."""

    def __init__(self, db: Any, state_table: str) -> None:
        self.db = db
        self.state_table = state_table

    def _key(self, person: str) -> dict[str, Any]:
        return {"pk": {"S": f"person#{person}"}, "sk": {"S": "signed-in"}}

    def note(self, person: str, ts: int) -> None:
        self.db.update_item(
            TableName=self.state_table,
            Key=self._key(person),
            UpdateExpression="SET #s = if_not_exists(#s, :ts)",
            ExpressionAttributeNames={"#s": "since"},
            ExpressionAttributeValues={":ts": {"N": str(ts)}},
        )

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        key = {"pk": {"S": pk}, "sk": {"S": sk}}
        item: dict[str, Any] | None = self.db.get_item(
            TableName=self.state_table, Key=key, ConsistentRead=True
        ).get("Item")
        return item

    def is_signed_in(self, person: str) -> bool:
        if not is_identity_id(person):
            return True  # a device (thing name): its certificate proves it
        if self._get(f"person#{person}", "signed-in") is not None:
            return True
        profile = self._get(f"person#{person}", "profile")
        return profile is not None and not profile.get("guest", {}).get("BOOL", False)

    def require(self, person: str, ref: str | None, field: str) -> None:
        """Refuse ``person`` as the recipient of something private unless signed in."""
        if not self.is_signed_in(person):
            raise ProtocolError(
                "SIGN_IN_REQUIRED",
                f"{field}: direct messages and invitations are only for signed-in people",
                ref,
            )
