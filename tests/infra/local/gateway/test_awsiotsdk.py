"""The AWS IoT Device SDK (awsiotsdk/awscrt) against the gateway, as a device or app would use it.

awscrt is the client real users have, and it differs from browsers and botocore in ways the
gateway must absorb: it signs ``connection;host``, sends ``Host`` without the port, appends
the session token after signing and puts ``?SDK=PythonV2&Version=...`` in the MQTT username.
Mutual TLS is checked with device certificates from the local CA (accepted, and refused at
CONNECT when no policy covers them) and from a foreign CA (refused during the handshake).
"""

from __future__ import annotations

import json
import queue
import ssl
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import awscrt.auth
import awscrt.exceptions
import awscrt.mqtt
import awscrt.mqtt5
import pytest
from awsiot import mqtt5_client_builder, mqtt_connection_builder
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from infra.local.ca import LocalCA
from infra.local.gateway import Credential, Principal
from infra.local.gateway.codec import CONNECT
from infra.local.sigv4 import presign_url
from tests.support.stack import GatewayHandle
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(60)

REGION = "us-east-1"
TIMEOUT = 10.0
SDK_USERNAME_PREFIX = "?SDK="  # e.g. ?SDK=IoTDeviceSDK/Python&Platform=...&Metadata=(...)


def admin_provider(secret: str = "test") -> awscrt.auth.AwsCredentialsProvider:
    return awscrt.auth.AwsCredentialsProvider.new_static("test", secret)


def lifecycle(gateway: GatewayHandle, event: str, client_id: str) -> list[dict[str, Any]]:
    """Bodies of the ``$aws/events/presence/<event>/<client_id>`` events seen so far."""
    topic = f"$aws/events/presence/{event}/{client_id}"
    return [json.loads(e.payload) for e in list(gateway.tapped) if e.topic == topic]


def spy_connect_usernames(gateway: GatewayHandle) -> dict[str, str | None]:
    """Record the username of every CONNECT the broker handles, keyed by client id."""
    seen: dict[str, str | None] = {}

    def install() -> None:
        broker = gateway.gateway.broker
        original = broker._handlers[CONNECT]

        def spy(conn: Any, packet: Any) -> None:
            seen[packet.client_id] = packet.username
            original(conn, packet)

        broker._handlers[CONNECT] = spy

    gateway.call(install)
    return seen


# ---------------------------------------------------------------------------- MQTT 3 helpers


@contextmanager
def mqtt3(connection: awscrt.mqtt.Connection) -> Iterator[awscrt.mqtt.Connection]:
    """Connect, hand the connection over, and always disconnect (no CRT work leaks)."""
    connection.connect().result(TIMEOUT)
    try:
        yield connection
    finally:
        connection.disconnect().result(TIMEOUT)


def connect_fails(connection: awscrt.mqtt.Connection) -> BaseException:
    """The connect future must fail; returns its exception, with the connection cleaned up."""
    future = connection.connect()
    try:
        error = future.exception(TIMEOUT)
    finally:
        if future.done() and future.exception() is None:  # pragma: no cover - test fails below
            connection.disconnect().result(TIMEOUT)
    assert error is not None, "connection unexpectedly succeeded"
    return error


def exchange_mqtt3(connection: awscrt.mqtt.Connection, topic: str) -> None:
    """Subscribe, publish QoS 1 then QoS 0 to the same topic, and receive both in order."""
    received: queue.Queue[tuple[str, bytes, int]] = queue.Queue()

    def on_message(topic: str, payload: bytes, qos: int, **_: Any) -> None:
        received.put((topic, payload, qos))

    subscribed, _ = connection.subscribe(topic, awscrt.mqtt.QoS.AT_LEAST_ONCE, on_message)
    assert subscribed.result(TIMEOUT)["qos"] == awscrt.mqtt.QoS.AT_LEAST_ONCE
    published, _ = connection.publish(topic, b"qos1", awscrt.mqtt.QoS.AT_LEAST_ONCE)
    published.result(TIMEOUT)  # completes on PUBACK
    published, _ = connection.publish(topic, b"qos0", awscrt.mqtt.QoS.AT_MOST_ONCE)
    published.result(TIMEOUT)
    got = [received.get(timeout=TIMEOUT) for _ in range(2)]
    assert got == [(topic, b"qos1", 1), (topic, b"qos0", 0)]


