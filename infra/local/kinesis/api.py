"""Kinesis on the edge API: ``Kinesis_20131202.*`` requests, signature checked, go to kinesalite.

kinesalite checks that a request is signed, not the signature, so the edge verifies it first
(signing name ``kinesis``). After each successful PutRecord or PutRecords the stack is told
the stream's name, so its event source pollers read at once instead of at their next poll.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from infra.local.api.backend import Endpoint, ServiceBackend

from .service import TARGET_PREFIX

SIGNING_NAME = "kinesis"
_PUTS = frozenset({TARGET_PREFIX + "PutRecord", TARGET_PREFIX + "PutRecords"})


def stream_writes(written: Callable[[str], None]) -> Callable[[str, bytes], None]:
    """Tell ``written`` the stream name of each PutRecord/PutRecords request."""

    def on_success(target: str, body: bytes) -> None:
        if target not in _PUTS:
            return
        try:
            request = json.loads(body)
        except ValueError:
            return
        name = request.get("StreamName") if isinstance(request, dict) else None
        if name is None and isinstance(request, dict):
            name = str(request.get("StreamARN", "")).rpartition("/")[2] or None
        if isinstance(name, str):
            written(name)

    return on_success


def backend(endpoint: Endpoint, written: Callable[[str], None] | None = None) -> ServiceBackend:
    """Kinesis as the edge API forwards it to kinesalite at ``endpoint()``; ``written`` (if
    given) hears of every stream a successful put wrote to."""
    return ServiceBackend(
        "Kinesis",
        TARGET_PREFIX,
        endpoint,
        signing_name=SIGNING_NAME,
        on_success=stream_writes(written) if written else None,
    )
