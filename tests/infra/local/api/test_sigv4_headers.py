"""The header-signed SigV4 form checked in two steps: the headers before the body is read,
then the body against what was signed. botocore signs every request, as boto3 does."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from infra.local.gateway import ADMIN_PRINCIPAL, Credential, StaticCredentialStore
from infra.local.sigv4 import (
    PendingSignature,
    SigV4Error,
    verify_authorization_header,
    verify_authorization_headers,
)

REGION = "us-east-1"
URL = "http://127.0.0.1:4566/topics/a%2Fb?qos=1"
TEMPORARY = Credential("ASIATEMPORARY", "temp-secret", ADMIN_PRINCIPAL, session_token="tok")


def _store() -> StaticCredentialStore:
    store = StaticCredentialStore()
    store.add(TEMPORARY)
    return store


def _signed(
    body: bytes,
    *,
    key: str = "test",
    secret: str = "test",
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, str]:
    request = AWSRequest("POST", URL, data=body, headers=headers or {})
    SigV4Auth(Credentials(key, secret, token), "iotdata", REGION).add_auth(request)
    signed = dict(request.headers.items())
    signed["Host"] = "127.0.0.1:4566"
    return signed


def _headers_step(headers: dict[str, str]) -> PendingSignature:
    return verify_authorization_headers(
        "POST", "/topics/a%2Fb", "qos=1", headers, _store(), service="iotdata", region=REGION
    )


def _reason(step: Callable[[], object]) -> str:
    with pytest.raises(SigV4Error) as refused:
        step()
    return refused.value.reason


def test_boto3s_request_passes_both_steps_and_only_with_its_own_body() -> None:
    headers = _signed(b"payload")
    pending = _headers_step(headers)
    assert not pending.signature_verified  # boto3 declares no payload hash: the body decides
    assert pending.check_body(b"payload").principal == ADMIN_PRINCIPAL
    assert _reason(lambda: _headers_step(headers).check_body(b"other")) == "SignatureMismatch"


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("unknown-key", "UnknownAccessKey"),
        ("temporary-key-without-token", "TokenMismatch"),
        ("temporary-key-wrong-token", "TokenMismatch"),
        ("long-term-key-with-token", "TokenMismatch"),
        ("unsigned-payload", "SignatureMismatch"),
        ("declared-hash-bad-signature", "SignatureMismatch"),
        ("declared-not-a-hash", "SignatureMismatch"),
        ("no-authorization", "MissingParameter"),
    ],
)
def test_refused_from_the_headers_alone(case: str, reason: str) -> None:
    """Each of these is refused before a byte of the body is read."""
    body = b"payload"
    declared = {"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()}
    headers = {
        "unknown-key": lambda: _signed(body, key="AKIAUNKNOWN"),
        "temporary-key-without-token": lambda: _signed(body, key="ASIATEMPORARY"),
        "temporary-key-wrong-token": lambda: _signed(body, key="ASIATEMPORARY", token="x"),
        "long-term-key-with-token": lambda: _signed(body, token="tok"),
        "unsigned-payload": lambda: _signed(
            body, headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}
        ),
        "declared-hash-bad-signature": lambda: _signed(body, secret="wrong", headers=declared),
        "declared-not-a-hash": lambda: _signed(body, headers={"X-Amz-Content-SHA256": "abc"}),
        "no-authorization": lambda: {"Host": "127.0.0.1:4566"},
    }[case]()
    assert _reason(lambda: _headers_step(headers)) == reason


def test_a_temporary_key_with_its_token_passes() -> None:
    headers = _signed(b"x", key="ASIATEMPORARY", secret="temp-secret", token="tok")
    assert _headers_step(headers).check_body(b"x") is TEMPORARY


def test_a_declared_hash_is_verified_first_and_then_must_match_the_body() -> None:
    body = b"payload"
    headers = _signed(body, headers={"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()})
    pending = _headers_step(headers)
    assert pending.signature_verified  # the signature was checked before the body
    assert pending.check_body(body).principal == ADMIN_PRINCIPAL
    assert _reason(lambda: _headers_step(headers).check_body(b"swapped")) == "SignatureMismatch"


def test_the_one_step_form_refuses_unsigned_payload_too() -> None:
    headers = _signed(b"any", headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    with pytest.raises(SigV4Error) as refused:
        verify_authorization_header(
            "POST", "/topics/a%2Fb", "qos=1", headers, b"any", _store(), service="iotdata"
        )
    assert refused.value.reason == "SignatureMismatch"
