"""``iotchat device create|revoke``: give a device (a Pi, a bot) its own X.509 identity.

A device talks to AWS IoT Core over mutual TLS with a certificate that is registered ACTIVE,
attached to a thing named like its client id and to the device policy. The same steps, through
boto3's ``iot`` client, run against AWS or against the local stack's API endpoint (as its admin;
the local CA signs in ``CreateKeysAndCertificate`` as AWS IoT's does), so nothing here reads the
stack's registry or CA key from disk; both write the same files. A thing name shaped like a
Cognito identity id is refused: a device's client id is its thing name, and a device must never
connect as a person. The commands sit at the end, next to the steps they run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.options import StackFileOption
from client.edge.device import CA_FILE, CERT_FILE, CONFIG_FILE, KEY_FILE
from client.stack_file import resolve_path

DEFAULT_DEVICE_POLICY = "iotchat-device"
# A Cognito identity id, ``<region>:<uuid>``: never a device's thing name.
COGNITO_IDENTITY_ID = re.compile(r"[a-z]{2}(-[a-z]+)+-\d:[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}")


class DeviceError(Exception):
    """A refused ``device`` command; the message is meant for the user."""


@dataclass(frozen=True)
class DeviceResult:
    """What ``create`` wrote; ``ca_path`` is None when the user must supply the root CA."""

    name: str
    certificate_id: str
    directory: Path
    cert_path: Path
    key_path: Path
    ca_path: Path | None
    config_path: Path


def stack_file_path(explicit: Path | None = None) -> Path:
    """``--stack-file``, else ``$IOTCHAT_STACK_FILE``, else ``.iotchat/stack.json``."""
    return resolve_path(explicit)


def load_stack(path: Path) -> dict[str, Any]:
    try:
        info = json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise DeviceError(
            f"no stack file at {path} (start one with `iotchat up`, or pass --stack-file)"
        ) from exc
    except (OSError, ValueError) as exc:
        raise DeviceError(f"cannot read stack file {path}: {exc}") from exc
    if not isinstance(info, dict) or info.get("kind") not in ("local", "aws"):
        raise DeviceError(f"stack file {path} has no known kind (expected 'local' or 'aws')")
    return info


def _device_policy(info: dict[str, Any]) -> str:
    return str(info.get("iot", {}).get("devicePolicyName") or DEFAULT_DEVICE_POLICY)


def _endpoint(info: dict[str, Any]) -> dict[str, Any]:
    iot = info.get("iot", {})
    return {"host": iot.get("host"), "mqttsPort": iot.get("mqttsPort")}


def _write(path: Path, data: str, mode: int) -> None:
    """Create ``path`` with ``mode`` from the start, so a key is never readable by others."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(data)
    os.chmod(path, mode)


def create_device(
    name: str, out_dir: Path | None = None, stack_file: Path | None = None
) -> DeviceResult:
    """Register device ``name`` and write its files to ``out_dir`` (default ``./NAME``)."""
    info = load_stack(stack_file_path(stack_file))
    if COGNITO_IDENTITY_ID.fullmatch(name):
        raise DeviceError(
            f"{name!r} is shaped like a Cognito identity id: a device connects with its thing "
            "name as client id and must never impersonate a person"
        )
    directory = Path(out_dir) if out_dir is not None else Path(name)
    return _create(info, name, directory)


def revoke_device(name: str, stack_file: Path | None = None) -> list[str]:
    """Mark every certificate of thing ``name`` REVOKED; returns their ids."""
    return _revoke(load_stack(stack_file_path(stack_file)), name)


# ---------------------------------------------------------------------------- the iot API


def _iot_client(info: dict[str, Any]) -> Any:
    """boto3's ``iot`` client: AWS's with the caller's own credentials, or the local stack's
    API endpoint with the admin keys its stack file names."""
    import boto3

    if info["kind"] == "aws":
        return boto3.client("iot", region_name=info.get("region"))
    admin = info.get("admin", {})
    return boto3.client(
        "iot",
        region_name=info.get("region"),
        endpoint_url=info.get("api", {}).get("endpoint"),
        aws_access_key_id=admin.get("accessKeyId"),
        aws_secret_access_key=admin.get("secretAccessKey"),
    )


def _aws_error(exc: Exception) -> DeviceError:
    response = getattr(exc, "response", {}) or {}
    code = response.get("Error", {}).get("Code", type(exc).__name__)
    message = response.get("Error", {}).get("Message", str(exc))
    return DeviceError(f"{code}: {message}")


