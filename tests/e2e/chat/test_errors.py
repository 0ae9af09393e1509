"""Every kind of bad input gets exactly one error, with the code docs/protocol.md gives, on the
sender's inbox; and the next valid message still goes through, so nothing crashed and nothing
valid was dropped."""

from __future__ import annotations

import base64
import json
from typing import Any, NamedTuple

import pytest

from lambdas.chat.doors import is_private
from tests.e2e.chat.conftest import People, room_topic
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(60)

REF = "ref-1"  # the id the bad inputs carry, where they carry one
VALID_GROUP = "g-" + "0" * 32
SOMEONE = "us-east-1:00000000-0000-0000-0000-000000000000"


class Bad(NamedTuple):
    payload: Any  # bytes as they are, anything else as JSON
    code: str
    ref: str | None = None
    topic: str = "chat/out"


def _message(**fields: Any) -> dict[str, Any]:
    body = {"v": 1, "type": "message", "id": REF, "room": "lobby", "body": "hi"}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def _cursor(data: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


CASES: dict[str, Bad] = {
    "malformed JSON": Bad(b'{"type": "message", "room": ', "BAD_REQUEST"),
    "not UTF-8": Bad(b"\xff\xfe{}", "BAD_REQUEST"),
    "array": Bad([{"type": "message"}], "BAD_REQUEST"),
    "string": Bad("message", "BAD_REQUEST"),
    "number": Bad(42, "BAD_REQUEST"),
    "no type": Bad({"id": REF, "room": "lobby", "body": "hi"}, "BAD_REQUEST", REF),
    "type not a string": Bad({"type": 7, "room": "lobby"}, "BAD_REQUEST"),
    "unknown type": Bad({"type": "dance", "id": REF}, "UNKNOWN_TYPE", REF),
    "invalid room": Bad(_message(room="no spaces"), "INVALID_ROOM", REF),
    "room too long": Bad(_message(room="r" * 65), "INVALID_ROOM", REF),
    "room not a string": Bad(_message(room=["lobby"]), "INVALID_ROOM", REF),
    "join invalid room": Bad({"type": "join", "room": "a/b", "id": REF}, "INVALID_ROOM", REF),
    "who without room": Bad({"type": "who"}, "INVALID_ROOM"),
    "missing id": Bad(_message(id=None), "INVALID_ID"),
    "invalid id": Bad(_message(id="has space"), "INVALID_ID"),
    "id too long": Bad(_message(id="i" * 65), "INVALID_ID"),
    "direct without id": Bad(
        {"type": "message", "recipient": SOMEONE, "body": "psst"}, "INVALID_ID"
    ),
    "empty text": Bad(_message(body=""), "INVALID_TEXT", REF),
    "blank text": Bad(_message(body=" \t\n "), "INVALID_TEXT", REF),
    "missing text": Bad(_message(body=None), "INVALID_TEXT", REF),
    "text not a string": Bad(_message(body=12), "INVALID_TEXT", REF),
    "text 2001 characters": Bad(_message(body="x" * 2001), "TEXT_TOO_LONG", REF),
    # 1,001 emoji are 2,002 UTF-16 code units, which is what the limit counts.
    "text 2002 code units": Bad(_message(body="\U0001f600" * 1001), "TEXT_TOO_LONG", REF),
    "direct text too long": Bad(
        {"type": "message", "id": REF, "recipient": SOMEONE, "body": "x" * 2001},
        "TEXT_TOO_LONG",
        REF,
    ),
    "empty name": Bad(_message(name=""), "INVALID_NAME", REF),
    "name 65 characters": Bad(_message(name="n" * 65), "INVALID_NAME", REF),
    "join blank name": Bad({"type": "join", "room": "lobby", "name": "  "}, "INVALID_NAME"),
    "room and to": Bad(_message(recipient=SOMEONE), "INVALID_TARGET", REF),
    "to and group": Bad(
        {"type": "message", "id": REF, "recipient": SOMEONE, "groupId": VALID_GROUP, "body": "hi"},
        "INVALID_TARGET",
        REF,
    ),
    "no target": Bad(_message(room=None), "INVALID_TARGET", REF),
    "garbage cursor": Bad(
        {"type": "history", "id": REF, "room": "lobby", "cursor": "not-a-cursor!"},
        "INVALID_REQUEST",
        REF,
    ),
    "forged cursor": Bad(
        {"type": "history", "id": REF, "room": "lobby", "cursor": _cursor({"t": "1", "m": "x"})},
        "INVALID_REQUEST",
        REF,
    ),
    "limit zero": Bad(
        {"type": "history", "id": REF, "room": "lobby", "limit": 0}, "INVALID_REQUEST", REF
    ),
    "limit 101": Bad(
        {"type": "history", "id": REF, "room": "lobby", "limit": 101}, "INVALID_REQUEST", REF
    ),
    "limit a string": Bad(
        {"type": "history", "id": REF, "room": "lobby", "limit": "10"}, "INVALID_REQUEST", REF
    ),
    "history two targets": Bad(
        {"type": "history", "id": REF, "room": "lobby", "with": SOMEONE}, "INVALID_REQUEST", REF
    ),
    "bad direct recipient": Bad(
        {"type": "message", "id": REF, "recipient": "not/a/client", "body": "hi"},
        "INVALID_REQUEST",
        REF,
    ),
    "unknown group": Bad(
        {"type": "message", "id": REF, "groupId": VALID_GROUP, "body": "hi"}, "NOT_FOUND", REF
    ),
    "stream malformed": Bad(b"{typing", "BAD_REQUEST", topic="chat/stream"),
    "stream unknown type": Bad(
        {"type": "wave", "room": "lobby"}, "UNKNOWN_TYPE", topic="chat/stream"
    ),
    "stream invalid room": Bad(
        {"type": "typing", "room": "no spaces"}, "INVALID_ROOM", topic="chat/stream"
    ),
    "stream telemetry not an object": Bad(
        {"type": "telemetry", "room": "lobby", "data": [1, 2]},
        "INVALID_REQUEST",
        topic="chat/stream",
    ),
    "stream telemetry too big": Bad(
        {"type": "telemetry", "room": "lobby", "data": {"blob": "x" * 2100}},
        "INVALID_REQUEST",
        topic="chat/stream",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_input_gets_one_error_and_the_next_message_still_goes_through(
    people: People, room: str, case: Bad
) -> None:
    # Direct and group requests go through the signed-in door (docs/protocol.md).
    private = isinstance(case.payload, dict) and is_private(case.payload)
    sender = people.connect("Sender", signed_in=private)
    assert sender.subscribe(room_topic(room)) == [1]

    sender.publish(case.payload, topic="chat/private" if private else case.topic)
    error = sender.wait_error(case.code, ref=case.ref)
    assert error["v"] == 1
    assert isinstance(error["message"], str) and error["message"]

    after = sender.say(room, "and this one is fine")
    delivered = sender.wait_for_message(
        room_topic(room), lambda m: m.get("id") == after, "the valid message after the bad one"
    )
    assert delivered["sender"] == sender.client_id
    # A reply to a later request: any second error would have arrived by now.
    sender.history("room", room)
    assert sender.errors() == [error]


def test_inputs_at_the_limits_are_accepted(people: People, room: str) -> None:
    """Nothing valid is refused: the longest text and name, a multi-byte text, and the
    largest history page."""
    sender = people.connect("Sender")
    assert sender.subscribe(room_topic(room)) == [1]
    sent = {
        sender.say(room, "x" * 2000): "x" * 2000,
        sender.say(room, "\U0001f600" * 1000, name="n" * 64): "\U0001f600" * 1000,
        sender.say(room, " padded ", name=" Ada "): " padded ",
    }
    for message_id, text in sent.items():

        def has_id(m: dict[str, Any], i: str = message_id) -> bool:
            return m.get("id") == i

        got = sender.wait_for_message(room_topic(room), has_id, "a message at the limit")
        assert got["body"] == text

    def stored() -> bool:
        page = sender.history("room", room, limit=100)
        return {m["id"] for m in page["messages"]} == set(sent)

    wait_for(stored, 10.0, interval=0.05)
    assert sender.errors() == []
