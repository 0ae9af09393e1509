"""The local IoT registry: what it stores, that it survives restarts and other processes, and
that the gateway refuses certificates the registry does not hold as ACTIVE.

The live tests run a real gateway whose only source of certificate principals is the
registry, and connect real awsiotsdk devices over mutual TLS on loopback.
"""

from __future__ import annotations

import asyncio
import json
import queue
import stat
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
    CERTIFICATE_ID_VARIABLE,
    THING_ATTACHED_VARIABLE,
    THING_NAME_VARIABLE,
    CertificateState,
    DeviceFiles,
    InvalidRequest,
    LimitExceeded,
    Registry,
    RegistryChange,
    RegistryCredentialStore,
    ResourceAlreadyExists,
    ResourceNotFound,
    create_device,
    revoke_device,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(60)

TIMEOUT = 10.0
IDENTITY = "us-east-1:6b4c3f0e-1d2a-4c5b-9e8f-0a1b2c3d4e5f"


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def registry(state_dir: Path) -> Registry:
    return Registry.open(state_dir)


def issue(ca: LocalCA, tmp_path: Path, name: str) -> Any:
    return ca.issue_client_certificate(name, tmp_path / "issued" / name)


# ---------------------------------------------------------------------------- certificates


def test_registered_certificate_has_aws_id_and_arn(
    registry: Registry, local_ca: LocalCA, tmp_path: Path
) -> None:
    issued = issue(local_ca, tmp_path, "sensor")
    record = registry.register_certificate(issued.certificate_pem)
    assert record.certificate_id == issued.certificate_id
    assert (
        len(record.certificate_id) == 64 and record.certificate_id == record.certificate_id.lower()
    )
    assert (
        record.certificate_arn == f"arn:aws:iot:us-east-1:000000000000:cert/{record.certificate_id}"
    )
    assert record.status == "ACTIVE"
    with pytest.raises(ResourceAlreadyExists):
        registry.register_certificate(issued.certificate_pem)


def test_region_and_account_shape_arns(state_dir: Path, local_ca: LocalCA, tmp_path: Path) -> None:
    registry = Registry.open(state_dir, region="eu-west-1", account_id="123456789012")
    record = registry.register_certificate(issue(local_ca, tmp_path, "x").certificate_pem)
    assert record.certificate_arn.startswith("arn:aws:iot:eu-west-1:123456789012:cert/")
    assert registry.create_thing("x").thing_arn == "arn:aws:iot:eu-west-1:123456789012:thing/x"


def test_not_a_certificate_is_an_invalid_request(registry: Registry) -> None:
    with pytest.raises(InvalidRequest):
        registry.register_certificate(
            "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"
        )
    assert registry.list_certificates() == []


def test_principal_only_while_active(registry: Registry, local_ca: LocalCA, tmp_path: Path) -> None:
    issued = issue(local_ca, tmp_path, "lamp")
    cert_id = issued.certificate_id
    assert registry.certificate_principal(cert_id) is None  # signed by our CA, not registered
    registry.register_certificate(issued.certificate_pem, status="INACTIVE")
    assert registry.certificate_principal(cert_id) is None
    registry.update_certificate(cert_id, "ACTIVE")
    principal = registry.certificate_principal(cert_id)
    assert principal is not None and principal.kind == "certificate"
    assert principal.identifier == cert_id
    assert principal.attribute(CERTIFICATE_ID_VARIABLE) == cert_id
    assert principal.attribute("iot:Certificate.Subject.CommonName") == "lamp"
    assert principal.attribute("iot:Certificate.Issuer.CommonName") == "iotchat local CA"
    assert principal.attribute("iot:Certificate.Issuer.Organization") == "iotchat"
    registry.update_certificate(cert_id, "INACTIVE")
    assert registry.certificate_principal(cert_id) is None
    registry.update_certificate(cert_id, "ACTIVE")
    registry.update_certificate(cert_id, "REVOKED")
    assert registry.certificate_principal(cert_id) is None


def test_revoked_is_final(registry: Registry, local_ca: LocalCA, tmp_path: Path) -> None:
    record = registry.register_certificate(issue(local_ca, tmp_path, "gone").certificate_pem)
    registry.update_certificate(record.certificate_id, "REVOKED")
    registry.update_certificate(record.certificate_id, "REVOKED")  # idempotent, as on AWS
    for status in ("ACTIVE", "INACTIVE"):
        with pytest.raises(CertificateState):
            registry.update_certificate(record.certificate_id, status)
    assert registry.describe_certificate(record.certificate_id).status == "REVOKED"


