"""`iotchat device create|revoke` as a user runs them: against a running local stack (real
mutual-TLS connects with the written files) and against AWS (moto stands in for the IoT API)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import awscrt.mqtt
import boto3
import pytest
from awsiot import mqtt_connection_builder
from moto import mock_aws

from cli import devices
from client.stack_file import ENV_STACK_FILE
from tests.support.up_command import up_process

pytestmark = pytest.mark.timeout(90)
IOTCHAT = [sys.executable, "-m", "cli.main"]
ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 10.0


def _iotchat(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*IOTCHAT, *args], cwd=ROOT, capture_output=True, text=True, timeout=60, env=env
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    state_dir = tmp_path_factory.mktemp("device-cli") / "state"
    with up_process(state_dir) as info:
        yield state_dir / "stack.json", info


def _mtls(directory: Path, port: int, client_id: str) -> awscrt.mqtt.Connection:
    return mqtt_connection_builder.mtls_from_path(
        endpoint="localhost",  # the stack's server certificate names localhost
        port=port,
        cert_filepath=str(directory / "device.pem.crt"),
        pri_key_filepath=str(directory / "private.pem.key"),
        ca_filepath=str(directory / "ca.pem"),
        client_id=client_id,
        clean_session=True,
        reconnect_min_timeout_secs=30,
    )


def test_created_device_connects_and_publishes_then_revoked_is_refused(stack, tmp_path):
    stack_file, info = stack
    out = tmp_path / "kitchen-pi"
    created = _iotchat(
        "device", "create", "kitchen-pi", "--out", str(out), "--stack-file", str(stack_file)
    )
    assert created.returncode == 0, created.stderr
    assert "kitchen-pi" in created.stdout and "private.pem.key" in created.stdout
    for name in ("device.pem.crt", "private.pem.key", "ca.pem", "device.json"):
        assert (out / name).is_file(), name
    assert stat.S_IMODE((out / "private.pem.key").stat().st_mode) == 0o600
    config = json.loads((out / "device.json").read_text())
    assert config["thingName"] == config["clientId"] == "kitchen-pi"
    assert config["endpoint"] == {
        "host": info["iot"]["host"],
        "mqttsPort": info["iot"]["mqttsPort"],
    }

    connection = _mtls(out, info["iot"]["mqttsPort"], "kitchen-pi")
    connection.connect().result(TIMEOUT)
    try:
        message = json.dumps({"type": "message", "room": "lobby", "body": "hi"}).encode()
        publish, _ = connection.publish("chat/out", message, awscrt.mqtt.QoS.AT_LEAST_ONCE)
        publish.result(TIMEOUT)  # the PUBACK: the device policy allowed it
    finally:
        connection.disconnect().result(TIMEOUT)

    revoked = _iotchat("device", "revoke", "kitchen-pi", "--stack-file", str(stack_file))
    assert revoked.returncode == 0, revoked.stderr
    assert "REVOKED" in revoked.stdout
    refused = _mtls(out, info["iot"]["mqttsPort"], "kitchen-pi")
    with pytest.raises(Exception):  # noqa: B017 - awscrt raises its own error types
        refused.connect().result(TIMEOUT)


def test_duplicate_and_unknown_names_exit_1_with_a_message(stack, tmp_path):
    stack_file, _ = stack
    env = {**os.environ, ENV_STACK_FILE: str(stack_file)}  # found via the variable
    first = _iotchat("device", "create", "twin", "--out", str(tmp_path / "a"), env=env)
    assert first.returncode == 0, first.stderr
    again = _iotchat("device", "create", "twin", "--out", str(tmp_path / "b"), env=env)
    assert again.returncode == 1
    assert "twin already exists" in again.stderr
    assert not (tmp_path / "b" / "private.pem.key").exists()
    unknown = _iotchat("device", "revoke", "nobody", env=env)
    assert unknown.returncode == 1
    assert "no device named 'nobody'" in unknown.stderr


def test_a_name_shaped_like_an_identity_id_is_refused_and_no_thing_is_made(stack, tmp_path):
    """A device's client id is its thing name: it must never be a person's identity id."""
    stack_file, info = stack
    person = "us-east-1:0f5e7c9a-1b2c-4d3e-8f90-123456789abc"
    refused = _iotchat(
        "device", "create", person, "--out", str(tmp_path / "x"), "--stack-file", str(stack_file)
    )
    assert refused.returncode == 1
    assert "Cognito identity id" in refused.stderr
    assert not (tmp_path / "x").exists()
    iot = boto3.client(
        "iot",
        region_name=info["region"],
        endpoint_url=info["api"]["endpoint"],
        aws_access_key_id=info["admin"]["accessKeyId"],
        aws_secret_access_key=info["admin"]["secretAccessKey"],
    )
    assert person not in [t["thingName"] for t in iot.list_things()["things"]]
    # The same command with a device's own name still works.
    made = _iotchat(
        "device", "create", "hall-pi", "--out", str(tmp_path / "y"), "--stack-file", str(stack_file)
    )
    assert made.returncode == 0, made.stderr
    assert "hall-pi" in [t["thingName"] for t in iot.list_things()["things"]]


def test_missing_stack_file_exits_1_with_a_message(tmp_path):
    result = _iotchat("device", "create", "x", "--stack-file", str(tmp_path / "none.json"))
    assert result.returncode == 1
    assert "no stack file" in result.stderr


# ---------------------------------------------------------------------------- AWS (moto)


@pytest.fixture
def aws_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Any]]:
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    stack_file = tmp_path / "stack.json"
    info = {
        "kind": "aws",
        "region": "eu-west-1",
        "accountId": "123456789012",
        "iot": {
            "host": "abc-ats.iot.eu-west-1.amazonaws.com",
            "mqttsPort": 8883,
            "devicePolicyName": "chat-device",
        },
    }
    stack_file.write_text(json.dumps(info))
    with mock_aws():
        iot = boto3.client("iot", region_name="eu-west-1")
        iot.create_policy(
            policyName="chat-device",
            policyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}],
                }
            ),
        )
        yield stack_file, iot


def test_aws_create_registers_thing_certificate_and_attachments(aws_stack, tmp_path):
    stack_file, iot = aws_stack
    result = devices.create_device("pi-1", tmp_path / "pi", stack_file)
    assert stat.S_IMODE(result.key_path.stat().st_mode) == 0o600
    assert "BEGIN CERTIFICATE" in result.cert_path.read_text()
    assert "PRIVATE KEY" in result.key_path.read_text()
    assert result.ca_path is None  # no caFile in the stack file: the user supplies Root CA 1
    config = json.loads(result.config_path.read_text())
    assert config["endpoint"] == {"host": "abc-ats.iot.eu-west-1.amazonaws.com", "mqttsPort": 8883}

    assert iot.describe_thing(thingName="pi-1")["thingName"] == "pi-1"
    cert = iot.describe_certificate(certificateId=result.certificate_id)["certificateDescription"]
    assert cert["status"] == "ACTIVE"
    assert cert["certificatePem"].strip() == result.cert_path.read_text().strip()
    assert iot.list_thing_principals(thingName="pi-1")["principals"] == [cert["certificateArn"]]
    policies = iot.list_attached_policies(target=cert["certificateArn"])["policies"]
    assert [p["policyName"] for p in policies] == ["chat-device"]


def test_aws_revoke_marks_the_certificate_revoked(aws_stack, tmp_path):
    stack_file, iot = aws_stack
    result = devices.create_device("pi-2", tmp_path / "pi", stack_file)
    assert devices.revoke_device("pi-2", stack_file) == [result.certificate_id]
    cert = iot.describe_certificate(certificateId=result.certificate_id)["certificateDescription"]
    assert cert["status"] == "REVOKED"
    assert iot.list_thing_principals(thingName="pi-2")["principals"] == []


def test_aws_duplicate_and_unknown_names_are_refused(aws_stack, tmp_path):
    stack_file, _ = aws_stack
    devices.create_device("pi-3", tmp_path / "a", stack_file)
    with pytest.raises(devices.DeviceError, match="already exists"):
        devices.create_device("pi-3", tmp_path / "b", stack_file)
    with pytest.raises(devices.DeviceError, match="no device named"):
        devices.revoke_device("ghost", stack_file)


def test_aws_create_copies_the_stack_files_ca_when_it_names_one(aws_stack, tmp_path):
    stack_file, _ = aws_stack
    root_ca = tmp_path / "AmazonRootCA1.pem"
    root_ca.write_text("-----BEGIN CERTIFICATE-----\nstand-in\n-----END CERTIFICATE-----\n")
    info = json.loads(stack_file.read_text())
    info["iot"]["caFile"] = str(root_ca)
    stack_file.write_text(json.dumps(info))
    result = devices.create_device("pi-4", tmp_path / "pi", stack_file)
    assert result.ca_path is not None and result.ca_path.read_text() == root_ca.read_text()
    assert json.loads(result.config_path.read_text())["caFile"] == "ca.pem"


def test_aws_create_with_a_missing_policy_leaves_no_half_made_device(aws_stack, tmp_path):
    stack_file, iot = aws_stack
    info = json.loads(stack_file.read_text())
    info["iot"]["devicePolicyName"] = "no-such-policy"
    stack_file.write_text(json.dumps(info))
    with pytest.raises(devices.DeviceError, match="ResourceNotFound"):
        devices.create_device("pi-5", tmp_path / "pi", stack_file)
    assert iot.list_things()["things"] == []
    assert iot.list_certificates()["certificates"] == []
    assert not (tmp_path / "pi" / "private.pem.key").exists()
