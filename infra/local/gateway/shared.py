"""Shared subscriptions: ``$share/<ShareName>/<TopicFilter>``, one member of a group per message.

AWS IoT Core supports shared subscriptions on MQTT 3.1.1 and 5: every client subscribed to
the same ``$share/<ShareName>/<TopicFilter>`` is a member of one group, and each message that
matches ``<TopicFilter>`` goes to one member, chosen at random
(https://docs.aws.amazon.com/iot/latest/developerguide/mqtt.html, "Shared Subscriptions").
The filter is authorised as written, ``iot:Subscribe`` on
``topicfilter/$share/<ShareName>/<TopicFilter>`` (the form AWS's own shared-subscription
samples grant), and each delivery as usual, ``iot:Receive`` on ``topic/<topic>``.

This module knows the form of a shared filter and who is in which group; choosing the member
and delivering is :class:`~infra.local.gateway.delivery.Router`'s.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from .codec import SubscriptionOptions
from .topics import InvalidTopic, SubscriptionIndex, validate_topic_filter

SHARE_PREFIX = "$share/"


@dataclass(frozen=True, slots=True)
class ShareKey:
    """One group: its share name and the topic filter its members share."""

    name: str
    topic_filter: str

    @property
    def subscription(self) -> str:
        """The filter as the members wrote it in SUBSCRIBE."""
        return f"{SHARE_PREFIX}{self.name}/{self.topic_filter}"


def is_shared(topic_filter: str) -> bool:
    return topic_filter.startswith(SHARE_PREFIX)


def parse_shared(
    topic_filter: str, max_bytes: int | None = None, max_slashes: int | None = None
) -> ShareKey:
    """The group a ``$share/...`` filter names; raises InvalidTopic for a malformed one.

    The share name is one non-empty level without wildcards (MQTT 5 4.8.2); the topic filter
    after it is checked like any other (size and depth limits included).
    """
    name, sep, inner = topic_filter[len(SHARE_PREFIX) :].partition("/")
    if not name or not sep or not inner:
        raise InvalidTopic("a shared subscription is $share/<ShareName>/<TopicFilter>")
    if "+" in name or "#" in name:
        raise InvalidTopic("a share name may not contain wildcards")
    validate_topic_filter(inner, max_bytes, max_slashes)
    return ShareKey(name, inner)


@dataclass(slots=True, eq=False)
class SharedGroup:
    """The members of one group (client id -> their subscription options), in join order."""

    key: ShareKey
    members: dict[str, SubscriptionOptions] = field(default_factory=dict)


class SharedSubscriptions:
    """Every group, indexed by its topic filter so a publish finds its groups in one walk."""

    def __init__(self) -> None:
        self._index: SubscriptionIndex[SharedGroup] = SubscriptionIndex()
        self._groups: dict[ShareKey, SharedGroup] = {}

    def __len__(self) -> int:
        return len(self._groups)

    def join(self, key: ShareKey, client_id: str, opts: SubscriptionOptions) -> None:
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = SharedGroup(key)
            self._index.add(key.topic_filter, key.name, group)
        group.members[client_id] = opts

    def leave(self, key: ShareKey, client_id: str) -> bool:
        group = self._groups.get(key)
        if group is None or group.members.pop(client_id, None) is None:
            return False
        if not group.members:  # an empty group is forgotten, so nothing leaks
            del self._groups[key]
            self._index.remove(key.topic_filter, key.name)
        return True

    def group(self, key: ShareKey) -> SharedGroup | None:
        return self._groups.get(key)

    def matching(self, topic: str) -> Iterator[SharedGroup]:
        """Every group whose topic filter matches ``topic``."""
        for _, group in self._index.match(topic):
            yield group
