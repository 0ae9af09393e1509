"""Nothing a person sent is lost (issue 20, the Python client): against a real local stack, a
message the gateway accepted but the chat never carried, or one sent while the connection was
down, comes through once the way is clear, each exactly once, live and in history."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from client import events
from client.chat_client import ChatClient
from client.outbox import Outbox
from tests.support.stack import InProcessStack
from tests.support.waiting import wait_for


def _room() -> str:
    return f"o-{uuid.uuid4().hex[:10]}"


def _joined(*clients: ChatClient, room: str) -> None:
    for client in clients:
        client.join(room)
        assert client.wait_for(lambda e: isinstance(e, events.History) and e.target == room)


def _heard(client: ChatClient, room: str, until: str) -> list[str]:
    """Every message id ``client`` showed in ``room`` up to and including ``until``."""
    shown: list[str] = []

    def arrived() -> bool:
        for event in client.events(timeout=0.05):
            if isinstance(event, events.Message) and event.room == room:
                shown.append(event.id)
        return until in shown

    wait_for(arrived, timeout=30, interval=0.05)
    return shown


def _stored(client: ChatClient, room: str, ids: list[str]) -> list[str]:
    """The room's newest page, once every one of ``ids`` is stored."""

    def page() -> list[str] | None:
        client.history(room=room)
        found = client.wait_for(
            lambda e: isinstance(e, events.History) and e.target == room, timeout=5
        )
        stored = [m.id for m in found.messages] if isinstance(found, events.History) else []
        return stored if set(ids) <= set(stored) else None

    return wait_for(page, timeout=30, interval=0.2)


def _gateway_loses_everything(stack: InProcessStack) -> Callable[[], None]:
    """Until the returned call: every publish is acknowledged but reaches no rule, so nothing
    is carried or stored (what an overloaded pipeline that drops in silence does)."""
    gateway = stack.stack.gateway
    assert gateway is not None  # the stack is up
    taps = gateway.broker.taps
    saved: list[Any] = stack.call(lambda: [taps.pop() for _ in range(len(taps))])
    return lambda: stack.call(lambda: taps.extend(reversed(saved)))


def test_messages_the_chat_never_carried_are_resent_and_shown_once(
    new_client: Callable[..., ChatClient], chat_stack: InProcessStack
) -> None:
    room = _room()
    alice = new_client(outbox=Outbox(resend_after=1.0))
    bob = new_client()
    _joined(alice, bob, room=room)
    restore = _gateway_loses_everything(chat_stack)
    try:
        lost = [alice.say(room, f"said into the void {n}") for n in range(3)]
        # Acknowledged by the gateway, never carried back: still waiting, being resent.
        wait_for(lambda: alice.outbox.pending_ids() == lost, timeout=5)
        assert bob.wait_for(lambda e: isinstance(e, events.Message), timeout=2.5) is None
    finally:
        restore()
    wait_for(lambda: alice.outbox.pending_ids() == [], timeout=30, interval=0.1)
    after = alice.say(room, "and this one went at once")
    shown = _heard(bob, room, after)
    assert sorted(shown) == sorted([*lost, after])  # each exactly once, though sent many times
    stored = _stored(bob, room, [*lost, after])
    assert sorted(stored) == sorted([*lost, after])  # stored once each, history shows no copy


def test_messages_sent_while_the_connection_is_down_arrive_after_the_reconnect(
    new_client: Callable[..., ChatClient], chat_stack: InProcessStack
) -> None:
    room = _room()
    alice = new_client(min_backoff=1.0, max_backoff=2.0)
    bob = new_client()
    _joined(alice, bob, room=room)
    broker = chat_stack.stack.gateway.broker
    restore = _gateway_loses_everything(chat_stack)  # what is in flight when it drops is lost
    try:
        in_flight = alice.say(room, "in flight when the line went")
        wait_for(lambda: alice.outbox.pending_ids() == [in_flight], timeout=5)
        chat_stack.call(lambda: broker.close(broker.connections[alice.client_id], "LOST"))
        assert alice.wait_for(lambda e: isinstance(e, events.Disconnected), timeout=10)
        offline = alice.say(room, "typed while offline")
    finally:
        restore()
    assert alice.wait_for(lambda e: isinstance(e, events.Connected) and e.resumed, timeout=20)
    wait_for(lambda: alice.outbox.pending_ids() == [], timeout=30, interval=0.1)
    last = alice.say(room, "back")
    shown = _heard(bob, room, last)
    assert sorted(shown) == sorted([in_flight, offline, last])
    assert sorted(_stored(bob, room, [in_flight, offline, last])) == sorted(
        [in_flight, offline, last]
    )
