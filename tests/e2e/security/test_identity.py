"""Issue 4's end-to-end: people and a device chat through the local stack's access control.

A guest and a signed-in user get credentials from the local Cognito with boto3, connect with
awsiotsdk over SigV4 WebSocket, and a device connects over mutual TLS with a certificate from
`create_device`; all three talk in a room through the republish rule, each allowed exactly what
the policy files allow.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import awscrt.auth
import awscrt.mqtt
import pytest
from awsiot import mqtt_connection_builder

from infra.local.registry import create_device, revoke_device
from tests.support.cognito import guest_credentials, signed_in_credentials, wss_connection
from tests.support.stack import InProcessStack, run_stack_in_thread, stack_options
from tests.support.stack_files import republish, write_rules
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(90)
TIMEOUT = 10.0
ROOM_RULE = {
    "sql": "SELECT *, clientid() AS sender FROM 'chat/out' WHERE type = 'message'",
    "awsIotSqlVersion": "2016-03-23",
    "actions": [republish("chat/pub/${room}")],
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessStack]:
    root = tmp_path_factory.mktemp("identity-e2e")
    rules_dir = write_rules(root, {"RoomRepublish": ROOM_RULE})
    with run_stack_in_thread(stack_options(root / "state", rules_dir=rules_dir)) as s:
        yield s


class Chatter:
    """An awsiotsdk MQTT 3 connection that records what it receives."""

    def __init__(self, connection: awscrt.mqtt.Connection, client_id: str) -> None:
        self.connection = connection
        self.client_id = client_id
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def _on_message(self, topic: str, payload: bytes, **_: Any) -> None:
        with self.lock:
            self.received.append(json.loads(payload))

    def subscribe(self, topic: str) -> Any:
        future, _ = self.connection.subscribe(
            topic, awscrt.mqtt.QoS.AT_LEAST_ONCE, self._on_message
        )
        return future.result(TIMEOUT)["qos"]

    def say(self, room: str, text: str) -> None:
        body = json.dumps(
            {"type": "message", "id": f"{self.client_id}-{text}", "room": room, "body": text}
        )
        future, _ = self.connection.publish("chat/out", body, awscrt.mqtt.QoS.AT_LEAST_ONCE)
        future.result(TIMEOUT)

    def texts(self) -> list[tuple[str, str]]:
        with self.lock:
            return [(m["sender"], m["body"]) for m in self.received]


def _wss(stack: InProcessStack, identity_id: str, creds: dict[str, Any]) -> Chatter:
    connection = wss_connection(stack, identity_id, creds, endpoint="localhost")
    connection.connect().result(TIMEOUT)
    return Chatter(connection, identity_id)


def _mtls(stack: InProcessStack, cert: Path, key: Path, client_id: str) -> Any:
    """An awsiotsdk MQTT 3 connection over mutual TLS (not yet connected)."""
    return mqtt_connection_builder.mtls_from_path(
        endpoint="localhost",
        port=stack.info["iot"]["mqttsPort"],
        cert_filepath=str(cert),
        pri_key_filepath=str(key),
        ca_filepath=stack.info["iot"]["caFile"],
        client_id=client_id,
        clean_session=True,
    )


def _device(stack: InProcessStack, directory: Path, name: str, client_id: str) -> Chatter:
    files = create_device(stack.stack.registry, stack.ca, name, directory)
    connection = _mtls(stack, files.cert_path, files.key_path, client_id)
    connection.connect().result(TIMEOUT)
    return Chatter(connection, client_id)


def test_guest_signed_in_user_and_device_chat_in_a_room(
    stack: InProcessStack,
    tmp_path: Path,
) -> None:
    guest = _wss(stack, *guest_credentials(stack))
    user = _wss(stack, *signed_in_credentials(stack))
    device = _device(stack, tmp_path / "pi", "kitchen-pi", "kitchen-pi")
    people = (guest, user, device)
    try:
        for chatter in people:
            assert chatter.subscribe("chat/pub/lobby") == awscrt.mqtt.QoS.AT_LEAST_ONCE
            assert chatter.subscribe(f"chat/in/{chatter.client_id}") is not None
        guest.say("lobby", "hello from a guest")
        user.say("lobby", "hello from a member")
        device.say("lobby", "hello from the kitchen")
        expected = {
            (guest.client_id, "hello from a guest"),
            (user.client_id, "hello from a member"),
            (device.client_id, "hello from the kitchen"),
        }
        for chatter in people:

            def sees_everything(c: Chatter = chatter) -> bool:
                return set(c.texts()) == expected

            wait_for(sees_everything, TIMEOUT)
    finally:
        for chatter in people:
            chatter.connection.disconnect().result(TIMEOUT)


def test_device_certificate_with_another_things_client_id_is_refused(
    stack: InProcessStack,
    tmp_path: Path,
) -> None:
    _device(stack, tmp_path / "a", "device-a", "device-a").connection.disconnect().result(TIMEOUT)
    create_device(stack.stack.registry, stack.ca, "device-b", tmp_path / "b")
    with pytest.raises(Exception):  # noqa: B017 - awscrt raises its own error types
        _device(stack, tmp_path / "a2", "device-a2", "device-b")


def test_revoked_device_is_refused(stack: InProcessStack, tmp_path: Path) -> None:
    device = _device(stack, tmp_path / "r", "doomed", "doomed")
    device.connection.disconnect().result(TIMEOUT)
    revoke_device(stack.stack.registry, "doomed")
    files_dir = tmp_path / "r"
    connection = _mtls(stack, files_dir / "device.pem.crt", files_dir / "private.pem.key", "doomed")
    future: Future[Any] = connection.connect()
    with pytest.raises(Exception):  # noqa: B017
        future.result(TIMEOUT)
