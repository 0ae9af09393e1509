"""The local Cognito's pieces without a stack: tokens, attachments, credential persistence."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from infra.local.cognito import LocalCognito, PolicyAttachments, TokenError, TokenSigner
from infra.local.identity import Credential, Principal
from infra.local.stack import PRUNE_EVERY, LocalStack
from tests.support.stack import stack_options

ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Abcdefghi"


def test_signing_key_is_kept_per_state_dir(tmp_path: Path) -> None:
    signer = TokenSigner.load_or_create(tmp_path / "a")
    token = signer.sign({"iss": ISSUER, "aud": "c", "token_use": "id", "exp": time.time() + 60})
    again = TokenSigner.load_or_create(tmp_path / "a")
    assert again.kid == signer.kid
    assert again.verify(token, issuer=ISSUER, audience="c", token_use="id")["aud"] == "c"
    assert (tmp_path / "a" / "signing-key.pem").stat().st_mode & 0o077 == 0
    other = TokenSigner.load_or_create(tmp_path / "b")
    with pytest.raises(TokenError):
        other.verify(token, issuer=ISSUER)
    (jwk,) = signer.jwks()["keys"]
    assert (jwk["kid"], jwk["alg"], jwk["kty"]) == (signer.kid, "RS256", "RSA")


def test_attachments_persist_notify_and_are_idempotent(tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []
    store = PolicyAttachments.open(tmp_path)
    store.on_change(lambda policy, target: seen.append((policy, target)))
    assert store.attach_policy("p", "us-east-1:x") is True
    assert store.attach_policy("p", "us-east-1:x") is False
    assert seen == [("p", "us-east-1:x")]
    assert PolicyAttachments.open(tmp_path).list_attached("us-east-1:x") == ["p"]
    assert store.detach_policy("p", "us-east-1:x") is True
    assert PolicyAttachments.open(tmp_path).list_attached("us-east-1:x") == []
    assert seen[-1] == ("p", "us-east-1:x")


def test_only_unexpired_credentials_come_back_after_a_restart(tmp_path: Path) -> None:
    issued: list[Credential] = []
    cognito = LocalCognito.load_or_create(tmp_path, "us-east-1", issued.append)
    pool = cognito.identity_pool
    guest = pool.get_id(pool.pool_id, None)["IdentityId"]
    live = pool.get_credentials_for_identity(guest, None)["Credentials"]
    pool.credential_lifetime = -1.0  # already expired when issued
    dead = pool.get_credentials_for_identity(guest, None)["Credentials"]

    restored: list[Credential] = []
    LocalCognito.load_or_create(tmp_path, "us-east-1", restored.append)
    assert [c.access_key_id for c in restored] == [live["AccessKeyId"]]
    assert dead["AccessKeyId"] in {c.access_key_id for c in issued}
    assert restored[0].principal.identifier == guest


def test_stack_drops_long_expired_cognito_keys(tmp_path: Path) -> None:
    stack = LocalStack(stack_options(tmp_path))
    principal = Principal("cognito", "us-east-1:x")
    old = time.time() - 10 * 3600
    stack._add_temporary_credential(Credential("ASIAOLD", "s", principal, "t", old))
    for n in range(PRUNE_EVERY - 1):
        stack._add_temporary_credential(
            Credential(f"ASIA{n}", "s", principal, "t", time.time() + 3600)
        )
    assert stack.credentials.lookup_access_key("ASIAOLD") is None
    assert stack.credentials.lookup_access_key("ASIA0") is not None
    assert stack.credentials.lookup_access_key("test") is not None  # the admin stays