def test_status_and_id_validation(registry: Registry, local_ca: LocalCA, tmp_path: Path) -> None:
    record = registry.register_certificate(issue(local_ca, tmp_path, "v").certificate_pem)
    for status in ("PENDING_TRANSFER", "active", ""):
        with pytest.raises(InvalidRequest):
            registry.update_certificate(record.certificate_id, status)
    with pytest.raises(ResourceNotFound):
        registry.update_certificate("0" * 64, "REVOKED")
    with pytest.raises(InvalidRequest):
        registry.register_certificate(issue(local_ca, tmp_path, "w").certificate_pem, "PENDING")


# ---------------------------------------------------------------------------- things


@pytest.mark.parametrize("name", ["", "has space", "a/b", "x" * 129, "caf\u00e9"])
def test_invalid_thing_names_are_refused(registry: Registry, name: str) -> None:
    with pytest.raises(InvalidRequest):
        registry.create_thing(name)
    assert registry.list_things() == []


def test_thing_attributes_and_idempotent_create(registry: Registry) -> None:
    thing = registry.create_thing("kitchen:sensor_1-a", {"room": "kitchen"})
    assert thing.thing_arn == "arn:aws:iot:us-east-1:000000000000:thing/kitchen:sensor_1-a"
    version = registry.version
    assert registry.create_thing("kitchen:sensor_1-a", {"room": "kitchen"}) == thing
    assert registry.version == version  # nothing changed, nothing bumped
    with pytest.raises(ResourceAlreadyExists):
        registry.create_thing("kitchen:sensor_1-a", {"room": "hall"})
    with pytest.raises(InvalidRequest):
        registry.create_thing("many", {"a": "1", "b": "2", "c": "3", "d": "4"})
    with pytest.raises(InvalidRequest):
        registry.create_thing("bad-attr", {"room": "has space"})
    assert registry.list_things() == ["kitchen:sensor_1-a"]


# ---------------------------------------------------------------------------- attachments


def test_thing_principal_attachments(registry: Registry, local_ca: LocalCA, tmp_path: Path) -> None:
    record = registry.register_certificate(issue(local_ca, tmp_path, "t").certificate_pem)
    registry.create_thing("t1")
    registry.create_thing("t2")
    registry.attach_thing_principal("t1", record.certificate_arn)
    registry.attach_thing_principal("t2", record.certificate_arn)
    registry.attach_thing_principal("t2", record.certificate_arn)  # idempotent
    assert registry.things_for_certificate(record.certificate_id) == ["t1", "t2"]
    assert registry.thing_principals("t2") == [record.certificate_arn]
    registry.detach_thing_principal("t1", record.certificate_arn)
    assert registry.things_for_certificate(record.certificate_id) == ["t2"]
    with pytest.raises(ResourceNotFound):
        registry.detach_thing_principal("t1", record.certificate_arn)
    with pytest.raises(ResourceNotFound):
        registry.attach_thing_principal("nope", record.certificate_arn)
    with pytest.raises(ResourceNotFound):  # a well-formed ARN of an unregistered certificate
        registry.attach_thing_principal("t1", registry.certificate_arn("a" * 64))
    with pytest.raises(InvalidRequest):  # another account's certificate
        registry.attach_thing_principal("t1", f"arn:aws:iot:us-east-1:111111111111:cert/{'a' * 64}")


def test_policy_attachments(registry: Registry, local_ca: LocalCA, tmp_path: Path) -> None:
    record = registry.register_certificate(issue(local_ca, tmp_path, "p").certificate_pem)
    arn = record.certificate_arn
    registry.attach_policy("iotchat-device", arn)
    registry.attach_policy("iotchat-device", arn)  # idempotent
    registry.attach_policy("iotchat-user", IDENTITY)
    assert registry.attached_policies(arn) == ["iotchat-device"]
    assert registry.attached_policies(IDENTITY) == ["iotchat-user"]
    assert registry.policy_targets("iotchat-device") == [arn]
    registry.detach_policy("iotchat-device", arn)
    assert registry.attached_policies(arn) == []
    with pytest.raises(ResourceNotFound):
        registry.detach_policy("iotchat-device", arn)
    with pytest.raises(InvalidRequest):
        registry.attach_policy("bad name", arn)
    with pytest.raises(InvalidRequest):
        registry.attach_policy("p", "not-a-principal")
    with pytest.raises(ResourceNotFound):
        registry.attach_policy("p", registry.certificate_arn("b" * 64))
    for i in range(1, 10):
        registry.attach_policy(f"p{i}", IDENTITY)
    assert len(registry.attached_policies(IDENTITY)) == 10
    with pytest.raises(LimitExceeded):
        registry.attach_policy("one-too-many", IDENTITY)


