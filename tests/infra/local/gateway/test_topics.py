"""Topic names, topic filters and the gateway's subscription index, with AWS IoT Core's limits.

The validators are ``iot_rules.topics`` (shared with the rules engine's FROM clause), imported
through ``infra.local.gateway.topics`` as the gateway uses them.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra.local.gateway.topics import (
    InvalidTopic,
    SubscriptionIndex,
    filter_matches,
    validate_topic_filter,
    validate_topic_name,
)

# --------------------------------------------------------------------------- topics


@pytest.mark.parametrize(
    "topic",
    [
        "a",
        "a/b/c/d/e/f/g/h",  # 7 slashes, 8 levels
        "x" * 256,
        "é" * 128,  # 256 bytes of UTF-8
        "/",
        "$aws/rules/myrule/a/b/c/d/e/f/g/h",  # Basic Ingest prefix does not count
        "chat/out",
    ],
)
def test_valid_topic_names(topic: str) -> None:
    validate_topic_name(topic)


@pytest.mark.parametrize(
    "topic",
    [
        "",
        "a/b/c/d/e/f/g/h/i",  # 8 slashes
        "/a/b/c/d/e/f/g/",  # 8 slashes, empty levels count too
        "x" * 257,
        "é" * 128 + "x",  # 128 characters but 257 bytes
        "$aws/rules/myrule/a/b/c/d/e/f/g/h/i",
        "$aws/other/r/a/b/c/d/e/f/g/h",  # only $aws/rules/<rule>/ is exempt
        "a/+",
        "a/#",
        "a+b",
    ],
)
def test_invalid_topic_names(topic: str) -> None:
    with pytest.raises(InvalidTopic):
        validate_topic_name(topic)


@pytest.mark.parametrize(
    "topic_filter",
    ["#", "+", "a/+/c", "a/#", "+/+/+", "/+", "$aws/events/presence/+/+", "a/b/c/d/e/f/g/#"],
)
def test_valid_topic_filters(topic_filter: str) -> None:
    validate_topic_filter(topic_filter)


@pytest.mark.parametrize(
    "topic_filter",
    [
        "",
        "a#",
        "a/#/b",
        "#/a",
        "a+",
        "a/b+/c",
        "++",
        "a/b/c/d/e/f/g/h/#",  # 8 slashes
        "+" + "/+" * 8,
        "é" * 129,
    ],
)
def test_invalid_topic_filters(topic_filter: str) -> None:
    with pytest.raises(InvalidTopic):
        validate_topic_filter(topic_filter)


def test_custom_limits_are_honoured() -> None:
    validate_topic_name("a/b/c", max_slashes=2)
    with pytest.raises(InvalidTopic):
        validate_topic_name("a/b/c/d", max_slashes=2)
    with pytest.raises(InvalidTopic):
        validate_topic_filter("abcdef", max_bytes=5)


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        # AWS: '#' does not match the parent level (the MQTT spec's note says it does), but
        # an empty level below it is a level: 'sensor/#' matches 'sensor/', not 'sensor'.
        ("a/#", "a", False),
        ("a/#", "a/", True),
        ("a/b/#", "a/b", False),
        ("#", "a", True),
        ("a/#", "a/b/c", True),
        ("a/+", "a", False),
        ("a/+", "a/", True),
        ("+/+", "/", True),
        ("+", "a/b", False),
        ("#", "$aws/events/presence/connected/x", False),
        ("+/events/#", "$aws/events/x", False),
        ("$aws/#", "$aws/events/x", True),
        ("$aws/events/presence/+/+", "$aws/events/presence/connected/c1", True),
        ("A", "a", False),  # case-sensitive
    ],
)
def test_filter_matching_examples(topic_filter: str, topic: str, expected: bool) -> None:
    assert filter_matches(topic_filter, topic, hash_matches_parent=False) is expected
    index: SubscriptionIndex[int] = SubscriptionIndex()
    index.add(topic_filter, "k", 1)
    assert bool(list(index.match(topic))) is expected


level = st.sampled_from(["a", "b", "", "$x", "é"])
first_level = st.sampled_from(["a", "b", "", "$aws", "$x"])


@st.composite
def topics(draw: st.DrawFn) -> str:
    return "/".join([draw(first_level), *draw(st.lists(level, max_size=4))])


@st.composite
def filters(draw: st.DrawFn) -> str:
    levels = [draw(first_level | st.just("+"))]
    levels += draw(st.lists(level | st.just("+"), max_size=4))
    if draw(st.booleans()):
        levels.append("#")
    return "/".join(levels)


@settings(
    max_examples=400,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(filters() | st.just("#"), max_size=25), st.lists(topics(), min_size=1, max_size=8))
def test_index_agrees_with_filter_matches(topic_filters: list[str], topic_list: list[str]) -> None:
    index: SubscriptionIndex[str] = SubscriptionIndex()
    for number, topic_filter in enumerate(topic_filters):
        index.add(topic_filter, number, topic_filter)
    for topic in topic_list:
        expected = {
            n
            for n, f in enumerate(topic_filters)
            if filter_matches(f, topic, hash_matches_parent=False)
        }
        found = [key for key, _ in index.match(topic)]
        assert len(found) == len(set(found)), "a subscription matched twice"
        assert set(found) == expected, topic
        if topic.startswith("$"):
            assert not any(topic_filters[n][:1] in ("+", "#") for n in found)
    # Removing everything leaves an empty index that matches nothing.
    for number, topic_filter in enumerate(topic_filters):
        assert index.remove(topic_filter, number)
    assert len(index) == 0
    assert all(not list(index.match(t)) for t in topic_list)
