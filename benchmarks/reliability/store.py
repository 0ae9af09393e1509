"""What the scenarios read on the AWS side: stored message ids (a Query on the table's key,
through the edge API with the admin key) and new Cognito guest identities."""

from __future__ import annotations

from collections import Counter
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
