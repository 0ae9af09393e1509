"""The local Cognito through real boto3 clients on the edge API, as app code would call it.

User pool: sign-up with a code delivered only to the outbox file, confirm, sign-in, refresh,
and AWS's refusals. Identity pool: distinct, fresh, expiring credentials per identity for
guests and signed-in users, verified logins, the IoT policy attached on first sign-in, and
state that survives a restart.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric import rsa

from infra.local.cognito import USER_POLICY_NAME, TokenSigner
from tests.support.cognito import (
    PASSWORD,
    confirm,
    guest_credentials,
    logins,
    new_user,
    outbox_codes,
    sign_in,
    sign_up,
    unsigned_client,
)
from tests.support.stack import InProcessStack, fresh_stack, run_stack_in_thread, stack_options

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessStack]:
    with fresh_stack(tmp_path_factory, "cognito") as s:
        yield s


def error_code(excinfo: pytest.ExceptionInfo[ClientError]) -> str:
    return excinfo.value.response["Error"]["Code"]


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_stack_file_names_the_pools_in_aws_formats(stack: InProcessStack) -> None:
    ids = stack.info["cognito"]
    assert set(ids) == {"identityPoolId", "userPoolId", "userPoolClientId"}
    assert re.fullmatch(r"us-east-1:[0-9a-f-]{36}", ids["identityPoolId"])
    assert re.fullmatch(r"us-east-1_[A-Za-z0-9]{9}", ids["userPoolId"])
    assert re.fullmatch(r"[a-z0-9]{26}", ids["userPoolClientId"])
    on_disk = json.loads((stack.stack.state_dir / "stack.json").read_text())
    assert on_disk["cognito"] == ids


def test_guests_get_their_own_fresh_expiring_credentials(stack: InProcessStack) -> None:
    identity = unsigned_client(stack, "cognito-identity")
    pool_id = stack.info["cognito"]["identityPoolId"]
    first = identity.get_id(IdentityPoolId=pool_id)["IdentityId"]
    second = identity.get_id(IdentityPoolId=pool_id)["IdentityId"]
    assert first != second
    assert re.fullmatch(r"us-east-1:[0-9a-f-]{36}", first)

    a1 = identity.get_credentials_for_identity(IdentityId=first)
    a2 = identity.get_credentials_for_identity(IdentityId=first)
    b1 = identity.get_credentials_for_identity(IdentityId=second)
    assert a1["IdentityId"] == first and b1["IdentityId"] == second
    keys = [c["Credentials"] for c in (a1, a2, b1)]
    assert len({c["AccessKeyId"] for c in keys}) == 3
    assert len({c["SecretKey"] for c in keys}) == 3
    assert len({c["SessionToken"] for c in keys}) == 3
    for creds in keys:
        assert creds["AccessKeyId"].startswith("ASIA") and len(creds["AccessKeyId"]) == 20
        remaining = (creds["Expiration"] - datetime.now(UTC)).total_seconds()
        assert 3500 < remaining <= 3600

    # Each key maps back to its own identity in the gateway's credential store.
    store = stack.stack.credentials
    principal = store.lookup_access_key(keys[0]["AccessKeyId"]).principal
    assert (principal.kind, principal.identifier) == ("cognito", first)
    assert principal.attribute("cognito-identity.amazonaws.com:amr") == "unauthenticated"
    assert principal.attribute("cognito-identity.amazonaws.com:sub") == first
    assert store.lookup_access_key(keys[2]["AccessKeyId"]).principal.identifier == second
    # A guest gets no IoT policy attachment: its role's policy is all it needs.
    assert stack.stack.cognito.attachments.list_attached(first) == []


def test_unknown_pool_and_identity_are_not_found(stack: InProcessStack) -> None:
    identity = unsigned_client(stack, "cognito-identity")
    with pytest.raises(ClientError) as refused:
        identity.get_id(IdentityPoolId="us-east-1:00000000-0000-0000-0000-000000000000")
    assert error_code(refused) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as refused:
        identity.get_credentials_for_identity(
            IdentityId="us-east-1:00000000-0000-0000-0000-000000000000"
        )
    assert error_code(refused) == "ResourceNotFoundException"


def test_sign_up_confirm_sign_in_maps_to_one_identity(stack: InProcessStack) -> None:
    username, email = sign_up(stack)
    codes = outbox_codes(stack.stack.state_dir, username)
    assert len(codes) == 1 and re.fullmatch(r"\d{6}", codes[0])
    confirm(stack, username)
    tokens = sign_in(stack, username)
    assert tokens["TokenType"] == "Bearer" and tokens["ExpiresIn"] == 3600
    ids = stack.info["cognito"]
    id_claims = claims(tokens["IdToken"])
    assert id_claims["iss"] == f"https://cognito-idp.us-east-1.amazonaws.com/{ids['userPoolId']}"
    assert id_claims["aud"] == ids["userPoolClientId"]
    assert id_claims["token_use"] == "id"
    assert id_claims["cognito:username"] == username
    assert id_claims["email"] == email and id_claims["email_verified"] is True
    assert id_claims["exp"] - id_claims["iat"] == 3600
    assert claims(tokens["AccessToken"])["token_use"] == "access"

    identity = unsigned_client(stack, "cognito-identity")
    first = identity.get_id(
        IdentityPoolId=ids["identityPoolId"], Logins=logins(stack, tokens["IdToken"])
    )["IdentityId"]
    creds = identity.get_credentials_for_identity(
        IdentityId=first, Logins=logins(stack, tokens["IdToken"])
    )["Credentials"]
    principal = stack.stack.credentials.lookup_access_key(creds["AccessKeyId"]).principal
    assert principal.identifier == first
    assert principal.attribute("cognito-identity.amazonaws.com:amr") == "authenticated"
    assert stack.stack.cognito.attachments.list_attached(first) == [USER_POLICY_NAME]

    # Signing in again (new tokens) leads to the same identity, still with one attachment.
    again = sign_in(stack, username)
    second = identity.get_id(
        IdentityPoolId=ids["identityPoolId"], Logins=logins(stack, again["IdToken"])
    )["IdentityId"]
    assert second == first
    identity.get_credentials_for_identity(IdentityId=first, Logins=logins(stack, again["IdToken"]))
    assert stack.stack.cognito.attachments.list_attached(first) == [USER_POLICY_NAME]

    # Without its login, a signed-in identity's credentials are refused.
    with pytest.raises(ClientError) as refused:
        identity.get_credentials_for_identity(IdentityId=first)
    assert error_code(refused) == "NotAuthorizedException"

    token = identity.get_open_id_token(IdentityId=first, Logins=logins(stack, again["IdToken"]))
    open_id = claims(token["Token"])
    assert (open_id["sub"], open_id["aud"]) == (first, ids["identityPoolId"])
    assert open_id["amr"][0] == "authenticated"


def test_user_pool_refusals_use_aws_error_types(stack: InProcessStack) -> None:
    idp = unsigned_client(stack, "cognito-idp")
    client_id = stack.info["cognito"]["userPoolClientId"]
    username, _ = sign_up(stack)

    with pytest.raises(ClientError) as refused:
        sign_up(stack, username)
    assert error_code(refused) == "UsernameExistsException"
    with pytest.raises(ClientError) as refused:
        sign_in(stack, username)
    assert error_code(refused) == "UserNotConfirmedException"
    (code,) = outbox_codes(stack.stack.state_dir, username)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    with pytest.raises(ClientError) as refused:
        idp.confirm_sign_up(ClientId=client_id, Username=username, ConfirmationCode=wrong)
    assert error_code(refused) == "CodeMismatchException"

    # A resent code replaces the first one.
    delivery = idp.resend_confirmation_code(ClientId=client_id, Username=username)
    assert delivery["CodeDeliveryDetails"]["DeliveryMedium"] == "EMAIL"
    codes = outbox_codes(stack.stack.state_dir, username)
    assert len(codes) == 2
    if codes[0] != codes[1]:
        with pytest.raises(ClientError) as refused:
            idp.confirm_sign_up(ClientId=client_id, Username=username, ConfirmationCode=codes[0])
        assert error_code(refused) == "CodeMismatchException"
    confirm(stack, username)

    with pytest.raises(ClientError) as refused:
        sign_in(stack, username, PASSWORD + "x")
    assert error_code(refused) == "NotAuthorizedException"
    with pytest.raises(ClientError) as refused:
        sign_in(stack, "nobody-" + username)
    assert error_code(refused) == "NotAuthorizedException"
    assert sign_in(stack, username)["IdToken"]  # the legitimate sign-in next to them
    # Usernames are case-insensitive: another spelling is the same user, not a new one.
    assert claims(sign_in(stack, username.upper())["IdToken"])["cognito:username"] == username
    with pytest.raises(ClientError) as refused:
        sign_up(stack, username.upper())
    assert error_code(refused) == "UsernameExistsException"

    with pytest.raises(ClientError) as refused:
        idp.sign_up(
            ClientId=client_id,
            Username=username + "-weak",
            Password="password",
            UserAttributes=[{"Name": "email", "Value": "weak@example.com"}],
        )
    assert error_code(refused) == "InvalidPasswordException"
    with pytest.raises(ClientError) as refused:
        idp.sign_up(
            ClientId=client_id,
            Username=username + "-nomail",
            Password=PASSWORD,
            UserAttributes=[],
        )
    assert error_code(refused) == "InvalidParameterException"
    with pytest.raises(ClientError) as refused:
        idp.initiate_auth(
            ClientId="a" * 26,
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": username, "PASSWORD": PASSWORD},
        )
    assert error_code(refused) == "ResourceNotFoundException"


def test_refresh_token_gives_new_tokens(stack: InProcessStack) -> None:
    user = new_user(stack)
    idp = unsigned_client(stack, "cognito-idp")
    client_id = stack.info["cognito"]["userPoolClientId"]
    refreshed = idp.initiate_auth(
        ClientId=client_id,
        AuthFlow="REFRESH_TOKEN_AUTH",
        AuthParameters={"REFRESH_TOKEN": user.tokens["RefreshToken"]},
    )["AuthenticationResult"]
    assert "RefreshToken" not in refreshed
    assert claims(refreshed["IdToken"])["sub"] == claims(user.id_token)["sub"]
    assert claims(refreshed["IdToken"])["jti"] != claims(user.id_token)["jti"]
    identity = unsigned_client(stack, "cognito-identity")
    pool_id = stack.info["cognito"]["identityPoolId"]
    by_refreshed = identity.get_id(
        IdentityPoolId=pool_id, Logins=logins(stack, refreshed["IdToken"])
    )
    by_original = identity.get_id(IdentityPoolId=pool_id, Logins=logins(stack, user.id_token))
    assert by_refreshed["IdentityId"] == by_original["IdentityId"]
    with pytest.raises(ClientError) as refused:
        idp.initiate_auth(
            ClientId=client_id,
            AuthFlow="REFRESH_TOKEN_AUTH",
            AuthParameters={"REFRESH_TOKEN": user.tokens["RefreshToken"] + "x"},
        )
    assert error_code(refused) == "NotAuthorizedException"


def forged_tokens(stack: InProcessStack, good: str) -> dict[str, str]:
    """ID tokens that must not name an identity, each wrong in one way."""
    real = stack.stack.cognito.signer
    body = claims(good)
    header, _, signature = good.split(".")
    other_key = TokenSigner(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    other_key.kid = real.kid  # an attacker can copy the kid; not the key
    tampered = dict(body, sub="00000000-0000-0000-0000-000000000000")
    tampered_payload = base64.urlsafe_b64encode(json.dumps(tampered).encode()).rstrip(b"=")
    now = int(time.time())
    return {
        "foreign key": other_key.sign(body),
        "tampered payload": f"{header}.{tampered_payload.decode()}.{signature}",
        "expired": real.sign(dict(body, iat=now - 7200, exp=now - 3600)),
        "another client id": real.sign(dict(body, aud="b" * 26)),
        "another issuer": real.sign(
            dict(body, iss="https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Other0000")
        ),
        "access token": real.sign(dict(body, token_use="access")),
        "not a jwt": "not-a-token",
    }


def test_forged_expired_and_foreign_id_tokens_are_refused(stack: InProcessStack) -> None:
    user = new_user(stack)
    identity = unsigned_client(stack, "cognito-identity")
    pool_id = stack.info["cognito"]["identityPoolId"]
    legit = identity.get_id(IdentityPoolId=pool_id, Logins=logins(stack, user.id_token))
    for name, token in forged_tokens(stack, user.id_token).items():
        with pytest.raises(ClientError) as refused:
            identity.get_id(IdentityPoolId=pool_id, Logins=logins(stack, token))
        assert error_code(refused) == "NotAuthorizedException", name
        with pytest.raises(ClientError) as refused:
            identity.get_credentials_for_identity(
                IdentityId=legit["IdentityId"], Logins=logins(stack, token)
            )
        assert error_code(refused) == "NotAuthorizedException", name
    with pytest.raises(ClientError) as refused:
        identity.get_id(
            IdentityPoolId=pool_id,
            Logins={"cognito-idp.us-east-1.amazonaws.com/us-east-1_Other0000": user.id_token},
        )
    assert error_code(refused) == "NotAuthorizedException"


def test_a_login_cannot_take_over_another_identity(stack: InProcessStack) -> None:
    alice, bob = new_user(stack), new_user(stack)
    identity = unsigned_client(stack, "cognito-identity")
    pool_id = stack.info["cognito"]["identityPoolId"]
    alice_id = identity.get_id(IdentityPoolId=pool_id, Logins=logins(stack, alice.id_token))
    identity.get_id(IdentityPoolId=pool_id, Logins=logins(stack, bob.id_token))
    with pytest.raises(ClientError) as refused:
        identity.get_credentials_for_identity(
            IdentityId=alice_id["IdentityId"], Logins=logins(stack, bob.id_token)
        )
    assert error_code(refused) == "NotAuthorizedException"


def test_restart_keeps_users_identities_and_live_credentials(tmp_path: Path) -> None:
    options = stack_options(tmp_path / "state")
    with run_stack_in_thread(options) as first:
        user = new_user(first)
        identity = unsigned_client(first, "cognito-identity")
        pool_id = first.info["cognito"]["identityPoolId"]
        signed_in = identity.get_id(IdentityPoolId=pool_id, Logins=logins(first, user.id_token))
        identity.get_credentials_for_identity(
            IdentityId=signed_in["IdentityId"], Logins=logins(first, user.id_token)
        )
        guest_id, guest = guest_credentials(first)
        ids = first.info["cognito"]
    with run_stack_in_thread(options) as second:
        assert second.info["cognito"] == ids
        # Users sign in with the same password; the old ID token still verifies.
        tokens = sign_in(second, user.username)
        identity = unsigned_client(second, "cognito-identity")
        for token in (tokens["IdToken"], user.id_token):
            again = identity.get_id(IdentityPoolId=pool_id, Logins=logins(second, token))
            assert again["IdentityId"] == signed_in["IdentityId"]
        # The guest keeps its identity id and the credentials issued before the restart.
        assert identity.get_credentials_for_identity(IdentityId=guest_id)["IdentityId"] == guest_id
        kept = second.stack.credentials.lookup_access_key(guest["AccessKeyId"])
        assert kept is not None and kept.principal.identifier == guest_id
        assert second.stack.cognito.attachments.list_attached(signed_in["IdentityId"]) == [
            USER_POLICY_NAME
        ]
