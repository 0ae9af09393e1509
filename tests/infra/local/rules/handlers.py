"""Lambda handlers the rules tests deploy to the local runtime."""

from __future__ import annotations

import json
import os
from typing import Any


def _record(event: Any) -> None:
    with open(os.environ["RECORD_FILE"], "a", encoding="utf-8") as out:
        out.write(json.dumps(event) + "\n")


def record_event(event: Any, context: Any) -> dict[str, str]:
    """Keeps every event it is given, so a test can see what the rule sent."""
    _record(event)
    return {"recorded": context.aws_request_id}


def always_fail(event: Any, context: Any) -> None:
    """Counts its attempts, then fails, so a test can watch Lambda's retries."""
    _record(event)
    raise RuntimeError("this handler always fails")


def echo(event: Any, context: Any) -> Any:
    """Answers with its input, for aws_lambda() in SQL."""
    return event
