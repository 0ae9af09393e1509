"""Kinesis on the edge API: ``Kinesis_20131202.*`` requests, signed and allowed, go to kinesalite.

kinesalite checks that a request is signed, not the signature, and no permission. So the edge
verifies the signature first (signing name ``kinesis``), then asks IAM for the action on the
stream ARN (:mod:`.access`), answering ``{"__type": "AccessDeniedException", "message": ...}``
(HTTP 400) when refused, and only then forwards it.

``GetRecords`` names no stream, only a shard iterator; AWS knows the iterator's stream, and so
does the edge: after each successful ``GetShardIterator`` it remembers the returned
``ShardIterator``'s stream, and after each ``GetRecords`` the ``NextShardIterator``'s, so the
next ``GetRecords`` is authorized on that stream (an iterator the edge never handed out is
authorized on ``*``, which only the admin may use).

After each successful PutRecord or PutRecords the stack is told the stream's name, so its
event source pollers read at once instead of at their next poll.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from infra.local.api.backend import Access, Endpoint, ServiceBackend

from .access import IteratorStreams, required_access, stream_name
from .service import TARGET_PREFIX

SIGNING_NAME = "kinesis"
_PUTS = frozenset({"PutRecord", "PutRecords"})
# A record's data and partition key are at most 1 MiB, a PutRecords request's at most 5 MiB
# (https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html); on the wire
# the data is base64 (4/3 larger) inside JSON, so the edge allows that plus 64 KiB of JSON
# before reading, and kinesalite checks the exact limits.
_MiB = 1024 * 1024
_JSON_OVERHEAD = 64 * 1024
_WIRE_LIMITS = {
    "PutRecord": _MiB * 4 // 3 + _JSON_OVERHEAD,
    "PutRecords": 5 * _MiB * 4 // 3 + _JSON_OVERHEAD,
}
_OTHER_REQUEST_LIMIT = _JSON_OVERHEAD


def request_limit(operation: str) -> int:
    """The largest request body the edge reads for a Kinesis ``operation``."""
    return _WIRE_LIMITS.get(operation, _OTHER_REQUEST_LIMIT)


def _answer(payload: bytes) -> Mapping[str, Any]:
    try:
        answer = json.loads(payload)
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def after_success(
    iterators: IteratorStreams, written: Callable[[str], None] | None = None
) -> Callable[[str, Mapping[str, Any], bytes], None]:
    """What the edge does after a successful request: learn each handed-out iterator's
    stream; tell ``written`` (if given) the stream of each PutRecord/PutRecords."""

    def on_success(operation: str, request: Mapping[str, Any], payload: bytes) -> None:
        if operation == "GetShardIterator":
            name = stream_name(request)
            if name is not None:
                iterators.remember(_answer(payload).get("ShardIterator"), name)
        elif operation == "GetRecords":
            name = iterators.stream_of(request.get("ShardIterator"))
            if name is not None:
                iterators.remember(_answer(payload).get("NextShardIterator"), name)
        elif operation in _PUTS and written is not None:
            name = stream_name(request)
            if name is not None:
                written(name)

    return on_success


def backend(
    endpoint: Endpoint,
    written: Callable[[str], None] | None = None,
    *,
    region: str,
    account: str,
    iterators: IteratorStreams | None = None,
) -> ServiceBackend:
    """Kinesis as the edge API forwards it to kinesalite at ``endpoint()``; stream ARNs are in
    ``region`` and ``account``; ``written`` (if given) hears of every stream a successful put
    wrote to."""
    known = iterators if iterators is not None else IteratorStreams()

    def access(operation: str, request: Mapping[str, Any]) -> list[Access]:
        return [
            required_access(operation, request, region=region, account=account, iterators=known)
        ]

    return ServiceBackend(
        "Kinesis",
        TARGET_PREFIX,
        endpoint,
        signing_name=SIGNING_NAME,
        required_access=access,
        on_success=after_success(known, written),
        max_request_bytes=request_limit,
    )
