"""What the scenarios read on the AWS side: stored message ids (a Query on the table's key,
through the edge API with the admin key) and new Cognito guest identities."""

from __future__ import annotations

from collections import Counter
from typing import Any

from benchmarks.reliability.stack_process import Info

# ---------------------------------------------------------------------- AWS-side reads


def admin_client(info: Info, service: str) -> Any:
    import boto3

    return boto3.client(
        service,
        endpoint_url=info["api"]["endpoint"],
        region_name=info["region"],
        aws_access_key_id=info["admin"]["accessKeyId"],
        aws_secret_access_key=info["admin"]["secretAccessKey"],
    )


def stored_ids(info: Info, conv: str) -> Counter[str]:
    """Message ids stored in conversation ``conv``, each with its item count: a Query on the
    table's key (never a Scan), through the edge API with the admin key."""
    dynamodb = admin_client(info, "dynamodb")
    ids: Counter[str] = Counter()
    request: dict[str, Any] = {
        "TableName": f"{info['stackName']}-messages",
        "KeyConditionExpression": "conv = :c",
        "ExpressionAttributeValues": {":c": {"S": conv}},
        "ProjectionExpression": "id",
        "ConsistentRead": True,
    }
    while True:
        page = dynamodb.query(**request)
        ids.update(item["id"]["S"] for item in page["Items"])
        if "LastEvaluatedKey" not in page:
            return ids
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


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


def room_conv(room: str) -> str:
    return f"room#{room}"


def dm_conv(a: str, b: str) -> str:
    low, high = sorted((a, b))
    return f"dm#{low}|{high}"
