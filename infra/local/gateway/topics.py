"""Topic names, topic filters and the subscription index, with AWS IoT Core's limits.

AWS counts a topic's size in UTF-8 bytes and its depth in slashes, and exempts the
``$aws/rules/<rule>/`` prefix of Basic Ingest from both; the index matches a topic against
every filter in time proportional to the topic's depth, not the number of subscriptions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

BASIC_INGEST_PREFIX = "$aws/rules/"

V = TypeVar("V")


class InvalidTopic(ValueError):
    """A topic name or filter AWS IoT Core would refuse; the message says why."""


def _strip_basic_ingest(topic: str) -> str:
    if topic.startswith(BASIC_INGEST_PREFIX):
        rest = topic[len(BASIC_INGEST_PREFIX) :]
        _, sep, tail = rest.partition("/")
        if sep:
            return tail
    return topic


def _check_size(topic: str, max_bytes: int, max_slashes: int, what: str) -> None:
    if not topic:
        raise InvalidTopic(f"{what} is empty")
    counted = _strip_basic_ingest(topic)
    if len(counted.encode("utf-8")) > max_bytes:
        raise InvalidTopic(f"{what} is longer than {max_bytes} bytes")
    if counted.count("/") > max_slashes:
        raise InvalidTopic(f"{what} has more than {max_slashes} slashes")


def validate_topic_name(topic: str, max_bytes: int = 256, max_slashes: int = 7) -> None:
    """A topic a PUBLISH may carry: no wildcards, within AWS's size and depth limits."""
    _check_size(topic, max_bytes, max_slashes, "topic")
    if "+" in topic or "#" in topic:
        raise InvalidTopic("topic names may not contain wildcards")


def validate_topic_filter(topic_filter: str, max_bytes: int = 256, max_slashes: int = 7) -> None:
    """A filter a SUBSCRIBE may carry: ``+`` a whole level, ``#`` a whole, last level."""
    _check_size(topic_filter, max_bytes, max_slashes, "topic filter")
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise InvalidTopic("'#' must be the whole last level")
        if "+" in level and level != "+":
            raise InvalidTopic("'+' must be a whole level")


def is_reserved(topic: str) -> bool:
    """Topics starting with ``$`` belong to the service (lifecycle events, shadows, rules)."""
    return topic.startswith("$")


def filter_matches(topic_filter: str, topic: str) -> bool:
    """Whether one filter matches one topic (MQTT rules; ``$`` topics need a literal start)."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    f_levels = topic_filter.split("/")
    t_levels = topic.split("/")
    for i, f in enumerate(f_levels):
        if f == "#":
            return True
        if i >= len(t_levels):
            return False
        if f != "+" and f != t_levels[i]:
            return False
    return len(f_levels) == len(t_levels)


@dataclass
class _Node(Generic[V]):
    children: dict[str, _Node[V]] = field(default_factory=dict)
    values: dict[object, V] = field(default_factory=dict)  # subscriber key -> value


class SubscriptionIndex(Generic[V]):
    """Filters per subscriber key, and fast lookup of everyone whose filter matches a topic."""

    def __init__(self) -> None:
        self._root: _Node[V] = _Node()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, topic_filter: str, key: object, value: V) -> bool:
        """Store (or replace) ``key``'s subscription; return True when it is new."""
        node = self._root
        for level in topic_filter.split("/"):
            nxt = node.children.get(level)
            if nxt is None:
                nxt = node.children[level] = _Node()
            node = nxt
        new = key not in node.values
        node.values[key] = value
        self._count += new
        return new

    def remove(self, topic_filter: str, key: object) -> bool:
        path = [self._root]
        levels = topic_filter.split("/")
        for level in levels:
            nxt = path[-1].children.get(level)
            if nxt is None:
                return False
            path.append(nxt)
        if key not in path[-1].values:
            return False
        del path[-1].values[key]
        self._count -= 1
        # Prune empty branches so long-running gateways do not leak nodes.
        for depth in range(len(levels), 0, -1):
            node = path[depth]
            if node.values or node.children:
                break
            del path[depth - 1].children[levels[depth - 1]]
        return True

    def match(self, topic: str) -> Iterator[tuple[object, V]]:
        """Yield (key, value) for every subscription whose filter matches ``topic``."""
        levels = topic.split("/")
        dollar = topic.startswith("$")
        stack: list[tuple[_Node[V], int]] = [(self._root, 0)]
        depth_total = len(levels)
        while stack:
            node, depth = stack.pop()
            children = node.children
            wild = not (dollar and depth == 0)
            if wild:
                hash_node = children.get("#")
                if hash_node is not None:
                    yield from hash_node.values.items()
            if depth == depth_total:
                yield from node.values.items()
                continue
            exact = children.get(levels[depth])
            if exact is not None:
                stack.append((exact, depth + 1))
            if wild:
                plus = children.get("+")
                if plus is not None:
                    stack.append((plus, depth + 1))
