"""Shared helpers for the local Cognito tests: boto3 clients, the outbox, a signed-in user."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore import UNSIGNED
from botocore.config import Config

from tests.support.stack import InProcessStack

PASSWORD = "Correct-horse-9"


def unsigned_client(stack: InProcessStack, service: str) -> Any:
    """Cognito's sign-up, sign-in and GetId calls are unsigned in AWS: so are these."""
    return boto3.client(
        service,
        endpoint_url=stack.endpoint,
        region_name=stack.info["region"],
        config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}),
    )


def outbox_codes(state_dir: Path, username: str) -> list[str]:
    """Every verification code "mailed" to ``username``, oldest first."""
    path = state_dir / "cognito" / "outbox.jsonl"
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return [r["code"] for r in records if r["username"] == username]


@dataclass
class User:
    username: str
    email: str
    tokens: dict[str, Any]

    @property
    def id_token(self) -> str:
        return self.tokens["IdToken"]


def sign_up(
    stack: InProcessStack, username: str | None = None, handle: str | None = None
) -> tuple[str, str]:
    """Sign up ``username`` (a fresh one by default), with the chat ``handle`` if given."""
    idp = unsigned_client(stack, "cognito-idp")
    username = username or f"user-{uuid.uuid4().hex[:8]}"
    email = f"{username}@example.com"
    attributes = [{"Name": "email", "Value": email}]
    if handle is not None:
        attributes.append({"Name": "custom:handle", "Value": handle})
    idp.sign_up(
        ClientId=stack.info["cognito"]["userPoolClientId"],
        Username=username,
        Password=PASSWORD,
        UserAttributes=attributes,
    )
    return username, email


def confirm(stack: InProcessStack, username: str) -> None:
    idp = unsigned_client(stack, "cognito-idp")
    (code,) = outbox_codes(stack.stack.state_dir, username)[-1:]
    idp.confirm_sign_up(
        ClientId=stack.info["cognito"]["userPoolClientId"], Username=username, ConfirmationCode=code
    )


def sign_in(stack: InProcessStack, username: str, password: str = PASSWORD) -> dict[str, Any]:
    idp = unsigned_client(stack, "cognito-idp")
    response = idp.initiate_auth(
        ClientId=stack.info["cognito"]["userPoolClientId"],
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": username, "PASSWORD": password},
    )
    return response["AuthenticationResult"]


def new_user(stack: InProcessStack, handle: str | None = None) -> User:
    username, email = sign_up(stack, handle=handle)
    confirm(stack, username)
    return User(username, email, sign_in(stack, username))


def logins(stack: InProcessStack, id_token: str) -> dict[str, str]:
    pool = stack.info["cognito"]["userPoolId"]
    return {f"cognito-idp.{stack.info['region']}.amazonaws.com/{pool}": id_token}


def guest_credentials(stack: InProcessStack) -> tuple[str, dict[str, Any]]:
    """A new guest identity id and its temporary credentials."""
    return _identity_credentials(stack, None)


def signed_in_credentials(stack: InProcessStack) -> tuple[str, dict[str, Any]]:
    """A new user signs up, signs in and gets credentials for their identity (the first
    credentials attach the user IoT policy to it)."""
    return _identity_credentials(stack, logins(stack, new_user(stack).id_token))


def _identity_credentials(
    stack: InProcessStack, login: dict[str, str] | None
) -> tuple[str, dict[str, Any]]:
    identity = unsigned_client(stack, "cognito-identity")
    extra: dict[str, Any] = {} if login is None else {"Logins": login}
    pool = stack.info["cognito"]["identityPoolId"]
    identity_id = identity.get_id(IdentityPoolId=pool, **extra)["IdentityId"]
    creds = identity.get_credentials_for_identity(IdentityId=identity_id, **extra)
    return identity_id, creds["Credentials"]


def wss_connection(
    stack: InProcessStack, client_id: str, creds: dict[str, Any], endpoint: str = "127.0.0.1"
) -> Any:
    """An awsiotsdk MQTT 3 connection over SigV4 WebSocket, signed with Cognito credentials
    (not yet connected)."""
    import awscrt.auth
    from awsiot import mqtt_connection_builder

    provider = awscrt.auth.AwsCredentialsProvider.new_static(
        creds["AccessKeyId"], creds["SecretKey"], creds["SessionToken"]
    )
    return mqtt_connection_builder.websockets_with_default_aws_signing(
        region=stack.info["region"],
        credentials_provider=provider,
        endpoint=endpoint,
        port=stack.info["iot"]["wssPort"],
        ca_filepath=stack.info["iot"]["caFile"],
        client_id=client_id,
        clean_session=True,
        keep_alive_secs=30,
    )
