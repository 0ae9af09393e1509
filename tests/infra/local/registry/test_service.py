"""The local IoT registry's store: certificates, things and attachments, and that it survives
restarts and changes made by other processes.

Device creation and revocation are in ``test_devices.py``; the gateway refusing what the
registry does not hold as ACTIVE, with real devices, in ``test_live_gateway.py``.
"""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from infra.local.ca import LocalCA
from infra.local.gateway import (
    StaticCredentialStore,
)
from infra.local.registry import (
    CERTIFICATE_ID_VARIABLE,
    THING_ATTACHED_VARIABLE,
    THING_NAME_VARIABLE,
    CertificateState,
    InvalidRequest,
    LimitExceeded,
    Registry,
    RegistryChange,
    RegistryCredentialStore,
    ResourceAlreadyExists,
    ResourceNotFound,
)

pytestmark = pytest.mark.timeout(60)

TIMEOUT = 10.0
IDENTITY = "us-east-1:6b4c3f0e-1d2a-4c5b-9e8f-0a1b2c3d4e5f"


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
