"""The ``chat/stream`` consumer: a Kinesis batch folded into one ``activity`` update per room.

Typing indicators and telemetry are many small events whose individual delivery does not
matter; per batch, each room gets who typed and each device's latest reading.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any

from .protocol import CLIENT_ID, ROOM, VERSION, room_events_topic
from .publisher import Publisher

log = logging.getLogger("iotchat.activity")


def _record_body(record: dict[str, Any]) -> dict[str, Any] | None:
    try:
        body = json.loads(base64.b64decode(record["kinesis"]["data"], validate=True))
    except (KeyError, TypeError, binascii.Error, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict):
        return None
    room, sender = body.get("room"), body.get("sender")
    if not isinstance(room, str) or not ROOM.match(room):
        return None
    if not isinstance(sender, str) or not CLIENT_ID.match(sender):
        return None
    if body.get("type") not in ("typing", "telemetry") or not isinstance(body.get("ts"), int):
        return None
    return body


def aggregate(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Room -> activity update, in record order (the stream's order per shard)."""
    rooms: dict[str, dict[str, Any]] = {}
    skipped = 0
    for record in records:
        body = _record_body(record)
        if body is None:
            skipped += 1
            continue
        update = rooms.setdefault(
            body["room"],
            {"v": VERSION, "type": "activity", "room": body["room"], "typing": [], "telemetry": {}},
        )
        if body["type"] == "typing":
            if body["sender"] not in update["typing"]:
                update["typing"].append(body["sender"])
        elif isinstance(body.get("data"), dict):
            update["telemetry"][body["sender"]] = body["data"]
        update["ts"] = max(update.get("ts", 0), body["ts"])
    if skipped:
        log.warning("skipped %d record(s) that are not chat stream events", skipped)
    return rooms


def handle_batch(publisher: Publisher, event: dict[str, Any]) -> int:
    """Publish one update per room of the batch; returns how many were published."""
    updates = aggregate(event.get("Records", []))
    for room, update in updates.items():
        publisher.publish(room_events_topic(room), update)
    return len(updates)
