"""The chat's Lambda handlers: AWS clients from the environment, then the domain code.

Clients are built once per worker (a warm invoke reuses them). Locally ``AWS_ENDPOINT_URL``
points every client at the stack's edge API; on AWS, ``IOT_DATA_ENDPOINT`` names the account's
IoT data endpoint.

Each handler logs one line per event with its outcome (what was asked, by whom, and what came
of it; never message text), so ``iotchat logs`` tells what a function did without a debugger.
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
from lambdas.chat.queries import queries as query_handler
from lambdas.chat.rule_errors import handle_rule_error
from lambdas.chat.store import ChatStore

logging.getLogger().setLevel(logging.INFO)
log = logging.getLogger("iotchat.handlers")


class _Outcome:
    """A publisher that passes everything on and remembers what it sent and the error codes."""

    def __init__(self, publisher: Any) -> None:
        self.publisher = publisher
        self.sent = 0
        self.errors: list[str] = []

    def publish(self, topic: str, body: dict[str, Any]) -> None:
        self.publisher.publish(topic, body)
        self.sent += 1
        if body.get("type") == "error":
            self.errors.append(str(body.get("code")))

    def describe(self) -> str:
        if self.errors:
            return "refused " + ",".join(self.errors)
        return f"ok, {self.sent} published"


def _command_type(event: dict[str, Any]) -> str:
    """The command's ``type`` for the log line (``?`` when the payload is not a request)."""
    import base64
    import binascii
    import json

    try:
        request = json.loads(base64.b64decode(event.get("payload") or "", validate=True))
    except (binascii.Error, ValueError, TypeError):
        return "?"
    kind = request.get("type") if isinstance(request, dict) else None
    return kind[:40] if isinstance(kind, str) else "?"


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
    outcome = _Outcome(_publisher())
    kind, sender = _command_type(event), event.get("sender")
    try:
        Commands(_store(), outcome, tokens=_tokens()).handle(event)
    except Exception:
        log.error("%s from %s -> failed (Lambda retries it)", kind, sender)
        raise
    log.info("%s from %s -> %s", kind, sender, outcome.describe())


def queries(event: dict[str, Any], context: Any) -> None:
    """who and whois, on their own function so a queue of commands never delays them
    (lambdas/chat/queries.py)."""
    outcome = _Outcome(_publisher())
    kind, sender = _command_type(event), event.get("sender")
    try:
        query_handler(_store(), outcome).handle(event)
    except Exception:
        log.error("%s from %s -> failed (Lambda retries it)", kind, sender)
        raise
    log.info("%s from %s -> %s", kind, sender, outcome.describe())


def presence(event: dict[str, Any], context: Any) -> dict[str, int]:
    published = handle_lifecycle(_store(), _publisher(), event)
    log.info("%s of %s -> %d published", event.get("eventType"), event.get("clientId"), published)
    return {"published": published}


def stream(event: dict[str, Any], context: Any) -> dict[str, int]:
    published = handle_batch(_publisher(), event)
    records = len(event.get("Records", []))
    log.info("%d record(s) -> %d room update(s) published", records, published)
    return {"published": published}


def rule_errors(event: dict[str, Any], context: Any) -> None:
    outcome = _Outcome(_publisher())
    handle_rule_error(outcome, event)
    log.info("%s failed on %s -> %s", event.get("ruleName"), event.get("topic"), outcome.describe())
