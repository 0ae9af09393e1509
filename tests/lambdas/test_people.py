"""Names, handles, invitations and edits in the chat's domain code, against moto's DynamoDB
(the same code runs end to end in tests/e2e/chat/test_names.py, test_groups_consent.py and
test_edits.py)."""

from __future__ import annotations

import base64
import json
import unicodedata
from typing import Any

import pytest

from lambdas.chat import keys
from lambdas.chat.commands import Commands
from lambdas.chat.doors import SignedIn
from lambdas.chat.edits import revised
from lambdas.chat.names import check_handle, clean_name, generated_handle
from lambdas.chat.people import Directory, default_profile
from lambdas.chat.protocol import ProtocolError
from lambdas.chat.publisher import RecordingPublisher
from lambdas.chat.store import ChatStore
from tests.lambdas.fakes import Tokens

ADA = "us-east-1:00000000-0000-4000-8000-00000000000a"
BOB = "us-east-1:00000000-0000-4000-8000-00000000000b"
EVE = "us-east-1:00000000-0000-4000-8000-00000000000e"


@pytest.fixture
def commands(store: ChatStore, published: RecordingPublisher, tokens: Tokens) -> Commands:
    return Commands(store, published, tokens=tokens)


def send(commands: Commands, who: str, ts: int, door: str | None = None, **request: Any) -> None:
    payload = base64.b64encode(json.dumps(request).encode()).decode()
    event: dict[str, Any] = {"payload": payload, "sender": who, "ts": ts}
    if door:
        event["door"] = door
    commands.handle(event)


def last(published: RecordingPublisher, person: str, kind: str) -> dict[str, Any]:
    return [m for m in published.to(f"chat/in/{person}") if m["type"] == kind][-1]


