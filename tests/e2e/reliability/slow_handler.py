"""The commands Lambda, slowed down on request so a test can SIGKILL its worker mid-invoke.

A direct message whose text is ``reliability:kill-before`` or ``reliability:kill-after`` makes
the first attempt write the worker's pid to ``<markers>/<id>.pid`` and then wait to be killed:
before handling the message (nothing stored yet) or after (stored and delivered, so the retry
meets the conditional write). Every attempt leaves ``<id>.attempt<n>``. Anything else, and
every later attempt, is the real handler at full speed.
"""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

from lambdas import handlers

MARKER_ENV = "IOTCHAT_RELIABILITY_MARKERS"
# Longer than any test waits: the worker is meant to be killed, not to wake up.
HOLD_SECONDS = 60.0


def _mode(event: dict[str, Any]) -> tuple[str, str] | None:
    try:
        body = json.loads(base64.b64decode(event["payload"]))
    except (KeyError, ValueError, TypeError):
        return None
    text = body.get("body") if isinstance(body, dict) else None
    if isinstance(text, str) and text.startswith("reliability:kill-"):
        return str(body.get("id")), text.removeprefix("reliability:kill-")
    return None


def _hold(markers: Path, message_id: str) -> None:
    (markers / f"{message_id}.pid").write_text(str(os.getpid()))
    time.sleep(HOLD_SECONDS)


def commands(event: dict[str, Any], context: Any) -> None:
    markers = Path(os.environ.get(MARKER_ENV, ""))
    found = _mode(event) if markers.name else None
    if found is None:
        return handlers.commands(event, context)
    message_id, when = found
    attempt = len(list(markers.glob(f"{message_id}.attempt*"))) + 1
    (markers / f"{message_id}.attempt{attempt}").touch()
    first = attempt == 1
    if first and when == "before":
        _hold(markers, message_id)
    handlers.commands(event, context)
    if first and when == "after":
        _hold(markers, message_id)
    return None
