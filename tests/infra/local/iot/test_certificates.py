"""Certificates through the IoT control plane with boto3, on a running stack: a CSR signed by the
local CA, registering only what the local CA signed, the status rules and deletion."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from infra.local.ca import LocalCA
from tests.support.stack import InProcessStack, fresh_stack

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessStack]:
    with fresh_stack(tmp_path_factory, "iot-certificates") as running:
        yield running


def _code(refused: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    response = refused.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def test_a_csr_is_signed_by_the_local_ca_for_the_devices_own_key(stack):
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sensor")]))
        .sign(key, hashes.SHA256())
    )
    iot = stack.client("iot")
    made = iot.create_certificate_from_csr(
        certificateSigningRequest=csr.public_bytes(serialization.Encoding.PEM).decode(),
        setAsActive=True,
    )
    cert = x509.load_pem_x509_certificate(made["certificatePem"].encode())
    cert.verify_directly_issued_by(stack.ca.certificate)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    described = iot.describe_certificate(certificateId=made["certificateId"])
    assert described["certificateDescription"]["status"] == "ACTIVE"
    with pytest.raises(ClientError) as garbage:
        iot.create_certificate_from_csr(certificateSigningRequest="not a CSR")
    assert _code(garbage) == (400, "InvalidRequestException")


def test_only_certificates_the_local_ca_signed_are_registered(stack, tmp_path):
    iot = stack.client("iot")
    foreign = LocalCA.load_or_create(tmp_path / "other-ca").issue_client_certificate("x", tmp_path)
    with pytest.raises(ClientError) as refused:
        iot.register_certificate(certificatePem=foreign.certificate_pem, status="ACTIVE")
    assert _code(refused) == (400, "CertificateValidationException")
    ours = stack.ca.issue_client_certificate("y", tmp_path / "ours")
    registered = iot.register_certificate(certificatePem=ours.certificate_pem, status="ACTIVE")
    assert registered["certificateId"] == ours.certificate_id
    listed = {c["certificateId"] for c in iot.list_certificates()["certificates"]}
    assert ours.certificate_id in listed and foreign.certificate_id not in listed


def test_revocation_is_final_and_deletion_needs_an_inactive_detached_certificate(stack):
    iot = stack.client("iot")
    keys = iot.create_keys_and_certificate(setAsActive=True)
    cert_id, arn = keys["certificateId"], keys["certificateArn"]
    iot.attach_policy(policyName="iotchat-device", target=arn)
    with pytest.raises(ClientError) as active:
        iot.delete_certificate(certificateId=cert_id)
    assert _code(active) == (406, "CertificateStateException")
    iot.update_certificate(certificateId=cert_id, newStatus="REVOKED")
    with pytest.raises(ClientError) as final:
        iot.update_certificate(certificateId=cert_id, newStatus="ACTIVE")
    assert _code(final) == (406, "CertificateStateException")
    with pytest.raises(ClientError) as attached:
        iot.delete_certificate(certificateId=cert_id)
    assert _code(attached) == (409, "DeleteConflictException")
    assert iot.list_targets_for_policy(policyName="iotchat-device")["targets"] == [arn]
    iot.detach_policy(policyName="iotchat-device", target=arn)
    iot.delete_certificate(certificateId=cert_id)
    with pytest.raises(ClientError) as gone:
        iot.describe_certificate(certificateId=cert_id)
    assert _code(gone) == (404, "ResourceNotFoundException")
