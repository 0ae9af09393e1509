"""The answer to ``hello`` carries the rooms and groups the person belongs to, so that a new
session anywhere starts with them (docs/protocol.md, the ``hello`` answer), against moto's
DynamoDB; end to end in tests/e2e/chat/test_hello_belongings.py."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from lambdas.chat.belongings import MAX_GROUPS_IN_HELLO
from lambdas.chat.commands import Commands
from lambdas.chat.doors import PRIVATE, SignedIn
from lambdas.chat.protocol import MAX_ROOMS_PER_CLIENT
from lambdas.chat.publisher import RecordingPublisher
from lambdas.chat.store import ChatStore
from tests.lambdas.fakes import Tokens

ADA = "us-east-1:00000000-0000-4000-8000-00000000000a"
BOB = "us-east-1:00000000-0000-4000-8000-00000000000b"
GUEST = "us-east-1:00000000-0000-4000-8000-00000000000c"
ADA_LAPTOP = f"{ADA}_web-laptop01"
ADA_PHONE = f"{ADA}_web-phone002"


@pytest.fixture
def commands(store: ChatStore, published: RecordingPublisher, tokens: Tokens) -> Commands:
    for person in (ADA, BOB):  # signed in: they came through chat/private (doors.py)
        SignedIn(store.db, store.state_table).note(person, 0)
    return Commands(store, published, tokens=tokens)


def send(commands: Commands, who: str, ts: int, door: str | None = None, **request: Any) -> None:
    payload = base64.b64encode(json.dumps(request).encode()).decode()
    event: dict[str, Any] = {"payload": payload, "sender": who, "ts": ts}
    if door:
        event["door"] = door
    commands.handle(event)


def hello_answer(
    commands: Commands, published: RecordingPublisher, session: str, door: str | None
) -> dict[str, Any]:
    send(commands, session, 100, door, type="hello")
    answers = [m for m in published.to(f"chat/in/{session}") if m["type"] == "profile"]
    assert answers, published.sent
    return answers[-1]


def test_rooms_joined_in_one_session_come_with_hello_in_another(
    commands: Commands, published: RecordingPublisher
) -> None:
    for ts, room in enumerate(["lobby", "ops", "random"], start=1):
        send(commands, ADA_LAPTOP, ts, type="join", room=room)
    send(commands, ADA_LAPTOP, 4, type="leave", room="ops")
    answer = hello_answer(commands, published, ADA_PHONE, PRIVATE)
    assert sorted(answer["rooms"]) == ["lobby", "random"]
    assert answer["person"] == ADA
    # Only the asking session hears it; Bob, in no room, is told so.
    assert not [m for m in published.to(f"chat/in/{ADA_LAPTOP}") if m["type"] == "profile"]
    assert hello_answer(commands, published, BOB, PRIVATE)["rooms"] == []


def test_a_guest_gets_its_rooms_but_never_groups(
    commands: Commands, published: RecordingPublisher, tokens: Tokens
) -> None:
    send(commands, GUEST, 1, type="join", room="lobby")
    answer = hello_answer(commands, published, GUEST, None)
    assert answer["rooms"] == ["lobby"]
    assert answer["guest"] is True
    assert "groups" not in answer
    # Ada's groups come only to a proven Ada: through the signed-in door, or with her token
    # (a wrong token gets an error and nothing else).
    send(commands, ADA, 2, PRIVATE, type="create", id="c1", name="ops team")
    assert "groups" not in hello_answer(commands, published, ADA_PHONE, None)
    assert [g["name"] for g in hello_answer(commands, published, ADA_PHONE, PRIVATE)["groups"]] == [
        "ops team"
    ]
    send(commands, ADA_PHONE, 3, token=tokens.issue(BOB), type="hello")
    assert published.sent[-1][1]["code"] == "NOT_AUTHORIZED"
    send(commands, ADA_PHONE, 4, token=tokens.issue(ADA), type="hello")
    assert [g["name"] for g in published.to(f"chat/in/{ADA_PHONE}")[-1]["groups"]] == ["ops team"]


def test_groups_in_the_answer_are_the_accepted_ones_with_their_current_names(
    commands: Commands, published: RecordingPublisher
) -> None:
    send(commands, ADA, 1, PRIVATE, type="create", id="c1", name="ops", members=[BOB])
    invited = [m for m in published.to(f"chat/in/{BOB}") if m["type"] == "invitation"]
    group = invited[-1]["groupId"]
    # Invited, not yet a member: no group, the invitation is sent again instead.
    answer = hello_answer(commands, published, BOB, PRIVATE)
    assert answer["groups"] == []
    assert published.sent[-1][1]["type"] == "invitation"
    send(commands, BOB, 2, PRIVATE, type="accept", groupId=group)
    send(commands, ADA, 3, PRIVATE, type="rename", groupId=group, name="ops night")
    answer = hello_answer(commands, published, f"{BOB}_cli-chat-0001", PRIVATE)
    assert answer["groups"] == [{"groupId": group, "name": "ops night", "owner": ADA}]
    send(commands, BOB, 4, PRIVATE, type="leave", groupId=group)
    assert hello_answer(commands, published, BOB, PRIVATE)["groups"] == []


def test_the_answer_is_bounded(commands: Commands, published: RecordingPublisher) -> None:
    for ts in range(MAX_ROOMS_PER_CLIENT + 1):
        send(commands, ADA, ts, type="join", room=f"room-{ts:02d}")
    assert published.to(f"chat/in/{ADA}")[-1]["code"] == "LIMIT_EXCEEDED"
    for ts in range(MAX_GROUPS_IN_HELLO + 1):
        send(commands, ADA, 1000 + ts, PRIVATE, type="create", id=f"c{ts}", name=f"g{ts}")
    answer = hello_answer(commands, published, ADA_PHONE, PRIVATE)
    assert len(answer["rooms"]) == MAX_ROOMS_PER_CLIENT
    assert len(answer["groups"]) == MAX_GROUPS_IN_HELLO
    assert len(json.dumps(answer).encode()) < 96 * 1024
