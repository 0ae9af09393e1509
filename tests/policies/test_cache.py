"""CachedEvaluator: same answers as evaluate_all, remembered, forgotten on invalidate."""

from __future__ import annotations

from policies.evaluator import CachedEvaluator, Decision
from tests.policies.helpers import policy, stmt, topic

INBOX = "chat/in/${iot:ClientId}"


class Directory:
    """A stand-in for the attachments: principal -> policy sets, counting look-ups."""

    def __init__(self):
        self.sets = {"alice": [[policy(stmt(resource=topic(INBOX)))]]}
        self.lookups = 0

    def __call__(self, key):
        self.lookups += 1
        return self.sets.get(key, [])


def test_decisions_are_cached_per_principal_and_relevant_context():
    directory = Directory()
    cache = CachedEvaluator(directory)
    alice = {"iot:ClientId": "alice", "aws:SourceIp": "127.0.0.1"}
    assert cache.decide("alice", "iot:Publish", topic("chat/in/alice"), alice) is Decision.ALLOW
    assert cache.decide("alice", "iot:Publish", topic("chat/in/alice"), alice) is Decision.ALLOW
    assert (cache.hits, cache.misses, directory.lookups) == (1, 1, 1)
    # a context value the policies never read does not split the cache
    other_ip = {**alice, "aws:SourceIp": "10.0.0.1"}
    assert cache.decide("alice", "iot:Publish", topic("chat/in/alice"), other_ip).allowed
    assert cache.hits == 2
    # one they do read does: the same resource under another client id is denied
    bob = {"iot:ClientId": "bob"}
    assert cache.decide("alice", "iot:Publish", topic("chat/in/alice"), bob) is (
        Decision.DENY_IMPLICIT
    )
    assert cache.misses == 2


def test_unknown_principal_is_denied():
    cache = CachedEvaluator(Directory())
    assert cache.decide("mallory", "iot:Connect", "arn:x", {}) is Decision.DENY_IMPLICIT


def test_invalidate_picks_up_changed_attachments():
    directory = Directory()
    cache = CachedEvaluator(directory)
    ctx = {"iot:ClientId": "alice"}
    assert cache.decide("alice", "iot:Publish", topic("chat/in/alice"), ctx).allowed
    directory.sets["alice"] = [[policy(stmt("Deny", resource=topic("*")))]]
    assert cache.decide("alice", "iot:Publish", topic("chat/in/alice"), ctx).allowed  # cached
    version = cache.version
    cache.invalidate("alice")
    assert cache.version > version
    assert cache.decide("alice", "iot:Publish", topic("chat/in/alice"), ctx) is (
        Decision.DENY_EXPLICIT
    )
    directory.sets["alice"] = [[policy(stmt(resource="*"))]]
    cache.invalidate()
    assert cache.decide("alice", "iot:Publish", topic("x"), ctx).allowed


def test_entries_are_bounded():
    cache = CachedEvaluator(lambda key: [[policy(stmt())]], max_entries_per_principal=10)
    for i in range(25):
        assert cache.decide("p", "iot:Publish", topic(f"t/{i}"), {}).allowed
    assert len(cache._entries["p"].decisions) <= 10