def _create(info: dict[str, Any], name: str, out: Path) -> DeviceResult:
    from botocore.exceptions import BotoCoreError, ClientError

    policy = _device_policy(info)
    if (out / KEY_FILE).exists() or (out / CERT_FILE).exists():
        raise DeviceError(f"{out} already holds device credentials")
    iot = _iot_client(info)
    try:
        try:
            iot.describe_thing(thingName=name)
        except iot.exceptions.ResourceNotFoundException:
            pass
        else:
            raise DeviceError(f"thing {name} already exists")
        iot.create_thing(thingName=name)
    except (ClientError, BotoCoreError) as exc:
        raise _aws_error(exc) from exc
    keys: dict[str, Any] = {}
    try:
        keys = iot.create_keys_and_certificate(setAsActive=True)
        arn = keys["certificateArn"]
        iot.attach_policy(policyName=policy, target=arn)
        iot.attach_thing_principal(thingName=name, principal=arn)
    except (ClientError, BotoCoreError) as exc:
        _undo_create(iot, name, keys, policy)
        raise _aws_error(exc) from exc
    out.mkdir(parents=True, exist_ok=True)
    cert_path, key_path, config_path = out / CERT_FILE, out / KEY_FILE, out / CONFIG_FILE
    _write(key_path, keys["keyPair"]["PrivateKey"], 0o600)
    _write(cert_path, keys["certificatePem"], 0o644)
    ca_path: Path | None = None
    ca_source = info.get("iot", {}).get("caFile")
    if ca_source and Path(ca_source).is_file():
        ca_path = out / CA_FILE
        shutil.copyfile(ca_source, ca_path)
        os.chmod(ca_path, 0o644)
    config = {
        "thingName": name,
        "clientId": name,
        "certificateId": keys["certificateId"],
        "certificateArn": arn,
        "policyName": policy,
        "region": info.get("region"),
        "accountId": info.get("accountId"),
        "certificateFile": CERT_FILE,
        "privateKeyFile": KEY_FILE,
        "caFile": CA_FILE if ca_path else None,
        "endpoint": _endpoint(info),
    }
    _write(config_path, json.dumps(config, indent=2) + "\n", 0o644)
    return DeviceResult(name, keys["certificateId"], out, cert_path, key_path, ca_path, config_path)


def _undo_create(iot: Any, name: str, keys: dict[str, Any], policy: str) -> None:
    """Best effort: leave no half-made device (an ACTIVE certificate nobody holds the key of)."""
    from botocore.exceptions import BotoCoreError, ClientError

    arn, cert_id = keys.get("certificateArn"), keys.get("certificateId")
    steps: list[tuple[Any, dict[str, Any]]] = []
    if arn and cert_id:
        steps += [
            (iot.detach_thing_principal, {"thingName": name, "principal": arn}),
            (iot.detach_policy, {"policyName": policy, "target": arn}),
            (iot.update_certificate, {"certificateId": cert_id, "newStatus": "INACTIVE"}),
            (iot.delete_certificate, {"certificateId": cert_id}),
        ]
    steps.append((iot.delete_thing, {"thingName": name}))
    for call, kwargs in steps:
        with contextlib.suppress(ClientError, BotoCoreError):
            call(**kwargs)


def _revoke(info: dict[str, Any], name: str) -> list[str]:
    from botocore.exceptions import BotoCoreError, ClientError

    iot = _iot_client(info)
    policy = _device_policy(info)
    revoked: list[str] = []
    try:
        try:
            iot.describe_thing(thingName=name)
            principals = iot.list_thing_principals(thingName=name)["principals"]
        except iot.exceptions.ResourceNotFoundException as exc:
            raise DeviceError(f"no device named {name!r}") from exc
        for arn in principals:
            if ":cert/" not in arn:
                continue
            cert_id = arn.rsplit("/", 1)[1]
            iot.update_certificate(certificateId=cert_id, newStatus="REVOKED")
            iot.detach_thing_principal(thingName=name, principal=arn)
            with contextlib.suppress(iot.exceptions.ResourceNotFoundException):
                iot.detach_policy(policyName=policy, target=arn)
            revoked.append(cert_id)
    except (ClientError, BotoCoreError) as exc:
        raise _aws_error(exc) from exc
    return revoked


# ---------------------------------------------------------------------------- the commands

device_app = typer.Typer(no_args_is_help=True, help="Give devices their own X.509 identity.")


def _refused(command: str, exc: DeviceError) -> typer.Exit:
    typer.echo(f"iotchat device {command}: {exc}", err=True)
    return typer.Exit(1)


@device_app.command("create")
def device_create(
    name: Annotated[
        str, typer.Argument(help="Thing name; the device connects with it as client id.")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", help="Where to write the files (default: ./NAME).")
    ] = None,
    stack_file: StackFileOption = None,
) -> None:
    """Register a device (thing + ACTIVE certificate + device policy) and write its files."""
    try:
        result = create_device(name, out, stack_file)
    except DeviceError as exc:
        raise _refused("create", exc) from exc
    typer.echo(f"device {result.name}: certificate {result.certificate_id} ACTIVE")
    typer.echo(f"  certificate: {result.cert_path}")
    typer.echo(f"  private key: {result.key_path} (mode 0600)")
    if result.ca_path is not None:
        typer.echo(f"  CA:          {result.ca_path}")
    else:
        typer.echo("  CA:          not written; supply Amazon Root CA 1 yourself")
    typer.echo(f"  settings:    {result.config_path}")


@device_app.command("revoke")
def device_revoke(
    name: Annotated[str, typer.Argument(help="The device's thing name.")],
    stack_file: StackFileOption = None,
) -> None:
    """Mark the device's certificates REVOKED: the gateway refuses them from now on."""
    try:
        revoked = revoke_device(name, stack_file)
    except DeviceError as exc:
        raise _refused("revoke", exc) from exc
    typer.echo(f"device {name}: {len(revoked)} certificate(s) REVOKED")
