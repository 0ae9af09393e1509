"""Every rule's errorAction: a failed action is logged and the sender is told.

The event is AWS IoT's error action message (``ruleName``, ``topic``, ``clientId``,
``base64OriginalPayload``, ``failures``). For a message the store rule saw on a room topic, the
sender is the ``sender`` the republish rule wrote, since the rule's own client id is not the
person's.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any

from .protocol import CLIENT_ID, error, inbox, ref_of
from .publisher import Publisher

log = logging.getLogger("iotchat.rule_errors")

STORE_ACTIONS = ("DynamoDBv2Action", "DynamoDBAction")


def _original(event: dict[str, Any]) -> dict[str, Any]:
    try:
        body = json.loads(base64.b64decode(event.get("base64OriginalPayload", ""), validate=True))
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


def handle_rule_error(publisher: Publisher, event: dict[str, Any]) -> dict[str, Any]:
    """Log one failure record (no message text) and notify the sender; returns the record."""
    original = _original(event)
    topic = str(event.get("topic", ""))
    sender = original.get("sender") if topic.startswith("chat/pub/") else event.get("clientId")
    failures = event.get("failures") or []
    failed_actions = [str(f.get("failedAction")) for f in failures if isinstance(f, dict)]
    record = {
        "ruleName": event.get("ruleName"),
        "topic": topic,
        "sender": sender,
        "ref": ref_of(original),
        "failures": failures,
    }
    log.error("rule action failed: %s", json.dumps(record, sort_keys=True))
    if isinstance(sender, str) and CLIENT_ID.match(sender):
        if any(action in STORE_ACTIONS for action in failed_actions):
            body = error("STORE_FAILED", "the message could not be stored", ref_of(original))
        else:
            body = error("INTERNAL", "the backend could not process the message", ref_of(original))
        publisher.publish(inbox(sender), body)
    return record