# ---------------------------------------------------------------------------- MQTT 5 helpers


class Mqtt5Events:
    """Lifecycle callbacks turned into futures and a queue, so tests wait with deadlines."""

    def __init__(self) -> None:
        self.connected: Future[awscrt.mqtt5.LifecycleConnectSuccessData] = Future()
        self.failed: Future[awscrt.mqtt5.LifecycleConnectFailureData] = Future()
        self.stopped = threading.Event()
        self.messages: queue.Queue[awscrt.mqtt5.PublishPacket] = queue.Queue()

    @staticmethod
    def _settle(future: Future[Any], value: Any) -> None:
        if not future.done():
            future.set_result(value)

    def kwargs(self) -> dict[str, Callable[[Any], None]]:
        return {
            "on_lifecycle_connection_success": lambda d: self._settle(self.connected, d),
            "on_lifecycle_connection_failure": lambda d: self._settle(self.failed, d),
            "on_lifecycle_stopped": lambda d: self.stopped.set(),
            "on_publish_received": lambda d: self.messages.put(d.publish_packet),
        }


@contextmanager
def running(client: awscrt.mqtt5.Client, events: Mqtt5Events) -> Iterator[awscrt.mqtt5.Client]:
    """Start the client and always stop it, waiting for the stopped lifecycle event."""
    client.start()
    try:
        yield client
    finally:
        client.stop()
        assert events.stopped.wait(TIMEOUT), "MQTT 5 client did not stop"


def exchange_mqtt5(client: awscrt.mqtt5.Client, events: Mqtt5Events, topic: str) -> None:
    qos1 = awscrt.mqtt5.QoS.AT_LEAST_ONCE
    suback = client.subscribe(
        awscrt.mqtt5.SubscribePacket(
            subscriptions=[awscrt.mqtt5.Subscription(topic_filter=topic, qos=qos1)]
        )
    ).result(TIMEOUT)
    assert suback.reason_codes == [awscrt.mqtt5.SubackReasonCode.GRANTED_QOS_1]
    done = client.publish(awscrt.mqtt5.PublishPacket(topic=topic, payload=b"qos1", qos=qos1))
    puback = done.result(TIMEOUT).puback
    assert puback is not None
    assert puback.reason_code == awscrt.mqtt5.PubackReasonCode.SUCCESS
    client.publish(
        awscrt.mqtt5.PublishPacket(topic=topic, payload=b"qos0", qos=awscrt.mqtt5.QoS.AT_MOST_ONCE)
    ).result(TIMEOUT)
    got = [events.messages.get(timeout=TIMEOUT) for _ in range(2)]
    assert [(p.topic, p.payload, p.qos) for p in got] == [
        (topic, b"qos1", awscrt.mqtt5.QoS.AT_LEAST_ONCE),
        (topic, b"qos0", awscrt.mqtt5.QoS.AT_MOST_ONCE),
    ]


def failure_of(events: Mqtt5Events) -> awscrt.mqtt5.LifecycleConnectFailureData:
    failure = events.failed.result(TIMEOUT)
    assert not events.connected.done(), "MQTT 5 client unexpectedly connected"
    return failure


# ---------------------------------------------------------------------------- WSS, SigV4


def _wss_signing(
    gateway: GatewayHandle,
    client_id: str,
    provider: awscrt.auth.AwsCredentialsProvider,
    endpoint: str,
) -> dict[str, Any]:
    """What both SDK builders need for a SigV4-signed WebSocket to the gateway."""
    return {
        "region": REGION,
        "credentials_provider": provider,
        "endpoint": endpoint,
        "port": gateway.wss_port,
        "ca_filepath": gateway.ca_file,
        "client_id": client_id,
    }


def wss_mqtt3(
    gateway: GatewayHandle,
    client_id: str,
    provider: awscrt.auth.AwsCredentialsProvider,
    endpoint: str = "127.0.0.1",
) -> awscrt.mqtt.Connection:
    return mqtt_connection_builder.websockets_with_default_aws_signing(
        **_wss_signing(gateway, client_id, provider, endpoint),
        clean_session=True,
        keep_alive_secs=30,
    )


