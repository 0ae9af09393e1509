"""A stack started on the state an earlier version left: its history is still there and reads
sensibly (no claimed name shown, a profile for every sender), accounts made before handles get
one, and the members of an old group are still its members (docs/data-model.md, Migration)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.chat.accounts import hello
from tests.e2e.chat.conftest import People, inbox, unique
from tests.support.cognito import logins, new_user, unsigned_client
from tests.support.stack import InProcessStack, run_stack_in_thread, stack_options

pytestmark = pytest.mark.timeout(120)


def old_account(stack: InProcessStack) -> tuple[str, dict[str, Any], str]:
    """A user signed up as earlier versions did: no custom:handle."""
    user = new_user(stack)
    login = logins(stack, user.id_token)
    identity = unsigned_client(stack, "cognito-identity")
    pool = stack.info["cognito"]["identityPoolId"]
    identity_id = identity.get_id(IdentityPoolId=pool, Logins=login)["IdentityId"]
    creds = identity.get_credentials_for_identity(IdentityId=identity_id, Logins=login)
    return identity_id, creds["Credentials"], user.id_token


def put(stack: InProcessStack, table: str, item: dict[str, str | int]) -> None:
    """One item as an earlier version wrote it (strings and numbers only)."""
    typed = {k: {"N": str(v)} if isinstance(v, int) else {"S": v} for k, v in item.items()}
    stack.client("dynamodb").put_item(TableName=f"{stack.info['stackName']}-{table}", Item=typed)


def test_old_state_keeps_its_history_accounts_and_groups(tmp_path: Path) -> None:
    state = tmp_path / "state"
    room = unique("room")
    group = "g-" + "7" * 32
    with run_stack_in_thread(stack_options(state)) as stack:
        ada = old_account(stack)
        bob = old_account(stack)
        # What an earlier version stored: a room message with the name its sender claimed,
        # under the attribute `text` (now `body`, docs/data-model.md), and a group whose
        # members were added without being asked.
        mid = f"{ada[0]}|old-1"
        put(
            stack,
            "messages",
            {
                "conv": f"room#{room}",
                "mid": mid,
                "tsid": f"{1_700_000_000_000:013d}#{mid}",
                "id": "old-1",
                "room": room,
                "text": "from before the upgrade",
                "name": "Admin",
                "sender": ada[0],
                "ts": 1_700_000_000_000,
                "expiresAt": 1_900_000_000,
            },
        )
        put(stack, "state", {"pk": f"group#{group}", "sk": "meta", "name": "old", "owner": ada[0]})
        for person in (ada[0], bob[0]):
            put(
                stack,
                "state",
                {"pk": f"group#{group}", "sk": f"member#{person}", "clientId": person},
            )
            put(stack, "state", {"pk": f"client#{person}", "sk": f"group#{group}", "group": group})

    with run_stack_in_thread(stack_options(state)) as stack:
        crowd = People(stack)
        try:
            carol = crowd.connect()
            (old,) = carol.join(room)["messages"]
            assert old["body"] == "from before the upgrade" and "text" not in old
            assert old["name"] != "Admin" and old["handle"].startswith("guest-")

            ada_client = crowd.connect(identity=ada[:2])
            profile = hello(ada_client, token=ada[2])
            assert profile["handle"].startswith("user-") and profile["guest"] is False
            (again,) = carol.history("room", room)["messages"]
            assert (again["handle"], again["name"]) == (profile["handle"], profile["handle"])

            bob_client = crowd.connect(identity=bob[:2])
            said = unique("g")
            bob_client.send_private("message", id=said, groupId=group, body="still here")
            got = ada_client.wait_for_message(
                inbox(ada_client.client_id), lambda m: m.get("id") == said, "Bob's group message"
            )
            assert got["sender"] == bob[0]
        finally:
            crowd.close()
