"""The chat handle is the user pool's custom attribute ``custom:handle``: set at sign-up,
checked against the schema, and carried through the ID token, GetUser and AdminGetUser, as
Cognito carries a custom attribute (the AWS template declares the same schema)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from infra.aws.template import build_template
from infra.local.cognito.user_pool import CUSTOM_ATTRIBUTES
from tests.support.cognito import PASSWORD, confirm, new_user, sign_in, unsigned_client
from tests.support.stack import InProcessStack, fresh_stack

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessStack]:
    with fresh_stack(tmp_path_factory, "handles") as s:
        yield s


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def attributes(listed: list[dict[str, str]]) -> dict[str, str]:
    return {a["Name"]: a["Value"] for a in listed}


def sign_up_with(stack: InProcessStack, *extra: dict[str, str]) -> Any:
    username = f"user-{uuid.uuid4().hex[:8]}"
    return unsigned_client(stack, "cognito-idp").sign_up(
        ClientId=stack.info["cognito"]["userPoolClientId"],
        Username=username,
        Password=PASSWORD,
        UserAttributes=[{"Name": "email", "Value": f"{username}@example.com"}, *extra],
    )


def test_the_handle_travels_from_sign_up_to_tokens_and_user_reads(stack: InProcessStack) -> None:
    handle = f"ada-{uuid.uuid4().hex[:6]}"
    user = new_user(stack, handle=handle)
    assert claims(user.id_token)["custom:handle"] == handle  # a string claim, as in Cognito
    assert "custom:handle" not in claims(user.tokens["AccessToken"])

    idp = unsigned_client(stack, "cognito-idp")
    own = idp.get_user(AccessToken=user.tokens["AccessToken"])
    assert own["Username"] == user.username
    assert attributes(own["UserAttributes"])["custom:handle"] == handle

    admin = stack.client("cognito-idp").admin_get_user(
        UserPoolId=stack.info["cognito"]["userPoolId"], Username=user.username
    )
    assert attributes(admin["UserAttributes"])["custom:handle"] == handle

    # Refresh keeps it: it is the user's attribute, not the sign-in's.
    refreshed = idp.initiate_auth(
        ClientId=stack.info["cognito"]["userPoolClientId"],
        AuthFlow="REFRESH_TOKEN_AUTH",
        AuthParameters={"REFRESH_TOKEN": user.tokens["RefreshToken"]},
    )["AuthenticationResult"]
    assert claims(refreshed["IdToken"])["custom:handle"] == handle


def test_an_account_without_a_handle_still_signs_up_and_in(stack: InProcessStack) -> None:
    # Custom attributes cannot be required in Cognito; the chat gives such accounts a handle.
    user = new_user(stack)
    assert "custom:handle" not in claims(user.id_token)


def test_attributes_outside_the_schema_are_refused(stack: InProcessStack) -> None:
    for bad in (
        {"Name": "custom:role", "Value": "admin"},  # not declared
        {"Name": "custom:handle", "Value": "ab"},  # shorter than the schema's 3
        {"Name": "custom:handle", "Value": "x" * 33},  # longer than its 32
    ):
        with pytest.raises(ClientError) as caught:
            sign_up_with(stack, bad)
        assert caught.value.response["Error"]["Code"] == "InvalidParameterException", bad
    # ... while a valid one beside them is accepted.
    assert sign_up_with(stack, {"Name": "custom:handle", "Value": "abc"})["UserSub"]


def test_get_user_needs_a_valid_access_token(stack: InProcessStack) -> None:
    user = new_user(stack, handle=f"bo-{uuid.uuid4().hex[:6]}")
    idp = unsigned_client(stack, "cognito-idp")
    for token in (user.id_token, user.tokens["AccessToken"][:-4] + "AAAA", "not-a-token"):
        with pytest.raises(ClientError) as caught:
            idp.get_user(AccessToken=token)
        assert caught.value.response["Error"]["Code"] == "NotAuthorizedException"
    assert idp.get_user(AccessToken=user.tokens["AccessToken"])["Username"] == user.username


def test_the_aws_user_pool_declares_the_same_custom_attributes() -> None:
    pool = build_template()["Resources"]["UserPool"]["Properties"]
    declared = {
        f"custom:{a['Name']}": a
        for a in pool["Schema"]
        if a["Name"] not in ("email", "sub") and "StringAttributeConstraints" in a
    }
    assert set(declared) == set(CUSTOM_ATTRIBUTES)
    for name, (low, high) in CUSTOM_ATTRIBUTES.items():
        schema = declared[name]
        assert schema["AttributeDataType"] == "String" and schema["Mutable"] is False
        constraints = schema["StringAttributeConstraints"]
        assert (int(constraints["MinLength"]), int(constraints["MaxLength"])) == (low, high)


def test_sign_in_and_confirm_are_unchanged_by_handles(stack: InProcessStack) -> None:
    username = f"user-{uuid.uuid4().hex[:8]}"
    unsigned_client(stack, "cognito-idp").sign_up(
        ClientId=stack.info["cognito"]["userPoolClientId"],
        Username=username,
        Password=PASSWORD,
        UserAttributes=[
            {"Name": "email", "Value": f"{username}@example.com"},
            {"Name": "custom:handle", "Value": "cy-handle"},
        ],
    )
    confirm(stack, username)
    assert claims(sign_in(stack, username)["IdToken"])["custom:handle"] == "cy-handle"
