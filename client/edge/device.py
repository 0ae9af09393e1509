"""Where a device connects and as whom: the files ``iotchat device create`` wrote.

The chat client was written for Cognito identities; a device's identity is its thing name (the
MQTT client id the device policy checks) plus its certificate and key, so this module gives the
client an identity and a stack description with exactly what a device transport needs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..stack_file import StackFileError, StackInfo, load_stack_file, resolve_path

DEFAULT_MQTTS_PORT = 8883

# The device folder `iotchat device create` writes, locally or on AWS alike.
CERT_FILE = "device.pem.crt"
KEY_FILE = "private.pem.key"
CA_FILE = "ca.pem"
CONFIG_FILE = "device.json"


class DeviceConfigError(ValueError):
    """The device directory cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class DeviceIdentity:
    """Stands where ChatClient expects an Identity: ``identity_id`` becomes the client id."""

    identity_id: str
    cert_path: Path | None = None
    key_path: Path | None = None
    ca_path: Path | None = None


def _file(directory: Path, config: dict[str, Any], key: str, required: bool) -> Path | None:
    name = config.get(key)
    if not name:
        if required:
            raise DeviceConfigError(f"{directory / CONFIG_FILE} names no {key}")
        return None
    path = directory / str(name)
    if not path.is_file():
        raise DeviceConfigError(f"{path} is missing (it is named by {CONFIG_FILE}'s {key})")
    return path


def _endpoint(config: dict[str, Any], stack_file: Path | None) -> tuple[str, int, str | None]:
    """Host, port and the stack's CA file: ``--stack-file`` wins, then ``device.json``.

    A device copied to a Pi has only its ``device.json``; on the machine that created it the
    stack file may be newer (a restarted local stack picks new ports).
    """
    endpoint = config.get("endpoint") or {}
    explicit = stack_file is not None
    if not explicit and endpoint.get("host"):
        port = endpoint.get("mqttsPort") or DEFAULT_MQTTS_PORT
        return str(endpoint["host"]), int(port), None
    where = resolve_path(stack_file)
    if not explicit and not where.is_file():
        raise DeviceConfigError(
            f"{CONFIG_FILE} has no endpoint and there is no stack file at {where}; "
            "pass --stack-file"
        )
    try:
        stack = load_stack_file(where)
    except StackFileError as exc:
        raise DeviceConfigError(str(exc)) from None
    return stack.iot_host, stack.mqtts_port or DEFAULT_MQTTS_PORT, stack.ca_file


def load_device(
    device_dir: Path, stack_file: Path | None = None
) -> tuple[StackInfo, DeviceIdentity]:
    """Read ``device.json`` and its files; refuse early what could only fail at connect time."""
    directory = Path(device_dir)
    path = directory / CONFIG_FILE
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise DeviceConfigError(
            f"no {CONFIG_FILE} in {directory} (create the device with `iotchat device create`)"
        ) from None
    except (OSError, ValueError) as exc:
        raise DeviceConfigError(f"cannot read {path}: {exc}") from None
    if not isinstance(config, dict) or not config.get("thingName"):
        raise DeviceConfigError(f"{path} has no thingName")
    thing = str(config.get("clientId") or config["thingName"])
    cert = _file(directory, config, "certificateFile", required=True)
    key = _file(directory, config, "privateKeyFile", required=True)
    ca = _file(directory, config, "caFile", required=False)
    host, port, stack_ca = _endpoint(config, stack_file)
    if ca is None and stack_ca:
        ca = Path(stack_ca)
    region = str(config.get("region") or "")
    stack = _device_stack(path, "device", config, region, host, port, str(ca) if ca else None)
    return stack, DeviceIdentity(thing, cert, key, ca)


def greengrass_device(thing_name: str) -> tuple[StackInfo, DeviceIdentity]:
    """Under Greengrass the nucleus holds the connection; only the thing name matters here."""
    return _device_stack(Path("."), "greengrass", {}), DeviceIdentity(thing_name)


def _device_stack(
    path: Path,
    kind: str,
    raw: dict[str, Any],
    region: str = "",
    host: str = "",
    mqtts_port: int | None = None,
    ca_file: str | None = None,
) -> StackInfo:
    """A stack description with only what a device transport reads: no Cognito, no API."""
    return StackInfo(
        path=path,
        kind=kind,
        region=region,
        stack_name="iotchat",
        iot_host=host,
        wss_port=0,
        mqtts_port=mqtts_port,
        ca_file=ca_file,
        api_endpoint=None,
        identity_pool_id="",
        user_pool_id=None,
        user_pool_client_id=None,
        raw=raw,
    )
