"""`iotchat edge run` as a user runs it: a device process on a local stack, seen by a guest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from cli import devices
from client import events
from client.chat_client import ChatClient
from lambdas.manifest import MANIFEST_PATH
from tests.support.stack import InProcessStack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[3]
IOTCHAT = [sys.executable, "-m", "cli.main"]
ROOM = "workshop"
TIMEOUT = 20.0
HAS_STREAMS = bool(json.loads(Path(MANIFEST_PATH).read_text()).get("streams"))


@pytest.fixture
def guest(new_client: Callable[..., ChatClient]) -> ChatClient:
    """A guest in the device's room, on the module's stack (tests.support.chat)."""
    client = new_client(name="Ada")  # the stored name the device reads (via whois)
    client.join(ROOM)
    return client


class Device:
    """An ``iotchat edge run`` process whose log (stderr) is read as it is written."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [*IOTCHAT, *args],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def logged(self, text: str) -> list[str]:
        return [line for line in list(self.lines) if text in line]

    def interrupt(self) -> int:
        """Ctrl-C, as a person at the terminal would; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(15)
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._reader.join(5)


@pytest.fixture
def device_process(chat_stack: InProcessStack, guest: ChatClient, tmp_path: Path):
    """``start(name, *options)``: register a device and run ``iotchat edge run`` for it."""
    started: list[Device] = []

    def start(name: str, *extra: str) -> Device:
        out = tmp_path / name
        if not out.exists():
            devices.create_device(name, out, Path(chat_stack.stack.stack_file))
        device = Device(["edge", "run", "--device-dir", str(out), "--room", ROOM, *extra])
        started.append(device)
        return device

    yield start
    for device in started:
        device.kill()


def _from(sender: str, prefix: str):
    def match(event: events.Event) -> bool:
        return (
            isinstance(event, events.Message)
            and event.sender == sender
            and event.text.startswith(prefix)
        )

    return match


def test_device_comes_online_answers_status_and_help_and_stops_on_ctrl_c(guest, device_process):
    device = device_process("bench-pi", "--interval", "60")
    online = guest.wait_for(_from("bench-pi", "bench-pi online"), timeout=TIMEOUT)
    assert online is not None, f"no online message; device log:\n{device.log}"
    assert online.room == ROOM and "up " in online.text

    guest.say(ROOM, "/status", "Ada")
    status = guest.wait_for(_from("bench-pi", "bench-pi: up "), timeout=TIMEOUT)
    assert status is not None, f"no status reply; device log:\n{device.log}"
    assert "load " in status.text and "telemetry every 60 s" in status.text

    guest.say(ROOM, "@bench-pi /help", "Ada")
    helped = guest.wait_for(_from("bench-pi", "bench-pi (iotchat edge"), timeout=TIMEOUT)
    assert helped is not None and "/status" in helped.text

    guest.say(ROOM, "@another-pi /status", "Mallory")  # not for this device
    guest.say(ROOM, "plain chat", "Mallory")  # a claimed name is never what the device shows
    wait_for(lambda: device.logged(": plain chat"), timeout=TIMEOUT)
    assert device.logged(": @another-pi /status")  # shown, not answered

    def named() -> list[str]:
        """The device asked who the sender is (whois): later lines carry her stored name."""
        guest.say(ROOM, "still here")
        return device.logged("[workshop] Ada: still here")

    wait_for(named, timeout=TIMEOUT, interval=1.0)
    assert not device.logged("Mallory")
    assert device.interrupt() == 0, device.log
    assert "Traceback" not in device.log
    assert len(device.logged("] bench-pi: bench-pi: up ")) == 1  # one status reply in all
    assert device.lines[-1].endswith("stopped")


def test_a_revoked_device_cannot_join(chat_stack, guest, device_process):
    first = device_process("gone-pi", "--interval", "60")
    assert guest.wait_for(_from("gone-pi", "gone-pi online"), timeout=TIMEOUT) is not None
    assert first.interrupt() == 0
    devices.revoke_device("gone-pi", Path(chat_stack.stack.stack_file))
    again = device_process("gone-pi", "--interval", "60")
    wait_for(lambda: again.logged("connection attempt failed"), timeout=TIMEOUT)
    assert again.interrupt() == 0  # Ctrl-C while still trying to connect exits cleanly
    assert not again.logged("online")


def test_missing_device_files_exit_1_with_a_message(tmp_path):
    result = subprocess.run(
        [*IOTCHAT, "edge", "run", "--device-dir", str(tmp_path / "nope")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "no device.json" in result.stderr


@pytest.mark.skipif(
    not HAS_STREAMS,
    reason="lambdas/manifest.json declares no Kinesis streams yet: chat/stream has no consumer",
)
def test_telemetry_reaches_the_room_as_activity(guest, device_process):
    device = device_process("sensor-pi", "--interval", "1")
    activity = guest.wait_for(
        lambda e: isinstance(e, events.Activity) and "sensor-pi" in e.telemetry,
        timeout=TIMEOUT,
    )
    assert activity is not None, f"no activity; device log:\n{device.log}"
    assert activity.room == ROOM
    data = activity.telemetry["sensor-pi"]
    assert data["status"] == "online" and isinstance(data.get("uptime"), int)
    assert {"load1", "memTotalMiB"} <= set(data)
    assert device.interrupt() == 0
