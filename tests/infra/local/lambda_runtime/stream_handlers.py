"""Lambda handlers the event source mapping tests map to Kinesis streams."""

from __future__ import annotations

import base64
import json
import os
import time
from typing import Any


def _payloads(event: dict[str, Any]) -> list[Any]:
    return [json.loads(base64.b64decode(r["kinesis"]["data"])) for r in event["Records"]]


def record_batch(event: dict[str, Any], context: Any) -> None:
    """Appends one line per invocation: when it ran, the payloads and the raw event, so a test
    sees every batch (retries included) in order. Fails while a record asks it to: a payload
    ``{"failTimes": n}`` fails the first n invocations that carry it, ``{"fail": true}``
    fails every one."""
    payloads = _payloads(event)
    with open(os.environ["RECORD_FILE"], "a", encoding="utf-8") as out:
        out.write(json.dumps({"at": time.time(), "payloads": payloads, "event": event}) + "\n")
    counts = os.environ["RECORD_FILE"] + ".attempts"
    for payload in payloads:
        if payload.get("fail"):
            raise ValueError(f"record {payload['id']} is poison")
        if payload.get("failTimes"):
            with open(counts, "a", encoding="utf-8") as out:
                out.write(payload["id"] + "\n")
            with open(counts, encoding="utf-8") as seen:
                attempts = seen.read().split().count(payload["id"])
            if attempts <= payload["failTimes"]:
                raise RuntimeError(f"attempt {attempts} at {payload['id']} fails")
