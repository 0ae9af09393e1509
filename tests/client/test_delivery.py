"""Nothing a person sent is lost (issue 20, the Python client): against a real local stack, a
message the gateway accepted but the chat never carried, one sent while the connection was
down, or one in flight when the stack is SIGKILLed, comes through once the way is clear, each
exactly once, live and in history."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from benchmarks.reliability.stack_process import StackProcess
from client import events
from client.chat_client import ChatClient
from client.identity import Identity, SessionFile
from client.outbox import Outbox
from client.stack_file import load_stack_file
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


@pytest.mark.timeout(240)
def test_a_stack_killed_mid_conversation_and_started_again_stores_every_message_once(
    tmp_path: Path,
) -> None:
    stack = StackProcess(tmp_path / "state")
    stack.start()
    alice: ChatClient | None = None
    try:
        info = load_stack_file(stack.stack_file)
        guest = Identity.guest(info, SessionFile(tmp_path / "alice.json"))
        alice = ChatClient(info, guest, min_backoff=0.5, max_backoff=2.0).start()
        room = _room()
        _joined(alice, room=room)
        sent = [alice.say(room, f"before the crash {n}") for n in range(20)]
        ports = stack.ports()
        # SIGKILL the moment the room carried the last one: its store (and maybe others') is
        # still on its way to dynalite, so the room showed what history will not hold.
        alice.wait_for(lambda e: isinstance(e, events.Message) and e.id == sent[-1], 20)
        stack.kill()
        sent += [alice.say(room, f"while the stack is down {n}") for n in range(5)]
        stack.start(ports)
        back = alice.wait_for(lambda e: isinstance(e, events.Connected) and e.resumed, 60)
        assert back is not None, "no reconnect to the restarted stack"
        wait_for(lambda: alice.outbox.pending_ids() == [], timeout=60, interval=0.2)

        def stored() -> list[str] | None:
            assert alice is not None
            alice.history(room=room, limit=100)
            page = alice.wait_for(
                lambda e: isinstance(e, events.History) and e.target == room, timeout=5
            )
            ids = [m.id for m in page.messages] if isinstance(page, events.History) else []
            return ids if set(sent) <= set(ids) else None

        ids = wait_for(stored, timeout=60, interval=0.5)
        assert sorted(ids) == sorted(sent)  # every one, exactly once
    finally:
        if alice is not None:
            alice.stop()
        stack.close()