def test_thing_variables_resolve_only_for_own_attached_thing(
    registry: Registry, local_ca: LocalCA, tmp_path: Path
) -> None:
    a = registry.register_certificate(issue(local_ca, tmp_path, "a").certificate_pem)
    b = registry.register_certificate(issue(local_ca, tmp_path, "b").certificate_pem)
    registry.create_thing("dev-a", {"room": "lab"})
    registry.create_thing("dev-b")
    registry.attach_thing_principal("dev-a", a.certificate_arn)
    registry.attach_thing_principal("dev-b", b.certificate_arn)
    own = registry.connection_attributes(a.certificate_id, "dev-a")
    assert own == {
        THING_NAME_VARIABLE: "dev-a",
        THING_ATTACHED_VARIABLE: "true",
        "iot:Connection.Thing.Attributes[room]": "lab",
    }
    stolen = registry.connection_attributes(a.certificate_id, "dev-b")  # A's cert, B's id
    assert THING_NAME_VARIABLE not in stolen and stolen[THING_ATTACHED_VARIABLE] == "false"
    nothing = registry.connection_attributes(a.certificate_id, "no-such-thing")
    assert nothing == {THING_ATTACHED_VARIABLE: "false"}


# ---------------------------------------------------------------------------- persistence


def test_everything_survives_reopen(state_dir: Path, local_ca: LocalCA, tmp_path: Path) -> None:
    first = Registry.open(state_dir)
    record = first.register_certificate(issue(local_ca, tmp_path, "keep").certificate_pem)
    first.create_thing("keep", {"k": "v"})
    first.attach_thing_principal("keep", record.certificate_arn)
    first.attach_policy("iotchat-device", record.certificate_arn)
    first.update_certificate(record.certificate_id, "INACTIVE")
    version = first.version
    again = Registry.open(state_dir)
    assert again.version == version
    assert again.describe_certificate(record.certificate_id) == first.describe_certificate(
        record.certificate_id
    )
    assert again.describe_thing("keep").attributes == {"k": "v"}
    assert again.things_for_certificate(record.certificate_id) == ["keep"]
    assert again.attached_policies(record.certificate_arn) == ["iotchat-device"]
    assert again.certificate_principal(record.certificate_id) is None  # still INACTIVE
    path = state_dir / "registry" / "registry.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["version"] == version
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".registry.json.")]


def test_version_bumps_on_every_change_and_callbacks_see_deactivations(
    registry: Registry, local_ca: LocalCA, tmp_path: Path
) -> None:
    seen: list[RegistryChange] = []
    registry.on_change.append(seen.append)
    assert registry.version == 0
    record = registry.register_certificate(issue(local_ca, tmp_path, "c").certificate_pem)
    registry.create_thing("c")
    registry.attach_thing_principal("c", record.certificate_arn)
    registry.attach_policy("iotchat-device", record.certificate_arn)
    assert registry.version == 4
    registry.attach_policy("iotchat-device", record.certificate_arn)  # no-op
    assert registry.version == 4
    with pytest.raises(ResourceNotFound):
        registry.detach_policy("other", record.certificate_arn)
    assert registry.version == 4  # refused calls change nothing
    registry.update_certificate(record.certificate_id, "REVOKED")
    assert registry.version == 5
    assert [c.version for c in seen] == [1, 2, 3, 4, 5]
    assert [c.deactivated for c in seen] == [(), (), (), (), (record.certificate_id,)]


def test_failing_batch_leaves_nothing_behind(
    registry: Registry, local_ca: LocalCA, tmp_path: Path
) -> None:
    issued = issue(local_ca, tmp_path, "half")
    with pytest.raises(ResourceNotFound), registry.batch():
        registry.register_certificate(issued.certificate_pem)
        registry.attach_thing_principal(
            "missing-thing", registry.certificate_arn(issued.certificate_id)
        )
    assert registry.version == 0
    assert registry.list_certificates() == []
    assert Registry.open(registry.directory.parent).list_certificates() == []


