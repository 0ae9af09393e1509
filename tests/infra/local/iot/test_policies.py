"""IoT policies made with the API take effect when attached, as the gateway decides: a device
whose certificate carries only a created policy connects as the client id it allows and not as
another; a new default version changes that at once."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from awsiot import mqtt_connection_builder
from botocore.exceptions import ClientError

from tests.support.stack import InProcessStack, fresh_stack

pytestmark = pytest.mark.timeout(120)
TIMEOUT = 10.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessStack]:
    with fresh_stack(tmp_path_factory, "iot-policies") as running:
        yield running


def _connect_only(stack: InProcessStack, client_id: str) -> str:
    arn = f"arn:aws:iot:{stack.info['region']}:000000000000:client/{client_id}"
    statement = {"Effect": "Allow", "Action": "iot:Connect", "Resource": arn}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def _connects(stack: InProcessStack, files: Path, client_id: str) -> bool:
    connection = mqtt_connection_builder.mtls_from_path(
        endpoint="localhost",
        port=stack.info["iot"]["mqttsPort"],
        cert_filepath=str(files / "cert.pem"),
        pri_key_filepath=str(files / "key.pem"),
        ca_filepath=stack.info["iot"]["caFile"],
        client_id=client_id,
        clean_session=True,
        reconnect_min_timeout_secs=30,
    )
    try:
        connection.connect().result(TIMEOUT)
    except Exception:  # awscrt raises its own error types for a refused CONNECT
        return False
    done = threading.Event()
    connection.disconnect().add_done_callback(lambda _: done.set())
    done.wait(TIMEOUT)
    return True


def test_a_created_policy_decides_what_its_certificate_may_do(stack, tmp_path):
    iot = stack.client("iot")
    name = f"kiosk-{uuid.uuid4().hex[:6]}"
    created = iot.create_policy(policyName=name, policyDocument=_connect_only(stack, "kiosk-a"))
    assert created["policyVersionId"] == "1"
    assert name in [p["policyName"] for p in iot.list_policies()["policies"]]
    keys = iot.create_keys_and_certificate(setAsActive=True)
    (tmp_path / "cert.pem").write_text(keys["certificatePem"])
    (tmp_path / "key.pem").write_text(keys["keyPair"]["PrivateKey"])
    iot.attach_policy(policyName=name, target=keys["certificateArn"])

    assert _connects(stack, tmp_path, "kiosk-a")
    assert not _connects(stack, tmp_path, "kiosk-b")

    version = iot.create_policy_version(
        policyName=name, policyDocument=_connect_only(stack, "kiosk-b"), setAsDefault=True
    )
    assert version["policyVersionId"] == "2" and version["isDefaultVersion"] is True
    assert iot.get_policy(policyName=name)["defaultVersionId"] == "2"
    assert _connects(stack, tmp_path, "kiosk-b")
    assert not _connects(stack, tmp_path, "kiosk-a")


def test_malformed_duplicate_and_project_policies_are_refused(stack):
    iot = stack.client("iot")
    with pytest.raises(ClientError) as malformed:
        iot.create_policy(policyName="broken", policyDocument='{"Statement": "nope"}')
    assert malformed.value.response["Error"]["Code"] == "MalformedPolicyException"
    with pytest.raises(ClientError) as taken:
        iot.create_policy(policyName="iotchat-device", policyDocument=_connect_only(stack, "x"))
    assert taken.value.response["Error"]["Code"] == "ResourceAlreadyExistsException"
    with pytest.raises(ClientError) as project:
        iot.create_policy_version(
            policyName="iotchat-device", policyDocument=_connect_only(stack, "x")
        )
    assert project.value.response["Error"]["Code"] == "InvalidRequestException"
    assert "broken" not in [p["policyName"] for p in iot.list_policies()["policies"]]
