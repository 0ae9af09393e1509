"""Greengrass mode without a nucleus: the IPC transport against a stand-in IPC client."""

from __future__ import annotations

import json
import os
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from awsiot.greengrasscoreipc.model import QOS, IoTCoreMessage, MQTTMessage

from client import events
from client.chat_client import ChatClient
from client.edge import ipc
from client.edge.device import greengrass_device
from client.edge.ipc import IpcTransport
from client.transport import TransportCallbacks
from tests.client.edge.helpers import run_python

THING = "gg-core-1"
ROOT = Path(__file__).resolve().parents[3]


class FakeIpc:
    """What GreengrassCoreIPCClientV2 offers, recording calls; ``deliver`` plays the nucleus."""

    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []
        self.handlers: dict[str, Any] = {}
        self.closed = False

    def subscribe_to_iot_core_async(self, *, topic_name, qos, on_stream_event, on_stream_error):
        assert qos == QOS.AT_LEAST_ONCE
        self.handlers[topic_name] = on_stream_event
        done: Future[None] = Future()
        done.set_result(None)
        return done, _Operation()

    def publish_to_iot_core_async(self, *, topic_name, qos, payload):
        self.published.append({"topic": topic_name, "qos": qos, "body": json.loads(payload)})
        done: Future[None] = Future()
        done.set_result(None)
        return done

    def close(self) -> None:
        self.closed = True

    def deliver(self, topic: str, body: dict[str, Any]) -> None:
        message = MQTTMessage(topic_name=topic, payload=json.dumps(body).encode())
        self.handlers[topic](IoTCoreMessage(message=message))


class _Operation:
    def close(self) -> None:
        pass


def test_the_chat_client_works_through_the_nucleus():
    fake = FakeIpc()

    class StandInTransport(IpcTransport):
        """The IPC transport on the FakeIpc instead of the nucleus's socket."""

        def connect_nucleus(self) -> Any:
            return fake

    stack, identity = greengrass_device(THING)
    chat = ChatClient(stack, identity, transport_factory=StandInTransport).start(timeout=1)
    assert list(fake.handlers) == [f"chat/in/{THING}"]  # the inbox, on connect
    chat.join("lab")
    chat.telemetry("lab", {"uptime": 5})
    assert "chat/pub/lab" in fake.handlers
    assert [(p["topic"], p["body"]["type"]) for p in fake.published] == [
        ("chat/out", "hello"),  # who this session is (docs/protocol.md, Names and handles)
        ("chat/out", "join"),
        ("chat/stream", "telemetry"),
    ]
    assert all(p["qos"] == QOS.AT_LEAST_ONCE for p in fake.published)
    fake.deliver(
        "chat/pub/lab",
        {"v": 1, "type": "message", "id": "a", "room": "lab", "body": "hi", "sender": "u", "ts": 1},
    )
    message = chat.wait_for(lambda e: isinstance(e, events.Message), timeout=1)
    assert isinstance(message, events.Message) and message.text == "hi"
    chat.stop()
    assert fake.closed


class NoNucleusTransport(IpcTransport):
    def connect_nucleus(self) -> Any:
        raise ConnectionRefusedError("no socket")


def test_no_nucleus_is_a_disconnect_not_a_crash():
    failures: list[str] = []
    stack, identity = greengrass_device(THING)
    callbacks = TransportCallbacks(lambda *_: None, lambda _: None, failures.append)
    transport = NoNucleusTransport(stack, identity, THING, callbacks)
    with pytest.raises(ConnectionError):
        transport.start()
    assert failures and "Greengrass nucleus" in failures[0]


def test_under_greengrass_without_a_nucleus_the_component_exits_1(tmp_path):
    """The nucleus restarts a component that exits with an error; a hang would never end."""
    env = {
        **os.environ,
        ipc.SOCKET_ENV: str(tmp_path / "no-such.socket"),
        "SVCUID": "0123456789",
        ipc.THING_NAME_ENV: THING,
    }
    result = run_python(["-m", "client.edge", "--room", "lab"], cwd=ROOT, env=env, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "cannot reach the Greengrass nucleus" in result.stderr


def test_greengrass_mode_is_chosen_by_the_nucleus_socket_variable(monkeypatch):
    monkeypatch.delenv(ipc.SOCKET_ENV, raising=False)
    assert not ipc.under_greengrass()
    monkeypatch.setenv(ipc.SOCKET_ENV, "/greengrass/v2/ipc.socket")
    assert ipc.under_greengrass()