def test_change_by_another_process_is_seen_and_announced(
    state_dir: Path, local_ca: LocalCA, tmp_path: Path
) -> None:
    """The running stack holds one Registry; the ``iotchat device`` CLI opens another."""
    stack_side = Registry.open(state_dir)
    seen: list[RegistryChange] = []
    stack_side.on_change.append(seen.append)
    cli_side = Registry.open(state_dir)
    record = cli_side.register_certificate(issue(local_ca, tmp_path, "x").certificate_pem)
    assert stack_side.certificate_principal(record.certificate_id) is not None
    cli_side.update_certificate(record.certificate_id, "REVOKED")
    assert stack_side.certificate_principal(record.certificate_id) is None
    assert stack_side.version == cli_side.version == 2
    assert seen[-1] == RegistryChange(2, (record.certificate_id,))


def test_unreadable_registry_fails_closed(
    state_dir: Path, local_ca: LocalCA, tmp_path: Path
) -> None:
    registry = Registry.open(state_dir)
    record = registry.register_certificate(issue(local_ca, tmp_path, "z").certificate_pem)
    store = RegistryCredentialStore(StaticCredentialStore(), registry)
    assert store.lookup_certificate(record.certificate_id) is not None
    registry.path.write_text("{ truncated")
    assert store.lookup_certificate(record.certificate_id) is None
    assert store.lookup_access_key("test") is not None  # the admin key still works
    with pytest.raises(ValueError):
        Registry.open(state_dir)  # a restart refuses to start on it rather than forget devices


def test_concurrent_writers_lose_nothing(state_dir: Path) -> None:
    writers = [Registry.open(state_dir) for _ in range(4)]

    def work(index: int) -> None:
        for n in range(10):
            writers[index].create_thing(f"w{index}-{n}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    fresh = Registry.open(state_dir)
    assert len(fresh.list_things()) == 40
    assert fresh.version == 40


# ---------------------------------------------------------------------------- device flows


def test_create_device_writes_what_a_device_needs(
    registry: Registry, local_ca: LocalCA, tmp_path: Path
) -> None:
    device = create_device(registry, local_ca, "thermo-1", tmp_path / "devices" / "thermo-1")
    assert device.cert_path.name == "device.pem.crt" and device.key_path.name == "private.pem.key"
    assert stat.S_IMODE(device.key_path.stat().st_mode) == 0o600
    assert device.ca_path.read_text() == local_ca.certificate_pem
    files = sorted(p.name for p in device.directory.iterdir())
    assert files == ["ca.pem", "device.json", "device.pem.crt", "private.pem.key"]
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(device.cert_path.read_bytes())
    assert certificate_id(cert.public_bytes(serialization.Encoding.DER)) == device.certificate_id
    config = json.loads(device.config_path.read_text())
    assert config["thingName"] == config["clientId"] == "thermo-1"
    assert config["certificateArn"] == device.certificate_arn
    assert config["certificateFile"] == "device.pem.crt" and config["caFile"] == "ca.pem"
    assert "/" not in config["privateKeyFile"]  # relative to device.json, never absolute
    assert registry.describe_certificate(device.certificate_id).status == "ACTIVE"
    assert registry.things_for_certificate(device.certificate_id) == ["thermo-1"]
    assert registry.attached_policies(device.certificate_arn) == ["iotchat-device"]
    assert (
        registry.connection_attributes(device.certificate_id, "thermo-1")[THING_NAME_VARIABLE]
        == "thermo-1"
    )


def test_create_device_refuses_an_existing_name(
    registry: Registry, local_ca: LocalCA, tmp_path: Path
) -> None:
    create_device(registry, local_ca, "dup", tmp_path / "one")
    version = registry.version
    with pytest.raises(ResourceAlreadyExists):
        create_device(registry, local_ca, "dup", tmp_path / "two")
    assert not (tmp_path / "two").exists()
    assert registry.version == version and len(registry.list_certificates()) == 1
    with pytest.raises(InvalidRequest):
        create_device(registry, local_ca, "bad name", tmp_path / "three")


def test_revoke_device(registry: Registry, local_ca: LocalCA, tmp_path: Path) -> None:
    device = create_device(registry, local_ca, "old", tmp_path / "old")
    assert revoke_device(registry, "old") == [device.certificate_id]
    assert registry.describe_certificate(device.certificate_id).status == "REVOKED"
    assert registry.certificate_principal(device.certificate_id) is None
    with pytest.raises(ResourceNotFound):
        revoke_device(registry, "never-created")


# ---------------------------------------------------------------------------- live gateway


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