def wss_mqtt5(
    gateway: GatewayHandle,
    client_id: str,
    provider: awscrt.auth.AwsCredentialsProvider,
    events: Mqtt5Events,
    endpoint: str = "127.0.0.1",
) -> awscrt.mqtt5.Client:
    return mqtt5_client_builder.websockets_with_default_aws_signing(
        **_wss_signing(gateway, client_id, provider, endpoint),
        min_reconnect_delay_ms=5000,  # one attempt in the failure tests, not a storm
        **events.kwargs(),
    )


@pytest.mark.parametrize("endpoint", ["127.0.0.1", "localhost"])
def test_mqtt3_over_wss_signed_by_admin_exchanges_messages(
    gateway: GatewayHandle, endpoint: str
) -> None:
    usernames = spy_connect_usernames(gateway)
    client_id = f"sdk3-wss-{endpoint}"
    with mqtt3(wss_mqtt3(gateway, client_id, admin_provider(), endpoint)) as connection:
        exchange_mqtt3(connection, "sdk/wss/mqtt3")
    # The SDK's metrics username reached the broker and did not stand in the way.
    assert (usernames[client_id] or "").startswith(SDK_USERNAME_PREFIX)
    (event,) = lifecycle(gateway, "connected", client_id)
    assert event["principalIdentifier"] == "test"
    wait_for(lambda: lifecycle(gateway, "disconnected", client_id))
    (gone,) = lifecycle(gateway, "disconnected", client_id)
    assert gone["disconnectReason"] == "CLIENT_INITIATED_DISCONNECT"


def test_mqtt3_over_wss_with_session_token_credentials(gateway: GatewayHandle) -> None:
    """Temporary credentials (as Cognito hands out) sign with a token appended after signing."""
    key, secret, token = "ASIATEMPORARYKEY", "temporary/secret+value", "FwoGZXIvYXdz+tok/en=="
    principal = Principal("iam", "AROATEMPORARY:session")
    gateway.credentials.add(Credential(key, secret, principal, session_token=token))
    gateway.authorizer.trusted.add(principal.identifier)
    provider = awscrt.auth.AwsCredentialsProvider.new_static(key, secret, token)
    with mqtt3(wss_mqtt3(gateway, "sdk3-token", provider)) as connection:
        exchange_mqtt3(connection, "sdk/wss/token")
    (event,) = lifecycle(gateway, "connected", "sdk3-token")
    assert event["principalIdentifier"] == principal.identifier

    # The same keys without the token are not the same credential.
    error = connect_fails(
        wss_mqtt3(
            gateway, "sdk3-no-token", awscrt.auth.AwsCredentialsProvider.new_static(key, secret)
        )
    )
    assert "WEBSOCKET_UPGRADE" in str(error)
    assert not lifecycle(gateway, "connected", "sdk3-no-token")


def test_mqtt5_over_wss_signed_by_admin_exchanges_messages(gateway: GatewayHandle) -> None:
    usernames = spy_connect_usernames(gateway)
    events = Mqtt5Events()
    client = wss_mqtt5(gateway, "sdk5-wss", admin_provider(), events, endpoint="localhost")
    with running(client, events):
        success = events.connected.result(TIMEOUT)
        assert success.connack_packet.reason_code == awscrt.mqtt5.ConnectReasonCode.SUCCESS
        exchange_mqtt5(client, events, "sdk/wss/mqtt5")
    assert (usernames["sdk5-wss"] or "").startswith(SDK_USERNAME_PREFIX)
    (event,) = lifecycle(gateway, "connected", "sdk5-wss")
    assert event["principalIdentifier"] == "test"
    wait_for(lambda: lifecycle(gateway, "disconnected", "sdk5-wss"))


def test_mqtt3_over_wss_with_wrong_secret_is_refused(gateway: GatewayHandle) -> None:
    error = connect_fails(wss_mqtt3(gateway, "sdk3-bad-sig", admin_provider("not-the-secret")))
    assert isinstance(error, awscrt.exceptions.AwsCrtError)
    assert "WEBSOCKET_UPGRADE" in error.name
    assert not lifecycle(gateway, "connected", "sdk3-bad-sig")


