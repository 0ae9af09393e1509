"""Reading a device directory: what direct mode connects to, and the mistakes it refuses early."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from client.edge.device import DeviceConfigError, load_device


def _device_dir(root: Path, endpoint: dict | None, ca: bool = True) -> Path:
    directory = root / "pi"
    directory.mkdir()
    for name in ("device.pem.crt", "private.pem.key") + (("ca.pem",) if ca else ()):
        (directory / name).write_text("pem")
    config = {
        "thingName": "pi-7",
        "clientId": "pi-7",
        "region": "eu-west-1",
        "certificateFile": "device.pem.crt",
        "privateKeyFile": "private.pem.key",
        "caFile": "ca.pem" if ca else None,
        "endpoint": endpoint or {"host": None, "mqttsPort": None},
    }
    (directory / "device.json").write_text(json.dumps(config))
    return directory


def _stack_file(root: Path, port: int) -> Path:
    path = root / "stack.json"
    info = {
        "kind": "local",
        "region": "us-east-1",
        "iot": {"host": "127.0.0.1", "mqttsPort": port, "caFile": str(root / "stack-ca.pem")},
        "cognito": {"identityPoolId": "pool"},
    }
    path.write_text(json.dumps(info))
    return path


def test_device_json_names_the_endpoint_and_files(tmp_path):
    directory = _device_dir(tmp_path, {"host": "abc-ats.iot.eu-west-1.amazonaws.com"})
    stack, identity = load_device(directory)
    assert (stack.iot_host, stack.mqtts_port) == ("abc-ats.iot.eu-west-1.amazonaws.com", 8883)
    assert identity.identity_id == "pi-7"
    assert identity.cert_path == directory / "device.pem.crt"
    assert identity.key_path == directory / "private.pem.key"
    assert identity.ca_path == directory / "ca.pem"


def test_a_stack_file_overrides_the_endpoint(tmp_path):
    directory = _device_dir(tmp_path, {"host": "127.0.0.1", "mqttsPort": 1111}, ca=False)
    stack, identity = load_device(directory, _stack_file(tmp_path, 2222))
    assert (stack.iot_host, stack.mqtts_port) == ("127.0.0.1", 2222)
    assert identity.ca_path == tmp_path / "stack-ca.pem"  # no ca.pem: the stack's CA


def test_no_endpoint_and_no_stack_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IOTCHAT_STACK_FILE", raising=False)
    with pytest.raises(DeviceConfigError, match="no endpoint"):
        load_device(_device_dir(tmp_path, None))


def test_a_missing_key_file_is_named(tmp_path):
    directory = _device_dir(tmp_path, {"host": "h", "mqttsPort": 8883})
    (directory / "private.pem.key").unlink()
    with pytest.raises(DeviceConfigError, match=r"private\.pem\.key is missing"):
        load_device(directory)
