"""The edge behaviour through a real ChatClient on a fake transport: what the room would see."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from client.chat_client import ChatClient
from client.edge.agent import EdgeAgent, parse_command, telemetry_data
from client.edge.device import greengrass_device
from client.edge.metrics import read_metrics, summary
from client.transport import ConnectOptions, TransportCallbacks
from tests.support.clock import Clock

THING = "kitchen-pi"
ROOM = "lab"
READING = {"cpuTemp": 51.2, "load1": 0.5, "load5": 0.25, "load15": 0.1, "uptime": 7260}
READING |= {"memTotalMiB": 3792, "memAvailableMiB": 3000}


class FakeTransport:
    """Records what the client sends; ``deliver`` plays the broker."""

    def __init__(
        self,
        stack: Any,
        identity: Any,
        client_id: str,
        callbacks: TransportCallbacks,
        options: ConnectOptions,
    ):
        self.client_id = client_id
        self.callbacks = callbacks
        self.published: list[tuple[str, dict[str, Any]]] = []
        self.subscribed: list[str] = []

    def start(self) -> None:
        self.callbacks.on_connected(False)

    def subscribe(self, topic_filter: str) -> None:
        self.subscribed.append(topic_filter)

    def publish(self, topic: str, payload: bytes) -> None:
        self.published.append((topic, json.loads(payload)))

    def stop(self) -> None:
        pass

    def deliver(self, topic: str, body: dict[str, Any]) -> None:
        self.callbacks.on_message(topic, json.dumps({"v": 1, **body}).encode())

    def sent(self, topic: str = "chat/out", kind: str = "message") -> list[dict[str, Any]]:
        return [b for t, b in self.published if t == topic and b.get("type") == kind]


@pytest.fixture
def rig() -> tuple[EdgeAgent, FakeTransport, Clock]:
    stack, identity = greengrass_device(THING)
    chat = ChatClient(stack, identity, transport_factory=FakeTransport).start(timeout=1)
    clock = Clock(1000.0)
    edge = EdgeAgent(chat, THING, ROOM, 30, metrics=lambda: dict(READING), clock=clock)
    edge.start()
    assert isinstance(chat.transport, FakeTransport)
    return edge, chat.transport, clock


def _room_message(sender: str, text: str, mid: str = "m1", **extra: Any) -> dict[str, Any]:
    body = {"type": "message", "id": mid, "room": ROOM, "body": text, "sender": sender}
    return {**body, "ts": 1_700_000_000_000, **extra}


def _drain(edge: EdgeAgent) -> None:
    while edge.pump(0):
        pass


def test_start_joins_announces_online_and_reports_at_once(rig):
    _, transport, _ = rig
    assert f"chat/pub/{ROOM}" in transport.subscribed
    assert f"chat/in/{THING}" in transport.subscribed
    (join,) = transport.sent(kind="join")
    assert join.pop("id")  # the request id a refusal would name
    assert join == {"v": 1, "type": "join", "room": ROOM, "name": THING}
    [online] = transport.sent()
    assert online["room"] == ROOM and online["body"].startswith(f"{THING} online")
    assert "up 2h 1m" in online["body"]
    [report] = transport.sent("chat/stream", "telemetry")
    assert report["room"] == ROOM and report["data"]["status"] == "online"


def test_telemetry_is_a_small_object_per_protocol_and_repeats_each_interval(rig):
    edge, transport, clock = rig
    _drain(edge)
    assert len(transport.sent("chat/stream", "telemetry")) == 1  # not due yet
    clock.now += 30
    _drain(edge)
    reports = transport.sent("chat/stream", "telemetry")
    assert len(reports) == 2
    data = reports[-1]["data"]
    assert isinstance(data, dict)
    assert len(json.dumps(data, separators=(",", ":")).encode()) <= 2048
    assert data == {"status": "online", **READING}


def test_no_readings_pile_up_while_offline(rig):
    edge, transport, clock = rig
    transport.callbacks.on_disconnected("network down")
    clock.now += 90
    _drain(edge)
    assert len(transport.sent("chat/stream", "telemetry")) == 1  # only the one from start
    transport.callbacks.on_connected(True)
    clock.now += 30
    _drain(edge)
    assert len(transport.sent("chat/stream", "telemetry")) == 2


def test_oversized_readings_are_cut_under_2_kib():
    data = telemetry_data({"cpuTemp": 40.0, **{f"sensor{i}": "x" * 100 for i in range(40)}})
    assert len(json.dumps(data, separators=(",", ":")).encode()) <= 2048
    assert data["status"] == "online" and data["cpuTemp"] == 40.0


@pytest.mark.parametrize("text", ["/status", f"@{THING} /status", "  /STATUS  "])
def test_status_commands_get_a_status_reply_in_the_room(rig, text):
    edge, transport, _ = rig
    transport.deliver(f"chat/pub/{ROOM}", _room_message("us-east-1:guest", text))
    _drain(edge)
    replies = transport.sent()[1:]  # after "online"
    assert len(replies) == 1
    reply = replies[0]
    assert reply["room"] == ROOM and reply["name"] == THING
    assert reply["body"].startswith(f"{THING}: up 2h 1m, load 0.50 0.25 0.10")
    assert "memory 792/3792 MiB used" in reply["body"] and "CPU 51.2 °C" in reply["body"]


def test_help_lists_the_commands(rig):
    edge, transport, _ = rig
    transport.deliver(f"chat/pub/{ROOM}", _room_message("us-east-1:guest", "/help"))
    _drain(edge)
    [reply] = transport.sent()[1:]
    assert "/status" in reply["body"] and "/help" in reply["body"]


def test_ignores_its_own_messages_other_devices_chat_and_replays(rig):
    edge, transport, _ = rig
    pub = f"chat/pub/{ROOM}"
    transport.deliver(pub, _room_message(THING, "/status", "own"))
    transport.deliver(pub, _room_message("us-east-1:guest", "@other-pi /status", "other"))
    transport.deliver(pub, _room_message("us-east-1:guest", "hello /status", "chat"))
    transport.deliver(pub, _room_message("us-east-1:guest", "/reboot", "unknown"))
    _drain(edge)
    assert transport.sent()[1:] == []


def test_old_commands_replayed_from_history_after_a_reconnect_are_not_answered(rig):
    edge, transport, _ = rig
    transport.callbacks.on_connected(True)  # a reconnect: the client fills the gap from history
    old = _room_message("u1", "/status", "while-away")
    transport.deliver(f"chat/in/{THING}", {"type": "history", "room": ROOM, "messages": [old]})
    _drain(edge)
    assert transport.sent(kind="history") == [{"v": 1, "type": "history", "room": ROOM}]
    online, *again = transport.sent()
    assert again == [online] * len(again)  # the outbox may resend "online" (never echoed here)


def test_an_addressed_unknown_command_gets_a_hint(rig):
    edge, transport, _ = rig
    transport.deliver(f"chat/pub/{ROOM}", _room_message("u1", f"@{THING} /reboot"))
    _drain(edge)
    [reply] = transport.sent()[1:]
    assert "unknown command /reboot" in reply["body"] and "/help" in reply["body"]


def test_a_direct_status_request_is_answered_directly(rig):
    edge, transport, _ = rig
    body = {"type": "message", "id": "d1", "recipient": THING, "body": "/status", "sender": "u1"}
    transport.deliver(f"chat/in/{THING}", {**body, "ts": 1})
    _drain(edge)
    [reply] = transport.sent(topic="chat/private")  # a device's certificate opens that door
    assert reply["recipient"] == "u1" and "room" not in reply
    assert reply["body"].startswith(f"{THING}: up")


def test_each_command_is_answered_once_even_if_redelivered(rig):
    edge, transport, _ = rig
    message = _room_message("u1", "/status", "same-id")
    transport.deliver(f"chat/pub/{ROOM}", message)
    transport.deliver(f"chat/pub/{ROOM}", message)  # QoS 1 redelivery
    _drain(edge)
    assert len(transport.sent()[1:]) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/status", ("status", False)),
        (f"@{THING} /help", ("help", True)),
        ("@someone-else /status", None),
        ("status", None),
        ("/", None),
        ("", None),
    ],
)
def test_parse_command(text, expected):
    command = parse_command(text, THING)
    assert (None if command is None else (command.name, command.addressed)) == expected


def test_interval_must_be_positive():
    stack, identity = greengrass_device(THING)
    chat = ChatClient(stack, identity, transport_factory=FakeTransport)
    with pytest.raises(ValueError):
        EdgeAgent(chat, THING, ROOM, 0)


# ---------------------------------------------------------------------------- readings


def _fake_host(root: Path, zones: dict[str, tuple[str, str]]) -> tuple[Path, Path]:
    proc, thermal = root / "proc", root / "thermal"
    proc.mkdir()
    (proc / "loadavg").write_text("0.52 0.40 0.31 1/123 4567\n")
    (proc / "uptime").write_text("90061.42 12345.00\n")
    (proc / "meminfo").write_text(
        "MemTotal:        3883008 kB\nMemFree:          100000 kB\nMemAvailable:    2990080 kB\n"
    )
    for name, (kind, millidegrees) in zones.items():
        zone = thermal / name
        zone.mkdir(parents=True)
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(millidegrees + "\n")
    return proc, thermal


def test_readings_from_proc_and_the_cpu_thermal_zone(tmp_path):
    proc, thermal = _fake_host(
        tmp_path, {"thermal_zone0": ("acpitz", "27800"), "thermal_zone1": ("cpu-thermal", "51234")}
    )
    data = read_metrics(proc, thermal)
    assert data == {
        "cpuTemp": 51.2,
        "load1": 0.52,
        "load5": 0.4,
        "load15": 0.31,
        "uptime": 90061,
        "memTotalMiB": 3792,
        "memAvailableMiB": 2920,
    }
    assert summary(data) == (
        "up 1d 1h 1m, load 0.52 0.40 0.31, memory 872/3792 MiB used, CPU 51.2 °C"
    )


def test_no_temperature_when_thermal_is_unreadable(tmp_path):
    proc, thermal = _fake_host(tmp_path, {})
    data = read_metrics(proc, thermal)
    assert "cpuTemp" not in data and data["uptime"] == 90061
    assert read_metrics(tmp_path / "none", tmp_path / "none") == {}
    assert summary({}) == "no readings available"


def test_this_machine_gives_a_valid_telemetry_object():
    data = telemetry_data(read_metrics())
    assert isinstance(data, dict) and data["status"] == "online"
    assert len(json.dumps(data).encode()) <= 2048
