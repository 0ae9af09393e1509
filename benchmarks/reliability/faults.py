"""Process faults inside a running stack: a Lambda worker SIGKILLed mid-invoke, dynalite
SIGKILLed while a client posts."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from contextlib import suppress
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks._harness import wait_until
from benchmarks.reliability.room_client import TIMEOUT, RoomClient
from benchmarks.reliability.stack_process import Info, StackProcess, running_stack
from benchmarks.reliability.store import guest_identity, signed_in_identity, stored_ids
from tests.support.messages_table import dm_conv, room_conv

# The commands Lambda wrapped so a test can catch it mid-invoke (see its docstring).
SLOW_COMMANDS_HANDLER = "tests.e2e.reliability.slow_handler.commands"
MARKER_ENV = "IOTCHAT_RELIABILITY_MARKERS"


# ---------------------------------------------------------------------- 4. process faults


def slow_manifest(workdir: Path) -> tuple[Path, Path]:
    """The project's manifest with the commands function wrapped by the slow test handler;
    returns (manifest path, marker directory)."""
    from lambdas.manifest import MANIFEST_PATH

    manifest = json.loads(MANIFEST_PATH.read_text())
    markers = workdir / "markers"
    markers.mkdir(parents=True, exist_ok=True)
    for function in manifest["functions"]:
        if function["name"] == "{stack}-commands":
            function["handler"] = SLOW_COMMANDS_HANDLER
            function.setdefault("environment", {})[MARKER_ENV] = str(markers)
    path = workdir / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2))
    return path, markers


def lambda_worker_kill(stack: StackProcess, markers: Path) -> dict[str, Any]:
    """A direct message whose commands worker is SIGKILLed mid-invoke, once before it stored
    anything and once after it stored and delivered: Lambda's retry stores it once and
    delivers it."""
    info = stack.info
    # Direct messages are for signed-in people, through chat/private (docs/protocol.md).
    ada = RoomClient(info, signed_in_identity(info, stack.state_dir))
    bob = RoomClient(info, signed_in_identity(info, stack.state_dir))
    results: dict[str, Any] = {"scenario": "lambda-worker-kill"}
    try:
        ada.connect()
        bob.connect()
        for person, other in ((ada, bob), (bob, ada)):  # each comes through the door once
            person.send_tracked({"type": "history", "with": other.client_id}, "chat/private")
            person.wait(partial(_has_history, person), "a history page through chat/private")
        for when in ("before", "after"):
            results[when] = _kill_mid_invoke(info, ada, bob, markers, when)
        return results
    finally:
        ada.close()
        bob.close()


def _has_history(client: RoomClient) -> bool:
    return any(m.get("type") == "history" for m in client.received.get(client.inbox_topic, []))


def _kill_mid_invoke(
    info: Info, ada: RoomClient, bob: RoomClient, markers: Path, when: str
) -> dict[str, Any]:
    """Ada sends Bob a direct message; its worker is killed ``when`` (before or after) it
    stored the message; returns what was stored, delivered and retried."""
    message_id = f"dm-{when}-{uuid.uuid4().hex[:8]}"
    ada.send_tracked(
        {
            "v": 1,
            "type": "message",
            "id": message_id,
            "recipient": bob.client_id,
            "body": f"reliability:kill-{when}",
        },
        "chat/private",
    )
    marker = markers / f"{message_id}.pid"
    wait_until(marker.exists, TIMEOUT, f"worker busy with {message_id}")
    pid = int(wait_until(lambda: marker.read_text().strip(), 5, "pid written"))
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    bob.wait(lambda: bob.inbox_messages[message_id] > 0, "the direct message")
    delivered_after = time.monotonic() - killed_at

    def attempts() -> int:
        return len(list(markers.glob(f"{message_id}.attempt*")))

    def stored() -> int:
        return stored_ids(info, dm_conv(ada.client_id, bob.client_id))[message_id]

    # The killed attempt is retried (AWS: asynchronous invokes are retried twice); after a
    # kill that came after the store, the retry re-delivers the stored copy.
    wait_until(lambda: attempts() >= 2, TIMEOUT, "the retry")
    if when == "after":
        with suppress(TimeoutError):
            bob.wait(lambda: bob.inbox_messages[message_id] > 1, "re-delivery", 10)
    wait_until(stored, TIMEOUT, "stored")
    return {
        "killedPid": pid,
        "storedItems": stored(),
        "deliveredCopies": bob.inbox_messages[message_id],
        "deliveredSecondsAfterKill": round(delivered_after, 2),
        "attempts": attempts(),
    }


def dynalite_kill(stack: StackProcess, *, rate: float, seconds_after: float) -> dict[str, Any]:
    """dynalite is SIGKILLed while a client posts steadily: each message is then either stored
    or reported to its sender as STORE_FAILED (the store rule's errorAction), the stack brings
    dynalite back, and storing resumes."""
    info = stack.info
    room = f"dyn-{uuid.uuid4().hex[:8]}"
    ada = RoomClient(info, guest_identity(info))
    sent: list[str] = []
    try:
        ada.connect()
        ada.subscribe(f"chat/pub/{room}")
        for n in range(5):
            sent.append(f"ok-{n}")
            ada.say(room, sent[-1])
        wait_until(lambda: len(stored_ids(info, room_conv(room))) == 5, TIMEOUT, "first stored")
        old_pid = stack.dynalite_pid()
        os.kill(old_pid, signal.SIGKILL)
        killed = time.monotonic()
        down_seen = False
        recovered_at: float | None = None
        n = 0
        while True:
            n += 1
            sent.append(f"m-{n}")
            ada.say(room, sent[-1])
            components = stack.health()["components"]
            if components["dynamodb"] != "ok":
                down_seen = True
            elif recovered_at is None and down_seen:
                recovered_at = time.monotonic()
            if recovered_at is not None and time.monotonic() - recovered_at >= seconds_after:
                break
            if time.monotonic() - killed > 60:
                raise TimeoutError("dynalite did not come back within 60 s")
            time.sleep(1 / rate)  # pacing the sender
        tail = [f"tail-{k}" for k in range(5)]
        for message_id in tail:
            ada.say(room, message_id)
        sent += tail

        def settled() -> bool:
            stored = stored_ids(info, room_conv(room))
            return all(i in stored or i in ada.errors for i in sent)

        wait_until(settled, TIMEOUT, "every message stored or reported", 0.2)
        stored = stored_ids(info, room_conv(room))
        failed = {i for i in sent if ada.errors.get(i) == "STORE_FAILED"}
        return {
            "scenario": "dynalite-kill",
            "sent": len(sent),
            "stored": len(set(stored) & set(sent)),
            "storeFailedReported": len(failed),
            "storedAndReported": len(failed & set(stored)),
            "silentlyLost": len([i for i in sent if i not in stored and i not in failed]),
            "storedTwice": sum(1 for k in stored.values() if k > 1),
            "healthDownSeen": down_seen,
            "downSeconds": round((recovered_at or killed) - killed, 2),
            "restartedPid": stack.dynalite_pid() != old_pid,
            "tailStored": sum(1 for i in tail if i in stored),
        }
    finally:
        ada.close()


def faults(workdir: Path, *, rate: float) -> list[dict[str, Any]]:
    manifest, markers = slow_manifest(workdir)
    with running_stack(workdir / "faults", manifest=manifest) as stack:
        return [
            lambda_worker_kill(stack, markers),
            dynalite_kill(stack, rate=rate, seconds_after=1.0),
        ]
