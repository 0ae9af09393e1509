"""What the scenarios read on the AWS side: stored message ids (a Query on the table's key,
through the edge API with the admin key) and new Cognito guest identities."""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.reliability.stack_process import Info
from tests.support.messages_table import item_ids
from tests.support.stack import aws_client


def admin_client(info: Info, service: str) -> Any:
    """A boto3 client for the stack's edge API with the admin key from its stack file."""
    admin = info["admin"]
    return aws_client(info, service, admin["accessKeyId"], admin["secretAccessKey"])


def stored_ids(info: Info, conv: str) -> Counter[str]:
    """Message ids stored in conversation ``conv``, each with its item count: a Query on the
    table's key (never a Scan), through the edge API with the admin key."""
    dynamodb = admin_client(info, "dynamodb")
    return item_ids(dynamodb, f"{info['stackName']}-messages", conv)


def signed_in_identity(info: Info, state_dir: Path) -> tuple[str, dict[str, Any]]:
    """A new user signs up (the code read from the stack's outbox), signs in, and gets their
    identity's credentials: direct messages are for signed-in people (docs/protocol.md)."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    from tests.support.cognito import PASSWORD, outbox_codes

    def client(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=info["api"]["endpoint"],
            region_name=info["region"],
            config=Config(signature_version=UNSIGNED),
        )

    idp, identity = client("cognito-idp"), client("cognito-identity")
    app = info["cognito"]["userPoolClientId"]
    username = f"user-{uuid.uuid4().hex[:8]}"
    email = [{"Name": "email", "Value": f"{username}@example.com"}]
    idp.sign_up(ClientId=app, Username=username, Password=PASSWORD, UserAttributes=email)
    code = outbox_codes(state_dir, username)[-1]
    idp.confirm_sign_up(ClientId=app, Username=username, ConfirmationCode=code)
    tokens = idp.initiate_auth(
        ClientId=app,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": username, "PASSWORD": PASSWORD},
    )["AuthenticationResult"]
    pool = info["cognito"]["userPoolId"]
    logins = {f"cognito-idp.{info['region']}.amazonaws.com/{pool}": tokens["IdToken"]}
    pool_id = info["cognito"]["identityPoolId"]
    identity_id = identity.get_id(IdentityPoolId=pool_id, Logins=logins)["IdentityId"]
    creds = identity.get_credentials_for_identity(IdentityId=identity_id, Logins=logins)
    return identity_id, creds["Credentials"]


def guest_identity(info: Info) -> tuple[str, dict[str, Any]]:
    """A new Cognito guest identity and its temporary credentials (unsigned calls, as AWS)."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    client = boto3.client(
        "cognito-identity",
        endpoint_url=info["api"]["endpoint"],
        region_name=info["region"],
        config=Config(signature_version=UNSIGNED),
    )
    identity_id = client.get_id(IdentityPoolId=info["cognito"]["identityPoolId"])["IdentityId"]
    creds = client.get_credentials_for_identity(IdentityId=identity_id)["Credentials"]
    return identity_id, creds
