"""The subscription index: every filter per subscriber, matched in one walk of the topic.

The index matches a topic against every filter in time proportional to the topic's depth,
not the number of subscriptions. Topic names and filters themselves are validated by
:mod:`iot_rules.topics` (shared with the rules engine's FROM clause); its names are re-exported
here for the gateway's callers.

A filter ending in ``/#`` matches every topic below its parent level, and ``sensor/`` (an empty
last level), but not the parent topic ``sensor`` itself. That is AWS IoT Core's documented
behaviour ("AWS IoT differences from MQTT specifications",
https://docs.aws.amazon.com/iot/latest/developerguide/mqtt.html#mqtt-differences); the MQTT
3.1.1 specification's non-normative note (4.7.1.2) says the opposite, and AWS wins here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from iot_rules.topics import (
    BASIC_INGEST_PREFIX,
    InvalidTopic,
    basic_ingest_rule,
    filter_matches,
    is_reserved,
    validate_topic_filter,
    validate_topic_name,
)

V = TypeVar("V")


@dataclass
class _Node(Generic[V]):
    children: dict[str, _Node[V]] = field(default_factory=dict)
    values: dict[str, V] = field(default_factory=dict)  # subscriber key -> value


class SubscriptionIndex(Generic[V]):
    """Filters per subscriber key (the gateway's: a client id), and fast lookup of everyone
    whose filter matches a topic."""

    def __init__(self) -> None:
        self._root: _Node[V] = _Node()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, topic_filter: str, key: str, value: V) -> bool:
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

    def remove(self, topic_filter: str, key: str) -> bool:
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

    def match(self, topic: str) -> Iterator[tuple[str, V]]:
        """Yield (key, value) for every subscription whose filter matches ``topic``."""
        levels = topic.split("/")
        dollar = topic.startswith("$")
        stack: list[tuple[_Node[V], int]] = [(self._root, 0)]
        depth_total = len(levels)
        while stack:
            node, depth = stack.pop()
            children = node.children
            wild = not (dollar and depth == 0)
            if wild and depth < depth_total:
                # '#' needs at least one more level of the topic: 'a/#' never matches 'a'.
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


__all__ = [
    "BASIC_INGEST_PREFIX",
    "InvalidTopic",
    "SubscriptionIndex",
    "basic_ingest_rule",
    "filter_matches",
    "is_reserved",
    "validate_topic_filter",
    "validate_topic_name",
]
