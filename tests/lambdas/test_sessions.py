"""Many sessions per person, presence per person, budgets and the private door, at unit level
against moto's DynamoDB (tests/e2e/chat/test_sessions.py runs them on the local stack)."""

from __future__ import annotations

import base64
import itertools
import json
import random
from typing import Any

import pytest

from lambdas.chat import doors, sessions
from lambdas.chat.budgets import Budgets, RateLimited, budget_of
from lambdas.chat.commands import Commands
from lambdas.chat.online import KEEP_DISCONNECTED_MS, PRUNE_AT, SESSIONS, OnlineState
from lambdas.chat.presence import handle_lifecycle
from lambdas.chat.protocol import ProtocolError
from lambdas.chat.publisher import RecordingPublisher
from lambdas.chat.store import ChatStore, from_item

ALICE = "us-east-1:0d3b8a2e-5a55-4c1e-9a7f-1f2e3d4c5b6a"
BOB = "us-east-1:9e8d7c6b-0000-4111-8222-333344445555"
T0 = 1_700_000_000_000


def event(client_id: str, kind: str, version: int, ts: int, **extra: Any) -> dict[str, Any]:
    return {
        "clientId": client_id,
        "eventType": kind,
        "versionNumber": version,
        "timestamp": ts,
        "sessionIdentifier": "s",
        **extra,
    }


def statuses(published: RecordingPublisher, room: str = "lobby") -> list[str]:
    return [body["status"] for body in published.to(f"chat/events/{room}")]


# ---------------------------------------------------------------------------- client ids


def test_a_session_belongs_to_its_identity_and_nothing_else_does() -> None:
    tab = sessions.session_client_id(ALICE, "web-3f9a2c1b")
    assert tab == f"{ALICE}_web-3f9a2c1b"
    assert sessions.person_of(tab) == ALICE
    assert sessions.person_of(ALICE) == ALICE  # the one-session contract of before
    for device in ("pi-kitchen", "pi_kitchen", "us-east-1:not-a-guid_x"):
        assert sessions.person_of(device) == device
    for bad in ("", "a/b", "x" * 65, "has space"):
        with pytest.raises(ValueError):
            sessions.session_client_id(ALICE, bad)
    with pytest.raises(ValueError):
        sessions.session_client_id("pi-kitchen", "tab")


# ---------------------------------------------------------------------------- presence


def test_a_person_is_online_while_any_session_is_and_offline_after_the_last(
    store: ChatStore,
) -> None:
    published = RecordingPublisher()
    store.join("lobby", ALICE, None, False, T0)
    store.join("ops", ALICE, None, False, T0)
    tab, cli = f"{ALICE}_tab", f"{ALICE}_cli"
    assert handle_lifecycle(store, published, event(tab, "connected", 0, T0 + 1)) == 2
    assert handle_lifecycle(store, published, event(cli, "connected", 0, T0 + 2)) == 0
    assert handle_lifecycle(store, published, event(tab, "disconnected", 0, T0 + 3)) == 0
    assert statuses(published) == ["online"]
    assert handle_lifecycle(store, published, event(cli, "disconnected", 0, T0 + 4)) == 2
    assert statuses(published) == statuses(published, "ops") == ["online", "offline"]
    update = published.to("chat/events/lobby")[-1]
    assert update["person"] == update["clientId"] == ALICE
    assert update["reason"] == "disconnected" and update["ts"] == T0 + 4


def test_short_sessions_beside_a_long_one_never_take_the_person_offline(
    store: ChatStore,
) -> None:
    published = RecordingPublisher()
    store.join("lobby", ALICE, None, False, T0)
    handle_lifecycle(store, published, event(f"{ALICE}_listen", "connected", 0, T0))
    ts = itertools.count(T0 + 1)
    for run in range(10):
        send = f"{ALICE}_send-{run}"
        events = [event(send, "connected", 0, next(ts)), event(send, "disconnected", 0, next(ts))]
        random.Random(run).shuffle(events)  # the two events of a short session, either order
        for e in events + events:  # and each delivered twice
            handle_lifecycle(store, published, e)
    assert statuses(published) == ["online"]
    assert OnlineState(store.db, store.state_table).is_online(ALICE)


def test_takeover_of_one_session_never_marks_the_person_offline(store: ChatStore) -> None:
    published = RecordingPublisher()
    store.join("lobby", ALICE, None, False, T0)
    tab = f"{ALICE}_tab"
    handle_lifecycle(store, published, event(tab, "connected", 3, T0))
    # The same client id connects again: the old connection's disconnect says so, before or
    # after the new connection's connect.
    takeover = event(tab, "disconnected", 3, T0 + 5, disconnectReason="DUPLICATE_CLIENTID")
    handle_lifecycle(store, published, takeover)
    handle_lifecycle(store, published, event(tab, "connected", 4, T0 + 5))
    handle_lifecycle(store, published, takeover)
    assert statuses(published) == ["online"]
    handle_lifecycle(store, published, event(tab, "disconnected", 4, T0 + 9))
    assert statuses(published) == ["online", "offline"]


