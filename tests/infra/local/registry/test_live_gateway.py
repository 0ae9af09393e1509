"""The registry on a live gateway: certificates the registry does not hold as ACTIVE are refused.

A real gateway whose only source of certificate principals is the registry, and real
awsiotsdk devices connecting over mutual TLS on loopback.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awscrt.exceptions
import awscrt.mqtt
import pytest
from awsiot import mqtt_connection_builder

from infra.local.ca import LocalCA, certificate_id
from infra.local.gateway import (
    AdminOnlyAuthorizer,
    Gateway,
    GatewayConfig,
    Principal,
    PublishEvent,
    StaticCredentialStore,
)
from infra.local.registry import (
    THING_NAME_VARIABLE,
    DeviceFiles,
    Registry,
    RegistryChange,
    RegistryCredentialStore,
    create_device,
    revoke_device,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(60)

TIMEOUT = 10.0


class RegistryGateway(Gateway):
    """A gateway whose certificate principals come from the credential store alone (the
    refusal the lead wires into Gateway itself)."""

    def certificate_principal(self, transport: asyncio.Transport) -> Principal | None:
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        return self.credentials.lookup_certificate(certificate_id(der)) if der else None


@dataclass
class ThingBoundAuthorizer(AdminOnlyAuthorizer):
    """Stands in for the device policy ``client/${iot:Connection.Thing.ThingName}``."""

    registry: Registry | None = None

    def _allowed(self, principal: Principal) -> bool:
        # Any principal the registry vouched for may publish, subscribe and receive here.
        return principal.kind == "certificate" or super()._allowed(principal)

    def can_connect(self, principal: Principal, client_id: str, source_ip: str) -> bool:
        if principal.kind != "certificate" or self.registry is None:
            return super().can_connect(principal, client_id, source_ip)
        attrs = self.registry.connection_attributes(principal.identifier, client_id)
        return attrs.get(THING_NAME_VARIABLE) == client_id


@dataclass
class LiveGateway:
    gateway: Gateway
    store: RegistryCredentialStore
    registry: Registry
    ca: LocalCA
    tapped: list[PublishEvent] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.gateway.ports["mqtts"]

    def lifecycle(self, event: str, client_id: str) -> list[dict[str, Any]]:
        topic = f"$aws/events/presence/{event}/{client_id}"
        return [json.loads(e.payload) for e in list(self.tapped) if e.topic == topic]


@pytest.fixture
def live(local_ca: LocalCA, state_dir: Path) -> Iterator[LiveGateway]:
    registry = Registry.open(state_dir)
    store = RegistryCredentialStore(StaticCredentialStore(), registry)
    config = GatewayConfig(
        mqtt_port=None,
        mqtts_port=0,
        wss_port=None,
        mtls_context=local_ca.server_ssl_context(require_client_cert=True),
    )
    gateway = RegistryGateway(
        config, credentials=store, authorizer=ThingBoundAuthorizer(registry=registry)
    )
    ready: Future[LiveGateway] = Future()
    stop = threading.Event()

    async def main() -> None:
        try:
            await gateway.start()
        except BaseException as exc:  # pragma: no cover - surfaces in the test
            ready.set_exception(exc)
            return
        handle = LiveGateway(gateway, store, registry, local_ca)
        gateway.add_tap(handle.tapped.append)
        ready.set_result(handle)
        while not stop.is_set():
            await asyncio.sleep(0.02)
        await gateway.stop()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    try:
        yield ready.result(TIMEOUT)
    finally:
        stop.set()
        thread.join(TIMEOUT)


def device_connection(
    live: LiveGateway, cert: Path, key: Path, client_id: str
) -> awscrt.mqtt.Connection:
    return mqtt_connection_builder.mtls_from_path(
        endpoint="127.0.0.1",
        port=live.port,
        cert_filepath=str(cert),
        pri_key_filepath=str(key),
        ca_filepath=str(live.ca.ca_path),
        client_id=client_id,
        clean_session=True,
        keep_alive_secs=30,
    )


def connects_and_echoes(connection: awscrt.mqtt.Connection, topic: str) -> None:
    """Connect, subscribe, publish QoS 1 and receive it back, then disconnect."""
    connection.connect().result(TIMEOUT)
    try:
        received: queue.Queue[bytes] = queue.Queue()
        subscribed, _ = connection.subscribe(
            topic, awscrt.mqtt.QoS.AT_LEAST_ONCE, lambda topic, payload, **_: received.put(payload)
        )
        subscribed.result(TIMEOUT)
        published, _ = connection.publish(topic, b"hello", awscrt.mqtt.QoS.AT_LEAST_ONCE)
        published.result(TIMEOUT)
        assert received.get(timeout=TIMEOUT) == b"hello"
    finally:
        connection.disconnect().result(TIMEOUT)


def refused(connection: awscrt.mqtt.Connection) -> BaseException:
    future = connection.connect()
    error = future.exception(TIMEOUT)
    if error is None:  # pragma: no cover - the assertion below fails the test
        connection.disconnect().result(TIMEOUT)
    assert error is not None, "connection unexpectedly accepted"
    assert isinstance(error, awscrt.exceptions.AwsCrtError)
    return error


def make_device(live: LiveGateway, tmp_path: Path, name: str) -> DeviceFiles:
    return create_device(live.registry, live.ca, name, tmp_path / "devices" / name)


def test_live_registered_device_connects_and_chats(live: LiveGateway, tmp_path: Path) -> None:
    device = make_device(live, tmp_path, "dev-ok")
    principal = live.store.lookup_certificate(device.certificate_id)
    assert principal is not None and principal.identifier == device.certificate_id
    connects_and_echoes(
        device_connection(live, device.cert_path, device.key_path, "dev-ok"), "devices/dev-ok"
    )
    (event,) = live.lifecycle("connected", "dev-ok")
    assert event["principalIdentifier"] == device.certificate_id


def test_live_unregistered_certificate_from_local_ca_is_refused(
    live: LiveGateway, tmp_path: Path
) -> None:
    stray = live.ca.issue_client_certificate("stray", tmp_path / "stray")
    live.gateway.authorizer.trusted.add(stray.certificate_id)  # type: ignore[attr-defined]
    assert live.store.lookup_certificate(stray.certificate_id) is None
    refused(device_connection(live, stray.cert_path, stray.key_path, "stray"))
    assert not live.lifecycle("connected", "stray")
    assert not live.lifecycle("connect_failed", "stray")  # refused before any MQTT
    # The same CA's registered device, next to it, is accepted.
    device = make_device(live, tmp_path, "stray-ok")
    connects_and_echoes(
        device_connection(live, device.cert_path, device.key_path, "stray-ok"), "devices/s"
    )


def test_live_revoked_device_is_refused_after_cli_revocation(
    live: LiveGateway, tmp_path: Path, state_dir: Path
) -> None:
    device = make_device(live, tmp_path, "dev-rev")
    connects_and_echoes(
        device_connection(live, device.cert_path, device.key_path, "dev-rev"), "devices/r"
    )
    deactivated: list[RegistryChange] = []
    live.registry.on_change.append(deactivated.append)
    revoke_device(Registry.open(state_dir), "dev-rev")  # as `iotchat device revoke` would
    assert live.store.lookup_certificate(device.certificate_id) is None
    assert deactivated[-1].deactivated == (device.certificate_id,)
    refused(device_connection(live, device.cert_path, device.key_path, "dev-rev"))
    assert len(live.lifecycle("connected", "dev-rev")) == 1  # only the one before revoking
    assert not live.lifecycle("connect_failed", "dev-rev")  # refused before any MQTT


def test_live_inactive_certificate_is_refused_until_reactivated(
    live: LiveGateway, tmp_path: Path
) -> None:
    device = make_device(live, tmp_path, "dev-off")
    live.registry.update_certificate(device.certificate_id, "INACTIVE")
    refused(device_connection(live, device.cert_path, device.key_path, "dev-off"))
    assert not live.lifecycle("connect_failed", "dev-off")  # refused before any MQTT
    live.registry.update_certificate(device.certificate_id, "ACTIVE")
    connects_and_echoes(
        device_connection(live, device.cert_path, device.key_path, "dev-off"), "devices/o"
    )


def test_live_device_a_certificate_with_device_b_client_id_is_refused(
    live: LiveGateway, tmp_path: Path
) -> None:
    a = make_device(live, tmp_path, "dev-a")
    make_device(live, tmp_path, "dev-b")
    assert THING_NAME_VARIABLE not in live.registry.connection_attributes(a.certificate_id, "dev-b")
    refused(device_connection(live, a.cert_path, a.key_path, "dev-b"))
    (failed,) = wait_for(lambda: live.lifecycle("connect_failed", "dev-b"))
    assert failed["principalIdentifier"] == a.certificate_id
    assert not live.lifecycle("connected", "dev-b")
    # A's certificate with A's own client id is fine.
    connects_and_echoes(device_connection(live, a.cert_path, a.key_path, "dev-a"), "devices/a")


def test_live_foreign_ca_certificate_is_refused_even_if_registered(
    live: LiveGateway, tmp_path: Path
) -> None:
    foreign = LocalCA.load_or_create(tmp_path / "other-ca").issue_client_certificate(
        "intruder", tmp_path / "intruder"
    )
    live.registry.register_certificate(foreign.certificate_pem)
    live.registry.create_thing("intruder")
    live.registry.attach_thing_principal(
        "intruder", live.registry.certificate_arn(foreign.certificate_id)
    )
    refused(device_connection(live, foreign.cert_path, foreign.key_path, "intruder"))
    assert not live.lifecycle("connected", "intruder")
    assert not live.lifecycle("connect_failed", "intruder")  # refused in the TLS handshake
