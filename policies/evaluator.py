"""Decide a request against policies the way AWS IAM and AWS IoT Core do.

Default deny; an Allow grants only when no explicit Deny applies, in any policy that counts.
Some principals must pass several sets of policies: a signed-in Cognito identity needs both
its role's IAM policy and an IoT policy attached to the identity, each set evaluated on its
own (:func:`evaluate_all`). :class:`CachedEvaluator` remembers decisions because the gateway
asks on every delivery.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from policies.arns import client_arn, topic_arn, topicfilter_arn
from policies.model import Policy, PolicyError, Statement

__all__ = [
    "CachedEvaluator",
    "Decision",
    "Policy",
    "PolicyError",
    "Request",
    "Statement",
    "client_arn",
    "evaluate",
    "evaluate_all",
    "topic_arn",
    "topicfilter_arn",
]

PolicySets = Sequence[Sequence[Policy]]


class Decision(enum.Enum):
    ALLOW = "allow"
    DENY_EXPLICIT = "explicit-deny"
    DENY_IMPLICIT = "implicit-deny"

    @property
    def allowed(self) -> bool:
        return self is Decision.ALLOW


@dataclass(frozen=True, slots=True)
class Request:
    """What is asked: an action (``iot:Publish``), a full resource ARN and the request context.

    ``context`` holds the values of policy variables and condition keys, for example
    ``iot:ClientId``, ``cognito-identity.amazonaws.com:sub``, ``aws:SourceIp``,
    ``iot:Connection.Thing.ThingName`` and ``iot:Connection.Thing.IsAttached``.
    """

    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)


def evaluate(policies: Sequence[Policy], request: Request) -> Decision:
    """One set of policies: explicit Deny beats Allow, and nothing matching means deny."""
    action, resource, context = request.action, request.resource, request.context
    allowed = False
    for policy in policies:
        for statement in policy.statements:
            if allowed and not statement.deny:
                continue  # already allowed: only a Deny can still change the answer
            if statement.applies(action, resource, context):
                if statement.deny:
                    return Decision.DENY_EXPLICIT
                allowed = True
    return Decision.ALLOW if allowed else Decision.DENY_IMPLICIT


def evaluate_all(policy_sets: PolicySets, request: Request) -> Decision:
    """Several sets that must each allow (role AND IoT policy); no sets at all denies."""
    if not policy_sets:
        return Decision.DENY_IMPLICIT
    decisions = [evaluate(policies, request) for policies in policy_sets]
    if Decision.DENY_EXPLICIT in decisions:
        return Decision.DENY_EXPLICIT
    if all(decision is Decision.ALLOW for decision in decisions):
        return Decision.ALLOW
    return Decision.DENY_IMPLICIT


@dataclass(slots=True)
class _Entry:
    version: int
    policy_sets: PolicySets
    keys: tuple[str, ...]
    decisions: dict[tuple[str, str, tuple[str | None, ...]], Decision]


class CachedEvaluator:
    """Decisions per principal, cached by (action, resource, the context values that matter).

    ``resolve(principal_key)`` returns the policy sets that principal must pass (see
    :func:`evaluate_all`). Call :meth:`invalidate` whenever a policy document, a role, or a
    policy attachment changes: everything for that principal (or everyone) is forgotten and
    the policy-set version moves on, so no decision made under old policies survives.
    """

    def __init__(
        self, resolve: Callable[[str], PolicySets], max_entries_per_principal: int = 4096
    ) -> None:
        self._resolve = resolve
        self._max = max_entries_per_principal
        self._entries: dict[str, _Entry] = {}
        self.version = 0
        self.hits = 0
        self.misses = 0

    def invalidate(self, principal_key: str | None = None) -> None:
        """Forget cached decisions (and resolved policies) for one principal or for all."""
        self.version += 1
        if principal_key is None:
            self._entries.clear()
        else:
            self._entries.pop(principal_key, None)

    def decide(
        self, principal_key: str, action: str, resource: str, context: Mapping[str, str]
    ) -> Decision:
        entry = self._entries.get(principal_key)
        if entry is not None:
            key = (action, resource, tuple(map(context.get, entry.keys)))
            decision = entry.decisions.get(key)
            if decision is not None:
                self.hits += 1
                return decision
        else:
            entry = self._load(principal_key)
            key = (action, resource, tuple(map(context.get, entry.keys)))
        self.misses += 1
        decision = evaluate_all(entry.policy_sets, Request(action, resource, context))
        if entry.version == self.version or self._entries.get(principal_key) is entry:
            if len(entry.decisions) >= self._max:
                entry.decisions.clear()
            entry.decisions[key] = decision
        return decision

    def decide_request(self, principal_key: str, request: Request) -> Decision:
        return self.decide(principal_key, request.action, request.resource, request.context)

    def _load(self, principal_key: str) -> _Entry:
        version = self.version
        policy_sets = tuple(tuple(policies) for policies in self._resolve(principal_key))
        keys: set[str] = set()
        for policies in policy_sets:
            for policy in policies:
                keys |= policy.context_keys
        entry = _Entry(version, policy_sets, tuple(sorted(keys)), {})
        if version == self.version:  # not invalidated while resolving
            self._entries[principal_key] = entry
        return entry
