"""The chat Lambdas' domain code against moto's DynamoDB (unit level; tests/chat runs the same
code end to end on the local stack)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from lambdas.chat import keys
from lambdas.chat.activity import aggregate, handle_batch
from lambdas.chat.commands import Commands
from lambdas.chat.doors import PRIVATE, SignedIn
from lambdas.chat.online import OnlineState
from lambdas.chat.presence import handle_lifecycle
from lambdas.chat.protocol import (
    MAX_ROOMS_PER_CLIENT,
    ProtocolError,
    dumps,
    is_unicode_text,
    java_length,
)
from lambdas.chat.publisher import RecordingPublisher
from lambdas.chat.rule_errors import handle_rule_error
from lambdas.chat.store import ChatStore

A, B, C = "us-east-1:aaaa", "us-east-1:bbbb", "us-east-1:cccc"


@pytest.fixture
def commands(store: ChatStore, published: RecordingPublisher) -> Commands:
    """A, B and C are signed-in people (each came through chat/private once)."""
    signed_in = SignedIn(store.db, store.state_table)
    for person in (A, B, C):
        signed_in.note(person, 0)
    return Commands(store, published)


def send(commands: Commands, sender: str, ts: int, **request: Any) -> None:
    """A request from a signed-in person: private ones come through chat/private's rule
    (tests/lambdas/test_sessions.py holds guests to the door)."""
    payload = base64.b64encode(json.dumps(request).encode()).decode()
    commands.handle({"payload": payload, "sender": sender, "ts": ts, "door": PRIVATE})


def message(sender: str, ts: int, i: int, text: str = "hi") -> dict[str, Any]:
    return {"id": f"m{i}", "room": "lobby", "body": text, "sender": sender, "ts": ts}


# ---------------------------------------------------------------------------------- history


def test_history_pages_newest_first_completely(store: ChatStore) -> None:
    conv = keys.room_conv("lobby")
    for i in range(120):
        # Pairs share a millisecond: both are kept, in a stable order.
        assert store.put_message(conv, message(A, 1_700_000_000_000 + i // 2, i))
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = store.history_page(conv, 50, cursor)
        pages += 1
        seen += [m["id"] for m in page.messages]
        if page.cursor is None:
            break
        cursor = keys.Cursor.decode(page.cursor.encode())
    assert pages == 3
    assert len(seen) == len(set(seen)) == 120
    ts = [int(i[1:]) // 2 for i in seen]
    assert ts == sorted(ts, reverse=True)


def test_a_redelivered_message_is_stored_once(store: ChatStore) -> None:
    conv = keys.room_conv("lobby")
    assert store.put_message(conv, message(A, 1_700_000_000_000, 1))
    assert not store.put_message(conv, message(A, 1_700_000_000_500, 1))
    # Another sender's message with the same id is a different message.
    assert store.put_message(conv, message(B, 1_700_000_000_600, 1))
    page = store.history_page(conv, 50)
    assert [(m["sender"], m["ts"]) for m in page.messages] == [
        (B, 1_700_000_000_600),
        (A, 1_700_000_000_000),
    ]
    assert page.cursor is None


def test_a_page_never_outgrows_an_mqtt_payload(store: ChatStore) -> None:
    conv = keys.room_conv("big")
    for i in range(60):
        store.put_message(conv, message(A, 1_700_000_000_000 + i, i, text="😀" * 1000))
    ids: list[str] = []
    cursor = None
    while True:
        page = store.history_page(conv, 100, cursor)
        body = json.dumps({"messages": page.messages}, ensure_ascii=False).encode()
        assert len(body) <= 96 * 1024
        ids += [m["id"] for m in page.messages]
        if page.cursor is None:
            break
        cursor = page.cursor
    assert ids == [f"m{i}" for i in reversed(range(60))]


def test_cursors_are_checked(store: ChatStore) -> None:
    for bad in ("", "!!", base64.urlsafe_b64encode(b'{"t":"1","m":"x"}').decode(), 5, "x" * 600):
        with pytest.raises(ProtocolError) as caught:
            keys.Cursor.decode(bad)
        assert caught.value.code == "INVALID_REQUEST"
    good = keys.Cursor(keys.tsid(1_700_000_000_000, keys.mid(A, "m1")), keys.mid(A, "m1"))
    assert keys.Cursor.decode(good.encode()) == good


# ---------------------------------------------------------------------------------- presence


def lifecycle(kind: str, version: int, ts: int, client: str = A) -> dict[str, Any]:
    return {
        "eventType": kind,
        "clientId": client,
        "versionNumber": version,
        "timestamp": ts,
        "sessionIdentifier": f"s{version}",
    }


def test_presence_survives_duplicates_reordering_and_takeover(
    store: ChatStore, published: RecordingPublisher
) -> None:
    store.join("lobby", A, "Ada", online=False, now=1)
    room = "chat/events/lobby"
    assert handle_lifecycle(store, published, lifecycle("connected", 1, 100)) == 1
    assert handle_lifecycle(store, published, lifecycle("connected", 1, 100)) == 0  # duplicate
    assert [m["status"] for m in published.to(room)] == ["online"]
    # Names come from the person's profile (a guest's generated one here), never a claim.
    assert published.to(room)[0]["handle"].startswith("guest-")
    online = OnlineState(store.db, store.state_table)
    # Takeover: the new connection's connect arrives before the old one's disconnect; the
    # person was online and stays so, which is no news.
    assert handle_lifecycle(store, published, lifecycle("connected", 2, 300)) == 0
    assert handle_lifecycle(store, published, lifecycle("disconnected", 1, 290)) == 0
    assert online.is_online(A)
    # A disconnect that overtook its own connect: the late connect changes nothing.
    assert handle_lifecycle(store, published, lifecycle("disconnected", 3, 500)) == 1
    assert handle_lifecycle(store, published, lifecycle("connected", 3, 450)) == 0
    assert not online.is_online(A)
    assert [m["status"] for m in published.to(room)] == ["online", "offline"]
    assert published.to(room)[-1]["reason"] == "disconnected"
    assert online.online_members("lobby") == ([], False)


def test_presence_ignores_what_is_not_a_connection_event(
    store: ChatStore, published: RecordingPublisher
) -> None:
    for event in (
        {"eventType": "subscribed", "clientId": A},
        {"eventType": "connected", "clientId": "bad id"},
        {"eventType": "connected", "clientId": A, "versionNumber": "1", "timestamp": 1},
        {},
    ):
        assert handle_lifecycle(store, published, event) == 0
    assert published.sent == []


# ---------------------------------------------------------------------------------- commands


def test_join_sends_history_and_announces_only_connected_clients(
    commands: Commands, store: ChatStore, published: RecordingPublisher
) -> None:
    store.put_message(keys.room_conv("lobby"), message(B, 1_700_000_000_000, 1))
    send(commands, A, 1_700_000_000_100, type="join", room="lobby", name="Ada")
    (history,) = published.to(f"chat/in/{A}")
    assert history["type"] == "history" and history["room"] == "lobby"
    assert [m["id"] for m in history["messages"]] == ["m1"] and history["cursor"] is None
    assert published.to("chat/events/lobby") == []  # not connected: no presence
    OnlineState(store.db, store.state_table).record(B, B, connected=True, version=0, ts=1)
    send(commands, B, 1_700_000_000_200, type="join", room="lobby")
    (online,) = published.to("chat/events/lobby")
    assert online["clientId"] == B and online["status"] == "online"
    send(commands, C, 1_700_000_000_300, type="who", room="lobby")
    (refused,) = published.to(f"chat/in/{C}")  # who answers members only
    assert refused["code"] == "NOT_A_MEMBER"
    send(commands, C, 1_700_000_000_400, type="join", room="lobby")
    send(commands, C, 1_700_000_000_500, type="who", room="lobby")
    who = published.to(f"chat/in/{C}")[-1]
    # Each entry is the person's profile (a guest's generated handle here), never a claim.
    assert [(e["clientId"], e["person"], e["guest"]) for e in who["online"]] == [(B, B, True)]
    assert who["online"][0]["handle"].startswith("guest-")


def test_direct_messages_reach_the_two_parties_once(
    commands: Commands, published: RecordingPublisher
) -> None:
    send(commands, A, 1_700_000_000_000, type="message", id="d1", recipient=B, body="psst")
    send(
        commands, A, 1_700_000_000_900, type="message", id="d1", recipient=B, body="psst"
    )  # redelivery
    for party in (A, B):
        copies = published.to(f"chat/in/{party}")
        assert {json.dumps(c, sort_keys=True) for c in copies} == {
            json.dumps(copies[0], sort_keys=True)
        }
        assert copies[0]["ts"] == 1_700_000_000_000  # the stored (first) copy
    assert published.to(f"chat/in/{C}") == []
    send(commands, B, 1_700_000_001_000, type="history", **{"with": A})
    (page,) = [m for m in published.to(f"chat/in/{B}") if m["type"] == "history"]
    assert [m["id"] for m in page["messages"]] == ["d1"] and page["with"] == A


def test_private_groups_keep_non_members_out(
    commands: Commands, published: RecordingPublisher
) -> None:
    send(commands, A, 1, type="create", id="c1", name="ops", members=[B])
    (invitation,) = published.to(f"chat/in/{B}")
    assert invitation["type"] == "invitation"  # asked, not added (lambdas/chat/groups.py)
    group = invitation["groupId"]
    send(commands, A, 2, type="create", id="c1", name="ops", members=[B])  # retried: same group
    assert {m["groupId"] for m in published.to(f"chat/in/{A}")} == {group}
    send(commands, B, 3, type="accept", groupId=group)
    send(commands, B, 3, type="message", id="g1", groupId=group, body="members only")
    send(commands, C, 4, type="message", id="g2", groupId=group, body="let me in")
    send(commands, C, 5, type="history", groupId=group)
    errors = [m for m in published.to(f"chat/in/{C}") if m["type"] == "error"]
    assert [(e["code"], e.get("ref")) for e in errors] == [
        ("NOT_A_MEMBER", "g2"),
        ("NOT_A_MEMBER", None),
    ]
    assert not [m for m in published.to(f"chat/in/{C}") if m["type"] == "message"]
    assert [m["body"] for m in published.to(f"chat/in/{A}") if m["type"] == "message"] == [
        "members only"
    ]
    send(commands, B, 6, type="invite", groupId=group, member=C)
    send(commands, C, 7, type="accept", groupId=group)
    send(commands, C, 7, type="history", groupId=group)
    page = [m for m in published.to(f"chat/in/{C}") if m["type"] == "history"][-1]
    assert [m["id"] for m in page["messages"]] == ["g1"]


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        ({"type": "join", "room": "no spaces"}, "INVALID_ROOM"),
        ({"type": "join", "room": "ok", "name": ""}, "INVALID_NAME"),
        ({"type": "history", "room": "ok", "limit": 0}, "INVALID_REQUEST"),
        ({"type": "history", "room": "ok", "cursor": "forged"}, "INVALID_REQUEST"),
        ({"type": "history", "room": "ok", "with": B}, "INVALID_REQUEST"),
        (
            {"type": "message", "id": "x1", "recipient": "not valid!", "body": "hi"},
            "INVALID_REQUEST",
        ),
        (
            {"type": "message", "id": "x1", "recipient": B, "groupId": "g-1", "body": "hi"},
            "INVALID_TARGET",
        ),
        ({"type": "message", "id": "x1", "room": "lobby", "body": "hi"}, "INVALID_TARGET"),
        ({"type": "message", "id": "x1", "recipient": B, "body": "x" * 2001}, "TEXT_TOO_LONG"),
        ({"type": "message", "id": "x1", "groupId": "g-" + "0" * 32, "body": "hi"}, "NOT_FOUND"),
        ({"type": "create", "members": [B]}, "INVALID_NAME"),
        (
            {"type": "create", "name": "big", "members": [f"c{i}" for i in range(100)]},
            "LIMIT_EXCEEDED",
        ),
        ({"type": "dance"}, "UNKNOWN_TYPE"),
    ],
)
def test_bad_requests_get_their_error(
    commands: Commands, published: RecordingPublisher, request_: dict[str, Any], code: str
) -> None:
    send(commands, A, 1, **request_)
    (answer,) = published.to(f"chat/in/{A}")
    assert answer["type"] == "error" and answer["code"] == code


def test_undecodable_payloads_and_foreign_senders(
    commands: Commands, published: RecordingPublisher
) -> None:
    commands.handle({"payload": "%%%", "sender": A, "ts": 1})
    commands.handle({"payload": base64.b64encode(b"[1]").decode(), "sender": A, "ts": 1})
    assert [m["code"] for m in published.to(f"chat/in/{A}")] == ["BAD_REQUEST", "BAD_REQUEST"]
    commands.handle({"payload": "e30=", "sender": "n/a", "ts": 1})  # iot-data: no inbox to tell
    assert len(published.sent) == 2


def test_room_limit(commands: Commands, published: RecordingPublisher) -> None:
    for i in range(MAX_ROOMS_PER_CLIENT):
        send(commands, A, i, type="join", room=f"r{i}")
    send(commands, A, 100, type="join", room="one-too-many")
    send(commands, A, 101, type="join", room="r0")  # rejoining is fine
    codes = [m.get("code") for m in published.to(f"chat/in/{A}") if m["type"] == "error"]
    assert codes == ["LIMIT_EXCEEDED"]


def test_leave_announces_once(commands: Commands, published: RecordingPublisher) -> None:
    send(commands, A, 1, type="join", room="lobby")
    send(commands, A, 2, type="leave", room="lobby")
    send(commands, A, 3, type="leave", room="lobby")
    left = published.to("chat/events/lobby")
    assert [(m["status"], m.get("reason")) for m in left] == [("offline", "left")]


# ---------------------------------------------------------------------------------- stream, errors


def record(body: Any) -> dict[str, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return {"kinesis": {"data": base64.b64encode(data).decode()}}


def test_a_batch_becomes_one_update_per_room(published: RecordingPublisher) -> None:
    batch = [
        record({"type": "typing", "room": "lobby", "sender": A, "ts": 5}),
        record({"type": "typing", "room": "lobby", "sender": A, "ts": 6}),
        record({"type": "typing", "room": "lobby", "sender": B, "ts": 7}),
        record({"type": "telemetry", "room": "lab", "sender": "pi-1", "data": {"t": 1}, "ts": 8}),
        record({"type": "telemetry", "room": "lab", "sender": "pi-1", "data": {"t": 2}, "ts": 9}),
        record(b"not json"),
        record({"type": "typing", "room": "bad room", "sender": A, "ts": 1}),
    ]
    assert handle_batch(published, {"Records": batch}) == 2
    (lobby,) = published.to("chat/events/lobby")
    assert lobby["typing"] == [A, B] and lobby["ts"] == 7
    (lab,) = published.to("chat/events/lab")
    assert lab["telemetry"] == {"pi-1": {"t": 2}} and lab["typing"] == []
    assert aggregate([]) == {}


def test_a_failed_store_is_reported_to_the_sender(published: RecordingPublisher) -> None:
    original = {"v": 1, "type": "message", "id": "m9", "room": "lobby", "body": "hi", "sender": A}
    event = {
        "ruleName": "chat_room_store",
        "topic": "chat/pub/lobby",
        "clientId": "n/a",
        "base64OriginalPayload": base64.b64encode(json.dumps(original).encode()).decode(),
        "failures": [
            {
                "failedAction": "DynamoDBv2Action",
                "failedResource": "iotchat-messages",
                "errorMessage": "ResourceNotFoundException",
            }
        ],
    }
    record_ = handle_rule_error(published, event)
    assert record_["sender"] == A and record_["ref"] == "m9"
    (error,) = published.to(f"chat/in/{A}")
    assert error["code"] == "STORE_FAILED" and error["ref"] == "m9"
    # Failures with no person behind them are logged only.
    handle_rule_error(published, {**event, "topic": "chat/out", "clientId": "n/a"})
    assert len(published.sent) == 1


def test_a_takeover_never_flickers_offline(store: ChatStore, published: RecordingPublisher) -> None:
    store.join("lobby", A, None, online=False, now=1)
    handle_lifecycle(store, published, lifecycle("connected", 1, 100))
    # The old connection's end arrives before the new connection's start.
    handle_lifecycle(
        store,
        published,
        {**lifecycle("disconnected", 1, 200), "disconnectReason": "DUPLICATE_CLIENTID"},
    )
    handle_lifecycle(store, published, lifecycle("connected", 2, 201))
    assert {m["status"] for m in published.to("chat/events/lobby")} == {"online"}
    online = OnlineState(store.db, store.state_table).online_members("lobby")
    assert online == ([{"person": A, "clientId": A}], False)


# ---------------------------------------------------------------------------------- lone surrogates
# The commands Lambda gets a direct message's raw payload, and ``"body": "hi \\ud800"`` is valid
# JSON. Counting and serialising must never raise (a raise is an INTERNAL error and two
# retries); such text is refused once with the protocol's error.

LONE = ["hi \ud800", "\udc00", "\U0001f600\udfff", "\ude00\ud83d"]


def send_raw(handler: Commands, sender: str, ts: int, payload: bytes) -> None:
    event = {"payload": base64.b64encode(payload).decode(), "sender": sender, "ts": ts}
    handler.handle({**event, "door": PRIVATE})


def test_java_length_and_the_text_check() -> None:
    assert java_length("hi \ud800") == 4  # one UTF-16 unit, as Java counts; no exception
    assert java_length("hi \U0001f600") == 5  # a pair: two units
    assert all(not is_unicode_text(text) for text in LONE)
    assert is_unicode_text("hi \U0001f600 \u00e9")
    assert dumps({"t": "x\ud800"}) == b'{"t":"x\\ud800"}'  # stays an escape, never raises
    assert dumps({"t": "\u00e9"}) == '{"t":"\u00e9"}'.encode()


def test_a_direct_message_with_a_lone_surrogate_gets_one_invalid_text(
    commands: Commands,
    published: RecordingPublisher,
    store: ChatStore,
) -> None:
    for i, text in enumerate(LONE):
        # as a client writes it: the surrogate as a JSON escape
        send_raw(
            commands,
            A,
            1 + i,
            json.dumps(
                {"v": 1, "type": "message", "id": f"d{i}", "recipient": B, "body": text}
            ).encode(),
        )
    answers = published.to(f"chat/in/{A}")
    assert [(m["type"], m["code"], m["ref"]) for m in answers] == [
        ("error", "INVALID_TEXT", f"d{i}") for i in range(len(LONE))
    ]
    assert published.to(f"chat/in/{B}") == []
    assert store.history_page(keys.direct_conv(A, B), 50, None).messages == []
    # beside it, a normal direct message (an emoji written as an escaped pair) goes through
    send_raw(
        commands,
        A,
        9,
        b'{"v":1,"type":"message","id":"ok1","recipient":"'
        + B.encode()
        + b'","body":"hi \\ud83d\\ude00"}',
    )
    (delivered,) = published.to(f"chat/in/{B}")
    assert delivered["body"] == "hi \U0001f600" and delivered["sender"] == A


def test_names_with_a_lone_surrogate_are_refused(
    commands: Commands,
    published: RecordingPublisher,
) -> None:
    send_raw(commands, A, 1, b'{"type":"join","room":"lobby","name":"Ada\\ud800"}')
    send_raw(commands, A, 2, b'{"type":"create","id":"g1","name":"\\udbff","members":[]}')
    codes = [m["code"] for m in published.to(f"chat/in/{A}")]
    assert codes == ["INVALID_NAME", "INVALID_NAME"]


def test_telemetry_with_a_lone_surrogate_does_not_fail_the_batch() -> None:
    publisher = RecordingPublisher()
    body: dict[str, Any] = {
        "type": "telemetry",
        "room": "lab",
        "sender": "pi-1",
        "ts": 3,
        "data": {"label": "x\ud800"},
    }
    record = {"kinesis": {"data": base64.b64encode(json.dumps(body).encode()).decode()}}
    assert handle_batch(publisher, {"Records": [record]}) == 1
    (update,) = publisher.to("chat/events/lab")
    assert update["telemetry"] == {"pi-1": {"label": "x\ud800"}}
