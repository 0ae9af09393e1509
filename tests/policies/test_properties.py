"""Hypothesis properties: a Deny never widens access; variables never cross identities."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from policies.evaluator import Decision, Policy, Request, client_arn, evaluate, evaluate_all
from tests.policies.helpers import ACCOUNT, REGION, tfilter, topic
from tests.policies.test_project_policies import identity_sets, load

SEGMENT = st.text(alphabet="ab+#*?/$", min_size=0, max_size=6)
ACTIONS = st.sampled_from(
    ["iot:Publish", "iot:Subscribe", "iot:Receive", "iot:Connect", "iot:*", "iot:?ublish", "*"]
)
KINDS = st.sampled_from(["topic", "topicfilter", "client"])


@st.composite
def resources(draw):
    return f"arn:aws:iot:{REGION}:{ACCOUNT}:{draw(KINDS)}/{draw(SEGMENT)}"


@st.composite
def statements(draw, effect=None):
    statement = {
        "Effect": effect or draw(st.sampled_from(["Allow", "Deny"])),
        "Action": draw(st.lists(ACTIONS, min_size=1, max_size=2)),
        "Resource": draw(st.lists(resources(), min_size=1, max_size=2)),
    }
    if draw(st.booleans()):
        statement["Condition"] = {"StringLike": {"iot:ClientId": draw(SEGMENT) or "*"}}
    return statement


def as_policy(statements_):
    return Policy.parse("p", {"Version": "2012-10-17", "Statement": statements_})


@settings(max_examples=300, deadline=None)
@given(
    base=st.lists(statements(), min_size=1, max_size=4),
    deny=statements(effect="Deny"),
    action=st.sampled_from(["iot:Publish", "iot:Subscribe", "iot:Receive", "iot:Connect"]),
    resource=resources(),
    client_id=SEGMENT,
)
def test_adding_a_deny_never_widens_access(base, deny, action, resource, client_id):
    request = Request(action, resource, {"iot:ClientId": client_id})
    before = evaluate([as_policy(base)], request)
    after = evaluate([as_policy([*base, deny])], request)
    if before is not Decision.ALLOW:
        assert after is not Decision.ALLOW
    if before is Decision.DENY_EXPLICIT:
        assert after is Decision.DENY_EXPLICIT


IDS = st.uuids().map(lambda u: f"{REGION}:{u}")
WILD_IDS = st.one_of(IDS, st.sampled_from(["+", "#", "*", "?", "us-east-1:*"]))


@settings(max_examples=200, deadline=None)
@given(a=IDS, b=IDS, claimed=WILD_IDS, kind=st.sampled_from(["guest", "signed-in"]))
def test_identity_a_never_reaches_identity_b(a, b, claimed, kind):
    """Whatever client id A claims, the person policies never grant anything naming B."""
    if a == b:
        return
    context = {"cognito-identity.amazonaws.com:sub": a, "iot:ClientId": claimed}
    for action, resource in [
        ("iot:Connect", client_arn(REGION, ACCOUNT, b)),
        ("iot:Subscribe", tfilter(f"chat/in/{b}")),
        ("iot:Receive", topic(f"chat/in/{b}")),
        ("iot:Publish", topic(f"chat/in/{b}")),
    ]:
        assert not evaluate_all(identity_sets(kind), Request(action, resource, context)).allowed


@settings(max_examples=200, deadline=None)
@given(
    a=st.text(alphabet="abc-+#*?", min_size=1, max_size=8),
    b=st.text(alphabet="abc-", min_size=1, max_size=8),
)
def test_variable_never_matches_across_things(a, b):
    """Thing A's device policy never grants thing B's inbox, even for a wildcard-looking name."""
    if a == b:
        return
    device = load("iot", "device")
    context = {
        "iot:Connection.Thing.ThingName": a,
        "iot:Connection.Thing.IsAttached": "true",
        "iot:ClientId": a,
    }
    for action, resource in [
        ("iot:Subscribe", tfilter(f"chat/in/{b}")),
        ("iot:Receive", topic(f"chat/in/{b}")),
        ("iot:Connect", f"arn:aws:iot:{REGION}:{ACCOUNT}:client/{b}"),
    ]:
        assert not evaluate([device], Request(action, resource, context)).allowed
