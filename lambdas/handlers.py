"""The chat's Lambda handlers: AWS clients from the environment, then the domain code.

Clients are built once per worker (a warm invoke reuses them). Locally ``AWS_ENDPOINT_URL``
points every client at the stack's edge API; on AWS, ``IOT_DATA_ENDPOINT`` names the account's
IoT data endpoint.
"""

from __future__ import annotations

import logging
import os
from functools import cache
from typing import Any

from lambdas.chat.activity import handle_batch
from lambdas.chat.commands import Commands
from lambdas.chat.people import CognitoTokenCheck
from lambdas.chat.presence import handle_lifecycle
from lambdas.chat.protocol import RETENTION_DAYS
from lambdas.chat.publisher import IotDataPublisher
from lambdas.chat.rule_errors import handle_rule_error
from lambdas.chat.store import ChatStore

logging.getLogger().setLevel(logging.INFO)


@cache
def _publisher() -> IotDataPublisher:
    import boto3

    endpoint = os.environ.get("IOT_DATA_ENDPOINT")
    client = boto3.client("iot-data", endpoint_url=f"https://{endpoint}" if endpoint else None)
    return IotDataPublisher(client)


@cache
def _store() -> ChatStore:
    import boto3

    return ChatStore(
        boto3.client("dynamodb"),
        os.environ["MESSAGES_TABLE"],
        os.environ["STATE_TABLE"],
        int(os.environ.get("RETENTION_DAYS", RETENTION_DAYS)),
    )


@cache
def _tokens() -> CognitoTokenCheck | None:
    """Checks sign-in tokens with the stack's identity pool; None where none is configured
    (then ``hello`` with a token is refused, and everyone is a guest or a device)."""
    import boto3

    pool = os.environ.get("IDENTITY_POOL_ID")
    provider = os.environ.get("USER_POOL_PROVIDER")
    if not pool or not provider:
        return None
    return CognitoTokenCheck(boto3.client("cognito-identity"), pool, provider)


def commands(event: dict[str, Any], context: Any) -> None:
    Commands(_store(), _publisher(), tokens=_tokens()).handle(event)


def presence(event: dict[str, Any], context: Any) -> dict[str, int]:
    return {"published": handle_lifecycle(_store(), _publisher(), event)}


def stream(event: dict[str, Any], context: Any) -> dict[str, int]:
    return {"published": handle_batch(_publisher(), event)}


def rule_errors(event: dict[str, Any], context: Any) -> None:
    handle_rule_error(_publisher(), event)