def test_out_of_order_duplicates_and_the_disconnect_tie(store: ChatStore) -> None:
    published = RecordingPublisher()
    store.join("lobby", ALICE, None, False, T0)
    tab = f"{ALICE}_tab"
    # The disconnect of version 1 arrives first: its connect, arriving later, is stale.
    handle_lifecycle(store, published, event(tab, "disconnected", 1, T0 + 9))
    assert handle_lifecycle(store, published, event(tab, "connected", 1, T0 + 1)) == 0
    # Same version and millisecond: the disconnect wins whichever comes first.
    handle_lifecycle(store, published, event(tab, "connected", 2, T0 + 20))
    handle_lifecycle(store, published, event(tab, "disconnected", 2, T0 + 20))
    assert handle_lifecycle(store, published, event(tab, "connected", 2, T0 + 20)) == 0
    assert not OnlineState(store.db, store.state_table).is_online(ALICE)
    assert statuses(published) == ["online", "offline"]


def test_many_short_sessions_leave_a_bounded_item(store: ChatStore) -> None:
    published = RecordingPublisher()
    ts = T0
    for run in range(PRUNE_AT * 3):
        ts += KEEP_DISCONNECTED_MS // PRUNE_AT
        handle_lifecycle(store, published, event(f"{ALICE}_s{run}", "connected", 0, ts))
        handle_lifecycle(store, published, event(f"{ALICE}_s{run}", "disconnected", 0, ts + 1))
    item = store.db.get_item(
        TableName=store.state_table, Key={"pk": {"S": f"client#{ALICE}"}, "sk": {"S": "presence"}}
    )["Item"]
    assert len(from_item(item)[SESSIONS]) <= PRUNE_AT + 1


def test_who_lists_people_once_however_many_sessions(store: ChatStore) -> None:
    state = OnlineState(store.db, store.state_table)
    for person in (ALICE, BOB, "pi-kitchen"):
        store.join("lobby", person, None, False, T0)
    for part in ("a", "b", "c"):
        state.record(ALICE, f"{ALICE}_{part}", connected=True, version=0, ts=T0)
    state.record("pi-kitchen", "pi-kitchen", connected=True, version=0, ts=T0)
    online, more = state.online_members("lobby")
    assert sorted(e["person"] for e in online) == sorted([ALICE, "pi-kitchen"])
    assert not more


# ---------------------------------------------------------------------------- budgets


def test_a_budget_refuses_one_person_and_refills_next_minute(store: ChatStore) -> None:
    budgets = Budgets(store.db, store.state_table, {"history": 3})
    request = {"type": "history", "room": "lobby", "id": "h1"}
    for _ in range(3):
        budgets.spend(ALICE, request, T0)
    with pytest.raises(RateLimited) as refused:
        budgets.spend(ALICE, request, T0 + 1)
    envelope = refused.value.envelope()
    assert envelope["code"] == "RATE_LIMITED" and envelope["ref"] == "h1"
    assert 1 <= envelope["retryAfter"] <= 60
    budgets.spend(BOB, request, T0 + 1)  # another person's budget is their own
    budgets.spend(ALICE, request, T0 + 60_000)  # the next minute


def test_what_spends_which_budget() -> None:
    assert budget_of({"type": "history", "room": "r"}) == "history"
    assert budget_of({"type": "join", "room": "r"}) == "join"
    assert budget_of({"type": "message", "recipient": "bob", "id": "1", "body": "x"}) == "direct"
    assert budget_of({"type": "message", "groupId": "g", "id": "1", "body": "x"}) is None
    assert budget_of({"type": "who", "room": "r"}) is None


# ---------------------------------------------------------------------------- the door


def test_private_requests_need_the_signed_in_door() -> None:
    for request in (
        {"type": "message", "recipient": "bob", "id": "1", "body": "x"},
        {"type": "message", "groupId": "g-0", "id": "1", "body": "x"},
        {"type": "history", "with": "bob"},
        {"type": "history", "groupId": "g-0"},
        {"type": "create", "name": "ops"},
        {"type": "accept", "groupId": "g-0"},
    ):
        with pytest.raises(ProtocolError) as refused:
            doors.require_door(request, None)
        assert refused.value.code == "SIGN_IN_REQUIRED"
        doors.require_door(request, doors.PRIVATE)
    for public in ({"type": "join", "room": "lobby"}, {"type": "history", "room": "lobby"}):
        doors.require_door(public, None)


def test_nothing_private_is_sent_to_someone_who_never_signed_in(store: ChatStore) -> None:
    """A guest identity proves nothing, so neither a direct message nor an invitation goes to
    one; once a person has come through chat/private, both do."""
    published = RecordingPublisher()
    commands = Commands(store, published)

    def private(sender: str, ts: int, **request: Any) -> None:
        payload = base64.b64encode(json.dumps(request).encode()).decode()
        commands.handle({"payload": payload, "sender": sender, "ts": ts, "door": doors.PRIVATE})

    private(ALICE, T0, type="message", id="d1", recipient=BOB, body="psst")
    private(ALICE, T0 + 1, type="create", id="g1", name="ops", members=[BOB])
    refusals = [m["code"] for m in published.to(f"chat/in/{ALICE}") if m["type"] == "error"]
    assert refusals == ["SIGN_IN_REQUIRED", "SIGN_IN_REQUIRED"]
    assert published.to(f"chat/in/{BOB}") == []
    private(BOB, T0 + 2, type="history", **{"with": ALICE})  # Bob signs in somewhere
    private(ALICE, T0 + 3, type="message", id="d2", recipient=BOB, body="psst")
    assert [m["id"] for m in published.to(f"chat/in/{BOB}") if m["type"] == "message"] == ["d2"]