def test_mqtt5_over_wss_with_wrong_secret_is_refused(gateway: GatewayHandle) -> None:
    events = Mqtt5Events()
    client = wss_mqtt5(gateway, "sdk5-bad-sig", admin_provider("not-the-secret"), events)
    with running(client, events):
        failure = failure_of(events)
    assert failure.connack_packet is None  # refused before any MQTT was spoken
    assert isinstance(failure.exception, awscrt.exceptions.AwsCrtError)
    assert "WEBSOCKET_UPGRADE" in failure.exception.name
    assert not lifecycle(gateway, "connected", "sdk5-bad-sig")


# ---------------------------------------------------------------------------- raw handshake


def client_tls(gateway: GatewayHandle) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=gateway.ca_file)


def handshake_status(gateway: GatewayHandle, url: str) -> int:
    """Status of a WebSocket upgrade to ``url`` that the gateway is expected to refuse."""
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(url, ssl=client_tls(gateway), subprotocols=["mqtt"], open_timeout=TIMEOUT)
    return refused.value.response.status_code


def signed_url(gateway: GatewayHandle) -> str:
    # websockets sends ``Host: 127.0.0.1:<port>``; sign exactly that.
    return presign_url(f"127.0.0.1:{gateway.wss_port}", "test", "test", region=REGION)


def test_handshake_signed_with_presign_url_upgrades_to_mqtt(gateway: GatewayHandle) -> None:
    with ws_connect(
        signed_url(gateway), ssl=client_tls(gateway), subprotocols=["mqtt"], open_timeout=TIMEOUT
    ) as ws:
        assert ws.response.status_code == 101
        assert ws.subprotocol == "mqtt"
        # And MQTT flows over it: a 3.1.1 CONNECT (client id "raw") gets CONNACK accepted.
        ws.send(b"\x10\x0f\x00\x04MQTT\x04\x02\x00\x3c\x00\x03raw")
        assert ws.recv(timeout=TIMEOUT) == b"\x20\x02\x00\x00"


def test_handshake_with_tampered_signature_gets_403(gateway: GatewayHandle) -> None:
    url = urlsplit(signed_url(gateway))
    params = parse_qsl(url.query)
    tampered = [
        (k, (v[:-1] + ("0" if v[-1] != "0" else "1")) if k == "X-Amz-Signature" else v)
        for k, v in params
    ]
    assert tampered != params
    assert handshake_status(gateway, url._replace(query=urlencode(tampered)).geturl()) == 403


def test_unsigned_handshake_gets_403(gateway: GatewayHandle) -> None:
    assert handshake_status(gateway, f"wss://127.0.0.1:{gateway.wss_port}/mqtt") == 403


# ---------------------------------------------------------------------------- mutual TLS


def _mtls(
    gateway: GatewayHandle, cert_path: Path, key_path: Path, client_id: str
) -> dict[str, Any]:
    """What both SDK builders need for a mutual-TLS connection to the gateway."""
    return {
        "endpoint": "127.0.0.1",
        "port": gateway.mqtts_port,
        "cert_filepath": str(cert_path),
        "pri_key_filepath": str(key_path),
        "ca_filepath": gateway.ca_file,
        "client_id": client_id,
    }


def mtls_mqtt3(
    gateway: GatewayHandle, cert_path: Path, key_path: Path, client_id: str
) -> awscrt.mqtt.Connection:
    return mqtt_connection_builder.mtls_from_path(
        **_mtls(gateway, cert_path, key_path, client_id), clean_session=True, keep_alive_secs=30
    )


def mtls_mqtt5(
    gateway: GatewayHandle, cert_path: Path, key_path: Path, client_id: str, events: Mqtt5Events
) -> awscrt.mqtt5.Client:
    return mqtt5_client_builder.mtls_from_path(
        **_mtls(gateway, cert_path, key_path, client_id),
        min_reconnect_delay_ms=5000,
        **events.kwargs(),
    )


def test_mqtt3_mtls_with_local_ca_certificate(gateway: GatewayHandle, tmp_path: Path) -> None:
    cert = gateway.ca.issue_client_certificate("device-1", tmp_path)
    gateway.registry.register_certificate(cert.certificate_pem)
    gateway.authorizer.trusted.add(cert.certificate_id)  # stands in for a policy attachment
    with mqtt3(mtls_mqtt3(gateway, cert.cert_path, cert.key_path, "device-1")) as connection:
        exchange_mqtt3(connection, "sdk/mtls/device-1")
    (event,) = lifecycle(gateway, "connected", "device-1")
    assert event["principalIdentifier"] == cert.certificate_id


