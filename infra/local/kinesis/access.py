"""What a Kinesis request asks IAM for: the action and the stream ARN it must be allowed.

From the Service Authorization Reference, "Actions, resources, and condition keys for Amazon
Kinesis Data Streams" (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonkinesis.html):
the action is ``kinesis:<Operation>`` on the stream ARN the request names (``StreamName`` or
``StreamARN``); ``GetRecords`` names only a shard iterator, whose stream the caller learns from
``GetShardIterator`` (see :class:`IteratorStreams`); ``ListStreams`` and
``DescribeLimits`` take ``*``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

_UNSCOPED = frozenset({"ListStreams", "DescribeLimits", "EnableEnhancedMonitoring"})


def stream_arn(region: str, account: str, stream: str) -> str:
    return f"arn:aws:kinesis:{region}:{account}:stream/{stream}"


class IteratorStreams:
    """Which stream each recent shard iterator belongs to, bounded (oldest forgotten first)."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._streams: OrderedDict[str, str] = OrderedDict()

    def remember(self, iterator: object, stream: str) -> None:
        if not isinstance(iterator, str) or not iterator:
            return
        self._streams[iterator] = stream
        self._streams.move_to_end(iterator)
        while len(self._streams) > self._capacity:
            self._streams.popitem(last=False)

    def stream_of(self, iterator: object) -> str | None:
        return self._streams.get(iterator) if isinstance(iterator, str) else None


def stream_name(request: Mapping[str, Any]) -> str | None:
    name = request.get("StreamName")
    if isinstance(name, str) and name:
        return name
    arn = request.get("StreamARN")
    if isinstance(arn, str) and "/" in arn:
        return arn.rpartition("/")[2] or None
    return None


def required_access(
    operation: str,
    request: Mapping[str, Any],
    *,
    region: str,
    account: str,
    iterators: IteratorStreams | None = None,
) -> tuple[str, str]:
    """The (action, resource) the request needs."""
    action = f"kinesis:{operation}"
    if operation in _UNSCOPED:
        return action, "*"
    name = stream_name(request)
    if name is None and operation == "GetRecords" and iterators is not None:
        name = iterators.stream_of(request.get("ShardIterator"))
    return action, stream_arn(region, account, name) if name else "*"
