"""Clean restart and crash (SIGKILL) of the whole stack, and what survives each: stored
messages, persistent MQTT sessions, clients that reconnect by themselves."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from benchmarks._harness import wait_until
from benchmarks.reliability.room_client import TIMEOUT, RoomClient
from benchmarks.reliability.stack_process import StackProcess
from benchmarks.reliability.store import guest_identity, stored_ids
from tests.support.messages_table import room_conv

# ---------------------------------------------------------------------- 2. clean restart


def restart(workdir: Path, *, before: int, after: int) -> dict[str, Any]:
    """Two :class:`ChatClient` users and one persistent paho session (clean_session=False,
    offline) around a clean stop and start of the stack on the same state dir and ports."""
    from client.chat_client import ChatClient
    from client.events import Connected, Message
    from client.identity import Identity, SessionFile
    from client.stack_file import load_stack_file

    stack = StackProcess(workdir / "restart")
    info = stack.start()
    room = f"restart-{uuid.uuid4().hex[:8]}"
    topic = f"chat/pub/{room}"
    seen: dict[str, set[str]] = {"ada": set(), "bob": set()}
    reconnects: Counter[str] = Counter()
    lock = threading.Lock()

    def recorder(name: str) -> Callable[[Any], None]:
        def on_event(event: Any) -> None:
            with lock:
                if isinstance(event, Message) and event.room == room:
                    seen[name].add(event.id)
                elif isinstance(event, Connected) and event.resumed:
                    reconnects[name] += 1

        return on_event

    stack_info = load_stack_file(stack.stack_file)
    chat: dict[str, ChatClient] = {}
    persistent: RoomClient | None = None
    try:
        for name in ("ada", "bob"):
            identity = Identity.guest(stack_info, SessionFile(workdir / f"{name}.json"))
            chat[name] = ChatClient(
                stack_info, identity, on_event=recorder(name), min_backoff=0.2, max_backoff=1.0
            ).start()
            chat[name].join(room)
        # The persistent session subscribes, then leaves cleanly: from now on the gateway
        # queues the room's QoS 1 messages for it.
        keeper_identity = guest_identity(info)
        persistent = RoomClient(info, keeper_identity, clean_session=False)
        persistent.connect()
        persistent.subscribe(topic)
        persistent.close()

        def both_saw(ids: set[str]) -> Callable[[], bool]:
            return lambda: all(seen[n] >= ids for n in seen)

        # Joining is asynchronous (a Lambda): wait until a first message gets through.
        first = chat["ada"].say(room, "first")
        wait_until(both_saw({first}), TIMEOUT, "first message seen")
        sent_before = {first} | {chat["ada"].say(room, f"before {n}") for n in range(before - 1)}
        wait_until(both_saw(sent_before), TIMEOUT, "messages before the restart")
        wait_until(lambda: set(stored_ids(info, room_conv(room))) >= sent_before, TIMEOUT, "stored")
        ports = stack.ports()
        stop_seconds = stack.stop()
        session_file = stack.state_dir / "gateway" / "sessions.json"
        saved = json.loads(session_file.read_text())
        saved_ids = {s["clientId"] for s in saved["sessions"]}
        file_mode = oct(session_file.stat().st_mode & 0o777)

        began = time.monotonic()
        info = stack.start(ports)
        start_seconds = time.monotonic() - began
        wait_until(lambda: all(reconnects[n] for n in chat), TIMEOUT, "clients reconnected")
        reconnect_seconds = time.monotonic() - began
        sent_after = {chat["bob"].say(room, f"after {n}") for n in range(after)}
        wait_until(both_saw(sent_after), TIMEOUT, "messages after the restart")

        persistent = RoomClient(info, keeper_identity, clean_session=False)
        session_present = persistent.connect().session_present
        everything = sent_before | sent_after
        with suppress(TimeoutError):
            persistent.wait(lambda: set(persistent.seen_on(room)) >= everything, "queue")
        queued_received = len(set(persistent.seen_on(room)) & everything)
        wait_until(lambda: set(stored_ids(info, room_conv(room))) >= everything, TIMEOUT, "stored")
        stored = stored_ids(info, room_conv(room))
        return {
            "scenario": "restart",
            "sentBefore": len(sent_before),
            "sentAfter": len(sent_after),
            "stored": len(set(stored) & everything),
            "storedTwice": sum(1 for n in stored.values() if n > 1),
            "seenByAda": len(seen["ada"] & everything),
            "seenByBob": len(seen["bob"] & everything),
            "reconnectedByThemselves": sum(1 for n in chat if reconnects[n]),
            "sessionSaved": keeper_identity[0] in saved_ids,
            "sessionFileMode": file_mode,
            "sessionPresent": session_present,
            "persistentReceived": queued_received,
            "persistentExpected": len(everything),
            "stopSeconds": round(stop_seconds, 2),
            "startSeconds": round(start_seconds, 2),
            "reconnectSeconds": round(reconnect_seconds, 2),
        }
    finally:
        for client in chat.values():
            client.stop()
        if persistent is not None:
            persistent.close()
        stack.close()


# ---------------------------------------------------------------------- 3. crash


def crash(
    workdir: Path, *, clients: int, messages: int, rate: float, burst: int = 20
) -> dict[str, Any]:
    """Clients stream room messages; the stack is SIGKILLed half-way and started again on the
    same state dir. Afterwards each sender compares what it sent with what is stored (a Query,
    as a client's history read would) and sends the missing ones again with the same ``id``.
    Right before the kill each client sends a ``burst`` without pacing, so some messages are
    in flight (acknowledged or not, republished or not, stored or not) when the stack dies."""
    stack = StackProcess(workdir / "crash")
    info = stack.start()
    room = f"crash-{uuid.uuid4().hex[:8]}"
    people = [RoomClient(info, guest_identity(info)) for _ in range(clients)]
    sent: dict[str, list[str]] = {p.client_id: [] for p in people}
    texts: dict[str, str] = {}  # each id's text: a resend repeats it, as an outbox does
    killer_done = threading.Event()
    snapshot: dict[str, Any] = {}
    # An offline persistent session: written through to the state dir, it survives the crash.
    keeper_identity = guest_identity(info)
    keeper = RoomClient(info, keeper_identity, clean_session=False)
    try:
        keeper.connect()
        keeper.subscribe(f"chat/pub/{room}")
        keeper.close()
        for person in people:
            person.connect()
            person.subscribe(f"chat/pub/{room}")
        kill_after = messages // 2

        def send_all() -> None:
            began = time.monotonic()
            for n in range(messages):
                if killer_done.is_set():
                    return
                for person in people:
                    message_id = f"c-{person.client_id[-8:]}-{n}"
                    sent[person.client_id].append(message_id)
                    texts[message_id] = f"message {n}"
                    person.say(room, message_id, texts[message_id])
                if n == kill_after:
                    # Durable before the kill: what a Query already returns now.
                    snapshot["stored"] = set(stored_ids(info, room_conv(room)))
                    # Then a burst, and the kill while it is in flight.
                    for k in range(burst):
                        for person in people:
                            message_id = f"b-{person.client_id[-8:]}-{k}"
                            sent[person.client_id].append(message_id)
                            texts[message_id] = f"burst {k}"
                            person.say(room, message_id, texts[message_id])
                    # Kill once the stack is part-way through the burst.
                    wait_until(
                        lambda: (
                            sum(1 for p in people for i in list(p.acked) if i.startswith("b-"))
                            >= burst * len(people) // 4
                        ),
                        TIMEOUT,
                        "burst under way",
                        0.001,
                    )
                    stack.kill()
                    killer_done.set()
                    return
                delay = began + (n + 1) / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)

        send_all()
        for person in people:
            person.wait_disconnected("disconnect after the kill")
            person.paho.loop_stop()
        all_sent = {i for ids in sent.values() for i in ids}
        acked = {i for p in people for i in p.acked}
        seen = {i for p in people for i in p.seen_on(room)}
        stored_before_kill: set[str] = snapshot["stored"]

        began = time.monotonic()
        info = stack.start(stack.ports())
        restart_seconds = time.monotonic() - began
        stored_after_restart = stored_ids(info, room_conv(room))
        after = set(stored_after_restart)
        durable = stored_before_kill <= after
        seen_not_stored = seen - after
        acked_not_stored = acked - after
        missing = all_sent - after

        # Recovery by the senders: resend every missing message with its original id and text,
        # and a few stored ones too, to show that a repeat is not stored twice (another text
        # under the same id would be kept beside the first: docs/data-model.md).
        again = [RoomClient(info, (p.client_id, p.creds)) for p in people]
        try:
            for person, old in zip(again, people, strict=True):
                person.connect()
                mine = sent[old.client_id]
                repeat = [i for i in mine if i not in after] + [i for i in mine if i in after][:3]
                for message_id in repeat:
                    person.say(room, message_id, texts[message_id])
                person.wait_acked(repeat, "resends acked")
            wait_until(
                lambda: set(stored_ids(info, room_conv(room))) >= all_sent,
                TIMEOUT,
                "resends stored",
            )
        finally:
            for person in again:
                person.close()
        final = stored_ids(info, room_conv(room))
        keeper = RoomClient(info, keeper_identity, clean_session=False)
        session_survived = keeper.connect().session_present
        keeper.close()
        return {
            "scenario": "crash",
            "clients": clients,
            "burst": burst,
            "sent": len(all_sent),
            "acked": len(acked),
            "unacked": len(all_sent - acked),
            "seenOnRoom": len(seen),
            "storedBeforeKill": len(stored_before_kill),
            "storedAfterRestart": len(after),
            "completedStoresKept": durable,
            "seenNotStored": len(seen_not_stored),
            "ackedNotStored": len(acked_not_stored),
            "missingAfterRestart": len(missing),
            "resent": len(missing),
            "storedAfterResend": len(set(final) & all_sent),
            "storedItems": sum(final.values()),
            "storedTwice": sum(1 for n in final.values() if n > 1),
            "persistentSessionSurvived": session_survived,
            "restartSeconds": round(restart_seconds, 2),
        }
    finally:
        for person in people:
            person.paho.loop_stop()
        stack.close()
