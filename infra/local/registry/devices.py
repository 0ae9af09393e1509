"""Device flows over the registry: create a device (key, certificate, thing, files), revoke one.

The steps ``iotchat device create`` and ``revoke`` make through the IoT API
(``CreateKeysAndCertificate`` + ``CreateThing`` + ``AttachPolicy`` + ``AttachThingPrincipal``,
``UpdateCertificate`` to REVOKED), here over the registry object itself, for tests and tools
that need a device in-process without the API endpoint. The device's file names are the edge
component's (:mod:`client.edge.device`), so what is written here is what a device loads.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from client.edge.device import CA_FILE, CERT_FILE, CONFIG_FILE, KEY_FILE
from infra.local.ca import LocalCA
from infra.local.state_files import write_atomic

from .errors import ResourceAlreadyExists
from .service import ACTIVE, DEVICE_POLICY, POLICY_NAME, REVOKED, THING_NAME, Registry, check_name


@dataclass(frozen=True)
class DeviceFiles:
    """What ``create_device`` wrote: the files a device needs to connect over mutual TLS."""

    thing_name: str
    certificate_id: str
    certificate_arn: str
    directory: Path
    cert_path: Path
    key_path: Path
    ca_path: Path
    config_path: Path


def create_device(
    registry: Registry,
    ca: LocalCA,
    name: str,
    out_dir: Path,
    policy_name: str = DEVICE_POLICY,
) -> DeviceFiles:
    """The local ``create_keys_and_certificate`` + ``create_thing`` + ``attach_policy`` +
    ``attach_thing_principal``: issue a key and certificate, register them ACTIVE and write
    the device's files. ``device.json`` leaves the endpoint for the CLI to fill in."""
    check_name(THING_NAME, name, "thing name")
    check_name(POLICY_NAME, policy_name, "policy name")
    if registry.has_thing(name):
        raise ResourceAlreadyExists(f"thing {name} already exists")
    out_dir = Path(out_dir)
    key_path, cert_path = out_dir / KEY_FILE, out_dir / CERT_FILE
    if key_path.exists() or cert_path.exists():
        raise ResourceAlreadyExists(f"{out_dir.name} already holds device credentials")
    out_dir.mkdir(parents=True, exist_ok=True)
    issued = ca.issue_client_certificate(name, out_dir)
    os.replace(issued.key_path, key_path)  # keeps the 0600 the CA wrote it with
    os.replace(issued.cert_path, cert_path)
    try:
        with registry.batch():
            if registry.has_thing(name):  # created meanwhile by another process
                raise ResourceAlreadyExists(f"thing {name} already exists")
            record = registry.register_certificate(issued.certificate_pem, ACTIVE)
            registry.create_thing(name)
            registry.attach_thing_principal(name, record.certificate_arn)
            registry.attach_policy(policy_name, record.certificate_arn)
    except BaseException:
        for path in (key_path, cert_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        raise
    ca_path = out_dir / CA_FILE
    write_atomic(ca_path, ca.certificate_pem.encode(), 0o644)
    config_path = out_dir / CONFIG_FILE
    config = {
        "thingName": name,
        "clientId": name,
        "certificateId": record.certificate_id,
        "certificateArn": record.certificate_arn,
        "policyName": policy_name,
        "region": registry.region,
        "accountId": registry.account_id,
        "certificateFile": CERT_FILE,
        "privateKeyFile": KEY_FILE,
        "caFile": CA_FILE,
        "endpoint": {"host": None, "mqttsPort": None},
    }
    write_atomic(config_path, (json.dumps(config, indent=2) + "\n").encode(), 0o644)
    return DeviceFiles(
        name,
        record.certificate_id,
        record.certificate_arn,
        out_dir,
        cert_path,
        key_path,
        ca_path,
        config_path,
    )


def revoke_device(registry: Registry, name: str) -> list[str]:
    """Mark every certificate attached to thing ``name`` REVOKED; returns their ids."""
    prefix = registry.certificate_arn("")
    with registry.batch():
        registry.describe_thing(name)  # ResourceNotFound for an unknown thing
        revoked = [
            arn[len(prefix) :] for arn in registry.thing_principals(name) if arn.startswith(prefix)
        ]
        for cert_id in revoked:
            registry.update_certificate(cert_id, REVOKED)
    return revoked
