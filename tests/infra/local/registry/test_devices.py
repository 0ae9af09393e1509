"""Device flows over the registry: ``create_device`` writes what a device needs and registers
it; ``revoke_device`` revokes every certificate of a thing."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from infra.local.ca import LocalCA, certificate_id
from infra.local.registry import (
    THING_NAME_VARIABLE,
    InvalidRequest,
    Registry,
    ResourceAlreadyExists,
    ResourceNotFound,
    create_device,
    revoke_device,
)

pytestmark = pytest.mark.timeout(60)


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