def test_mqtt5_mtls_with_local_ca_certificate(gateway: GatewayHandle, tmp_path: Path) -> None:
    cert = gateway.ca.issue_client_certificate("device-2", tmp_path)
    gateway.registry.register_certificate(cert.certificate_pem)
    gateway.authorizer.trusted.add(cert.certificate_id)
    events = Mqtt5Events()
    client = mtls_mqtt5(gateway, cert.cert_path, cert.key_path, "device-2", events)
    with running(client, events):
        events.connected.result(TIMEOUT)
        exchange_mqtt5(client, events, "sdk/mtls/device-2")
    (event,) = lifecycle(gateway, "connected", "device-2")
    assert event["principalIdentifier"] == cert.certificate_id


def test_mqtt3_mtls_certificate_from_another_ca_is_refused(
    gateway: GatewayHandle, tmp_path: Path
) -> None:
    foreign = LocalCA.load_or_create(tmp_path / "other-ca").issue_client_certificate(
        "intruder", tmp_path / "certs"
    )
    gateway.authorizer.trusted.add(foreign.certificate_id)  # even "trusted", its CA is not
    error = connect_fails(mtls_mqtt3(gateway, foreign.cert_path, foreign.key_path, "intruder"))
    assert isinstance(error, awscrt.exceptions.AwsCrtError)
    # No MQTT was spoken: no lifecycle event of any kind for this client.
    assert not [e for e in gateway.tapped if e.topic.endswith("/intruder")]


def test_mqtt5_mtls_certificate_from_another_ca_is_refused(
    gateway: GatewayHandle, tmp_path: Path
) -> None:
    foreign = LocalCA.load_or_create(tmp_path / "other-ca").issue_client_certificate(
        "intruder5", tmp_path / "certs"
    )
    gateway.authorizer.trusted.add(foreign.certificate_id)
    events = Mqtt5Events()
    client = mtls_mqtt5(gateway, foreign.cert_path, foreign.key_path, "intruder5", events)
    with running(client, events):
        failure = failure_of(events)
    assert failure.connack_packet is None
    assert not [e for e in gateway.tapped if e.topic.endswith("/intruder5")]


def test_mqtt3_mtls_untrusted_certificate_cannot_connect(
    gateway: GatewayHandle, tmp_path: Path
) -> None:
    """TLS succeeds (the CA is right) but no policy allows iot:Connect: AWS just closes 3.1.1."""
    cert = gateway.ca.issue_client_certificate("orphan", tmp_path)
    gateway.registry.register_certificate(cert.certificate_pem)
    error = connect_fails(mtls_mqtt3(gateway, cert.cert_path, cert.key_path, "orphan"))
    assert isinstance(error, awscrt.exceptions.AwsCrtError)
    assert error.name == "AWS_ERROR_MQTT_UNEXPECTED_HANGUP"  # closed without a CONNACK
    (failed,) = wait_for(lambda: lifecycle(gateway, "connect_failed", "orphan"))
    assert failed["principalIdentifier"] == cert.certificate_id
    assert failed["connectFailureReason"] == "AUTHORIZATION_FAILED"
    assert not lifecycle(gateway, "connected", "orphan")


def test_mqtt5_mtls_untrusted_certificate_gets_not_authorized(
    gateway: GatewayHandle, tmp_path: Path
) -> None:
    cert = gateway.ca.issue_client_certificate("orphan5", tmp_path)
    gateway.registry.register_certificate(cert.certificate_pem)
    events = Mqtt5Events()
    client = mtls_mqtt5(gateway, cert.cert_path, cert.key_path, "orphan5", events)
    with running(client, events):
        failure = failure_of(events)
    assert failure.connack_packet is not None
    assert failure.connack_packet.reason_code == awscrt.mqtt5.ConnectReasonCode.NOT_AUTHORIZED
    failed = wait_for(lambda: lifecycle(gateway, "connect_failed", "orphan5"))
    assert failed[0]["principalIdentifier"] == cert.certificate_id
    assert not lifecycle(gateway, "connected", "orphan5")
