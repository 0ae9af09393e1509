"""MQTT topic names and filters as AWS IoT Core reads them: validation and matching.

One set of rules serves both the device gateway (PUBLISH topics, SUBSCRIBE filters) and the
rules engine (a rule's ``FROM`` filter), so the two cannot drift apart. Where AWS treats them
differently, a parameter says so:

- sizes: the gateway enforces AWS's topic limits (256 UTF-8 bytes, 7 slashes, the
  ``$aws/rules/<rule>/`` Basic Ingest prefix not counted); a rule's FROM filter has none;
- ``#``: the MQTT 3.1.1 note (4.7.1.2) lets ``a/#`` match ``a``; AWS does not, neither for
  a subscription nor for a rule's ``FROM 'a/#'``: it needs at least one more level
  (https://docs.aws.amazon.com/iot/latest/developerguide/mqtt.html#mqtt-differences). The
  rules engine passes ``hash_matches_parent=False``; the gateway's subscription index matches
  the same way (its tests compare it with ``hash_matches_parent=False``).

Pure functions only: nothing here knows about connections or rules.
"""

from __future__ import annotations

from collections.abc import Sequence

BASIC_INGEST_PREFIX = "$aws/rules/"
MAX_TOPIC_BYTES = 256
MAX_TOPIC_SLASHES = 7


class InvalidTopic(ValueError):
    """A topic name or filter AWS IoT Core would refuse; the message says why."""


def _strip_basic_ingest(topic: str) -> str:
    if topic.startswith(BASIC_INGEST_PREFIX):
        rest = topic[len(BASIC_INGEST_PREFIX) :]
        _, sep, tail = rest.partition("/")
        if sep:
            return tail
    return topic


def basic_ingest_rule(topic: str) -> str | None:
    """The rule a Basic Ingest topic (``$aws/rules/<rule>/<topic>``) targets, else None."""
    if not topic.startswith(BASIC_INGEST_PREFIX):
        return None
    rule, sep, rest = topic[len(BASIC_INGEST_PREFIX) :].partition("/")
    return rule if rule and sep and rest else None


def _check_size(topic: str, max_bytes: int | None, max_slashes: int | None, what: str) -> None:
    if not topic:
        raise InvalidTopic(f"{what} is empty")
    counted = _strip_basic_ingest(topic)
    if max_bytes is not None and len(counted.encode("utf-8")) > max_bytes:
        raise InvalidTopic(f"{what} is longer than {max_bytes} bytes")
    if max_slashes is not None and counted.count("/") > max_slashes:
        raise InvalidTopic(f"{what} has more than {max_slashes} slashes")


def validate_topic_name(
    topic: str, max_bytes: int = MAX_TOPIC_BYTES, max_slashes: int = MAX_TOPIC_SLASHES
) -> None:
    """A topic a PUBLISH may carry: no wildcards, within AWS's size and depth limits."""
    _check_size(topic, max_bytes, max_slashes, "topic")
    if "+" in topic or "#" in topic:
        raise InvalidTopic("topic names may not contain wildcards")


def validate_topic_filter(
    topic_filter: str,
    max_bytes: int | None = MAX_TOPIC_BYTES,
    max_slashes: int | None = MAX_TOPIC_SLASHES,
) -> None:
    """A filter a SUBSCRIBE (or a rule's FROM) may carry: ``+`` a whole level, ``#`` a whole,
    last level. ``None`` for a limit leaves it unchecked (a rule's FROM filter has none)."""
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


def levels_match(
    filter_levels: Sequence[str], topic: str, *, hash_matches_parent: bool = True
) -> bool:
    """Whether a filter, already split into levels, matches ``topic``.

    A ``$`` topic needs a literal first level. ``hash_matches_parent``: MQTT's ``a/#``
    matches ``a`` too; a rule's FROM filter passes False (AWS: ``a/#`` needs a level more).
    """
    parts = topic.split("/")
    if parts[0].startswith("$") and filter_levels[0] in ("+", "#"):
        return False
    n = len(parts)
    for i, level in enumerate(filter_levels):
        if level == "#":
            return hash_matches_parent or n > i
        if i >= n or (level != "+" and level != parts[i]):
            return False
    return n == len(filter_levels)


def filter_matches(topic_filter: str, topic: str, *, hash_matches_parent: bool = True) -> bool:
    """Whether one filter matches one topic; see :func:`levels_match`."""
    return levels_match(topic_filter.split("/"), topic, hash_matches_parent=hash_matches_parent)