# ---------------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "\u200b",
        "\u200b\u200c\u200d\u2060\ufeff",
        "\u3164",
        "a\u202eb",
        "\u2067x",
        "a\tb",
    ],
)
def test_names_that_show_nothing_or_turn_text_are_refused(bad: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        clean_name(bad)
    assert caught.value.code == "INVALID_NAME"


def test_names_are_nfc_and_trimmed() -> None:
    assert clean_name("  Zoe\u0301 ") == unicodedata.normalize("NFC", "Zoé")
    assert (
        clean_name("\u0645\u0631\u062d\u0628\u0627") == "\u0645\u0631\u062d\u0628\u0627"
    )  # RTL text is fine
    assert clean_name("👩\u200d💻 Ada") == "👩\u200d💻 Ada"  # a joiner inside an emoji is fine
    with pytest.raises(ProtocolError):
        clean_name("x" * 65)


def test_handles_and_generated_handles() -> None:
    assert check_handle("ada_l-1") == "ada_l-1"
    for bad in ("Ada", "ab", "guest-1234", "a" * 33, "ada lovelace", 5):
        with pytest.raises(ProtocolError):
            check_handle(bad)
    assert generated_handle("guest-", ADA) == generated_handle("guest-", ADA)
    assert len(generated_handle("guest-", ADA, 1)) == len(generated_handle("guest-", ADA)) + 2
    assert default_profile("pi-kitchen") == {
        "person": "pi-kitchen",
        "handle": "pi-kitchen",
        "name": "pi-kitchen",
        "device": True,
    }


# ---------------------------------------------------------------------------------- hello


def test_hello_with_a_token_claims_the_handle_once(
    commands: Commands, published: RecordingPublisher, tokens: Tokens, store: ChatStore
) -> None:
    send(commands, ADA, 1, type="hello", token=tokens.issue(ADA, **{"custom:handle": "ada"}))
    assert last(published, ADA, "profile")["handle"] == "ada"
    # Another account with the same custom:handle: Cognito allows it, the chat does not.
    send(commands, BOB, 2, type="hello", token=tokens.issue(BOB, **{"custom:handle": "ada"}))
    assert last(published, BOB, "error")["code"] == "HANDLE_TAKEN"
    # Eve shows Ada's token: it names Ada's identity, not hers.
    send(commands, EVE, 3, type="hello", token=next(iter(tokens.issued)))
    assert last(published, EVE, "error")["code"] == "NOT_AUTHORIZED"
    send(commands, EVE, 4, type="hello", token="forged")
    assert [e["code"] for e in published.to(f"chat/in/{EVE}")] == ["NOT_AUTHORIZED"] * 2
    assert Directory(store).owner_of("ada") == ADA
    # An account from before handles gets a stable generated one.
    send(commands, BOB, 5, type="hello", token=tokens.issue(BOB))
    legacy = last(published, BOB, "profile")["handle"]
    send(commands, BOB, 6, type="hello", token=tokens.issue(BOB))
    assert legacy.startswith("user-") and last(published, BOB, "profile")["handle"] == legacy


def test_guests_and_devices_get_their_handles(
    commands: Commands, published: RecordingPublisher
) -> None:
    send(commands, EVE, 1, type="hello", name="Admin")
    guest = last(published, EVE, "profile")
    assert guest["handle"].startswith("guest-") and guest["guest"] is True
    assert guest["name"] == "Admin"  # shown, but always as a guest's
    send(commands, EVE, 2, type="hello", name="Eve")  # a name with a later hello is kept
    assert last(published, EVE, "profile")["name"] == "Eve"
    send(commands, EVE, 3, type="hello")
    assert last(published, EVE, "profile")["name"] == "Eve"
    send(commands, "pi-kitchen", 2, type="hello")
    device = last(published, "pi-kitchen", "profile")
    assert (device["handle"], device["device"]) == ("pi-kitchen", True)


# ---------------------------------------------------------------------------------- groups


def test_an_invitee_gets_nothing_of_the_group_until_accepting(
    commands: Commands, published: RecordingPublisher
) -> None:
    # Bob is signed in (he once came through chat/private): guests are never invited (doors.py).
    SignedIn(commands.store.db, commands.store.state_table).note(BOB, 0)
    send(commands, ADA, 1, "private", type="create", id="c1", name="ops", members=[BOB])
    group = last(published, BOB, "invitation")["groupId"]
    send(commands, ADA, 2, "private", type="message", id="m1", groupId=group, body="secret")
    send(commands, BOB, 3, "private", type="history", groupId=group)
    assert [m["type"] for m in published.to(f"chat/in/{BOB}")] == ["invitation", "error"]
    send(commands, BOB, 4, "private", type="accept", groupId=group)
    assert [p["person"] for p in last(published, BOB, "group")["members"]] == sorted([ADA, BOB])
    send(commands, BOB, 5, "private", type="accept", groupId=group)  # repeated: same answer
    send(commands, EVE, 6, "private", type="accept", groupId=group)
    assert last(published, EVE, "error")["code"] == "NOT_INVITED"
    send(commands, BOB, 7, "private", type="rename", groupId=group, name="mine now")
    assert last(published, BOB, "error")["code"] == "NOT_OWNER"
    send(commands, ADA, 8, "private", type="rename", groupId=group, name="\u202eops")
    assert last(published, ADA, "error")["code"] == "INVALID_NAME"


# ---------------------------------------------------------------------------------- edits


def test_history_applies_revisions_even_after_a_late_copy(
    commands: Commands, published: RecordingPublisher, store: ChatStore
) -> None:
    conv = keys.room_conv("lobby")
    for i, text in enumerate(("keep", "fix me", "drop me")):
        body = {"id": f"m{i}", "room": "lobby", "body": text, "sender": ADA, "ts": 1000 + i}
        assert store.put_message(conv, body)
    send(commands, ADA, 2000, type="edit", id="m1", room="lobby", body="fixed")
    send(commands, ADA, 2001, type="delete", id="m2", room="lobby")
    send(commands, BOB, 2002, type="edit", id="m0", room="lobby", body="x", sender=ADA)
    assert last(published, BOB, "error")["code"] == "NOT_OWNER"
    events = [(m["type"], m["id"]) for m in published.to("chat/events/lobby")]
    assert events == [("edit", "m1"), ("delete", "m2")]
    # What the store rule does with a late copy: PutItem of its copy (keyed by its text).
    late = {"id": "m2", "room": "lobby", "body": "drop me", "sender": ADA, "ts": 3000}
    late_mid = keys.copy_mid(keys.mid(ADA, "m2"), "drop me")
    store.db.put_item(
        TableName=store.messages_table,
        Item={
            "conv": {"S": conv},
            "mid": {"S": late_mid},
            "tsid": {"S": keys.tsid(3000, late_mid)},
            **{k: {"S": v} for k, v in late.items() if isinstance(v, str)},
            "ts": {"N": "3000"},
        },
    )
    shown = {m["id"]: m for m in revised(store, conv, store.history_page(conv, 10).messages)}
    assert shown["m0"]["body"] == "keep" and "edited" not in shown["m0"]
    assert (shown["m1"]["body"], shown["m1"]["edited"]) == ("fixed", 2000)
    assert "body" not in shown["m2"] and shown["m2"]["deleted"] == 2001


def test_a_flood_of_hellos_or_renames_is_rate_limited(
    commands: Commands, published: RecordingPublisher, tokens: Tokens
) -> None:
    token = tokens.issue(ADA, **{"custom:handle": "ada"})
    for i in range(25):
        send(commands, ADA, 1_000 + i, type="hello", token=token)
    answers = [m["type"] for m in published.to(f"chat/in/{ADA}")]
    assert answers.count("profile") == 20 and answers.count("error") == 5
    assert last(published, ADA, "error")["code"] == "RATE_LIMITED"
    for i in range(12):
        send(commands, ADA, 2_000 + i, type="name", name=f"Ada {i}")
    assert [m["name"] for m in published.to(f"chat/in/{ADA}") if m.get("ts")][-1] == "Ada 9"
    # Bob is not affected.
    send(commands, BOB, 2_100, type="name", name="Bob")
    assert last(published, BOB, "profile")["name"] == "Bob"
