"""The project's own policy files: they parse, and they grant exactly the chat's contract."""

from __future__ import annotations

from functools import cache

import pytest

from policies.documents import KINDS, load_document, load_policy, policy_names
from policies.evaluator import Decision, Request, evaluate, evaluate_all
from policies.render import placeholders
from tests.policies.helpers import ACCOUNT, REGION, client, tfilter, topic

U = "us-east-1:0d3b8a2e-5a55-4c1e-9a7f-1f2e3d4c5b6a"
V = "us-east-1:9e8d7c6b-0000-4111-8222-333344445555"
SUB = "cognito-identity.amazonaws.com:sub"
STACK = "iotchat"


@cache
def load(kind: str, name: str):
    return load_policy(kind, name, region=REGION, account=ACCOUNT, stack=STACK)


def identity_sets(kind: str):
    """Policy sets the way the gateway combines them: guests the role; signed-in role AND IoT."""
    if kind == "guest":
        return [[load("iam", "guest-role")]]
    return [[load("iam", "user-role")], [load("iot", "user")]]


def person(kind: str, action: str, resource: str, identity: str = U, client_id: str = U):
    context = {SUB: identity, "iot:ClientId": client_id, "aws:SourceIp": "127.0.0.1"}
    return evaluate_all(identity_sets(kind), Request(action, resource, context)).allowed


def device(action: str, resource: str, thing: str | None = "pi-1", attached: bool = True):
    context = {"iot:ClientId": thing or "pi-1"}
    if thing is not None:
        context["iot:Connection.Thing.ThingName"] = thing
        context["iot:Connection.Thing.IsAttached"] = "true" if attached else "false"
    return evaluate([load("iot", "device")], Request(action, resource, context)).allowed


@pytest.mark.parametrize("kind", KINDS)
def test_every_project_policy_parses(kind):
    names = policy_names(kind)
    assert names
    for name in names:
        assert placeholders(load_document(kind, name)) <= {"region", "account", "stack"}
        assert load(kind, name).statements


PEOPLE = ["guest", "signed-in"]


@pytest.mark.parametrize("kind", PEOPLE)
def test_person_connects_only_with_own_identity_as_client_id(kind):
    assert person(kind, "iot:Connect", client(U))
    for other in (V, "+", "#", "*", U + "x", "", "admin"):
        assert not person(kind, "iot:Connect", client(other), client_id=other)


@pytest.mark.parametrize("kind", PEOPLE)
def test_person_subscribes_only_own_inbox_and_rooms(kind):
    assert person(kind, "iot:Subscribe", tfilter(f"chat/in/{U}"))
    assert person(kind, "iot:Subscribe", tfilter("chat/pub/lobby"))
    for bad in (
        "chat/in/+",
        "chat/in/#",
        "chat/in/*",
        f"chat/in/{V}",
        "chat/#",
        "#",
        "+/in/+",
        "chat/pub/+",
        "chat/pub/#",
        "chat/pub/a/#",
        "chat/out",
        "$aws/events/#",
        f"chat/in/{U}/x",
    ):
        assert not person(kind, "iot:Subscribe", tfilter(bad)), bad


@pytest.mark.parametrize("kind", PEOPLE)
def test_wildcard_client_id_does_not_open_other_inboxes(kind):
    """Subscribe is keyed on the identity id, so a client id of '+' gains nothing."""
    assert not person(kind, "iot:Subscribe", tfilter("chat/in/+"), client_id="+")
    assert not person(kind, "iot:Subscribe", tfilter("chat/in/#"), client_id="#")


@pytest.mark.parametrize("kind", PEOPLE)
def test_person_receives_only_own_inbox_and_rooms(kind):
    assert person(kind, "iot:Receive", topic(f"chat/in/{U}"))
    assert person(kind, "iot:Receive", topic("chat/pub/lobby"))
    for bad in (f"chat/in/{V}", "chat/out", "chat/stream", "$aws/events/presence/connected/x"):
        assert not person(kind, "iot:Receive", topic(bad)), bad


@pytest.mark.parametrize("kind", PEOPLE)
def test_person_publishes_only_to_chat_out_and_stream(kind):
    assert person(kind, "iot:Publish", topic("chat/out"))
    assert person(kind, "iot:Publish", topic("chat/stream"))
    for bad in (
        "chat/in/x",
        f"chat/in/{U}",
        "chat/pub/x",
        "$aws/things/x/shadow/update",
        "$aws/events/presence/connected/x",
        "chat/out/x",
        "chat",
    ):
        assert not person(kind, "iot:Publish", topic(bad)), bad
    assert not person(kind, "iot:RetainPublish", topic("chat/out"))


def test_signed_in_identity_without_attached_iot_policy_is_refused():
    sets = [[load("iam", "user-role")], []]
    request = Request("iot:Connect", client(U), {SUB: U, "iot:ClientId": U})
    assert evaluate_all(sets, request) is Decision.DENY_IMPLICIT
    assert evaluate_all(identity_sets("signed-in"), request) is Decision.ALLOW


def test_identity_policies_need_the_identity_variable():
    """Without a Cognito identity in the context the person policies grant nothing named."""
    request = Request("iot:Connect", client(U), {"iot:ClientId": U})
    assert evaluate_all(identity_sets("guest"), request) is Decision.DENY_IMPLICIT


def test_other_region_or_account_is_not_granted():
    wrong = f"arn:aws:iot:eu-west-1:{ACCOUNT}:topic/chat/out"
    assert not person("guest", "iot:Publish", wrong)
    assert not person("guest", "iot:Publish", f"arn:aws:iot:{REGION}:111111111111:topic/chat/out")


def test_device_connects_only_as_its_attached_thing():
    assert device("iot:Connect", client("pi-1"))
    assert not device("iot:Connect", client("pi-2"))
    assert not device("iot:Connect", client("pi-1"), attached=False)
    assert not device("iot:Connect", client("pi-1"), thing=None)


def test_device_topics():
    assert device("iot:Publish", topic("chat/stream"))
    assert device("iot:Publish", topic("chat/out"))
    assert device("iot:Subscribe", tfilter("chat/in/pi-1"))
    assert device("iot:Receive", topic("chat/in/pi-1"))
    assert device("iot:Subscribe", tfilter("chat/pub/lobby"))
    assert not device("iot:Subscribe", tfilter("chat/in/pi-2"))
    assert not device("iot:Subscribe", tfilter("chat/in/+"))
    assert not device("iot:Receive", topic("chat/in/pi-2"))
    assert not device("iot:Publish", topic("chat/in/pi-2"))
    assert not device("iot:Publish", topic("chat/pub/lobby"))


def test_only_backend_publishes_to_inboxes_and_only_republish_rule_to_rooms():
    inbox, room = topic(f"chat/in/{U}"), topic("chat/pub/lobby")
    publishers_of: dict[str, set[str]] = {inbox: set(), room: set()}
    for name in policy_names("iam"):
        if name == "local-admin":
            continue
        p = load("iam", name)
        for resource in publishers_of:
            if evaluate([p], Request("iot:Publish", resource, {SUB: U})).allowed:
                publishers_of[resource].add(name)
    assert publishers_of[inbox] == {"backend-lambda", "rule-republish"}
    assert publishers_of[room] == {"rule-republish"}


def test_backend_and_rule_roles_are_scoped_to_the_stack():
    backend = load("iam", "backend-lambda")
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{STACK}-messages"
    other = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/otherapp-messages"
    assert evaluate([backend], Request("dynamodb:Query", table)).allowed
    assert not evaluate([backend], Request("dynamodb:Query", other)).allowed
    assert not evaluate([backend], Request("dynamodb:DeleteTable", table)).allowed
    assert not evaluate([backend], Request("iot:Publish", topic("chat/pub/x"))).allowed
    assert evaluate([backend], Request("iot:Publish", topic("chat/events/x"))).allowed
    rule_store = load("iam", "rule-dynamodb")
    assert evaluate([rule_store], Request("dynamodb:PutItem", table)).allowed
    assert not evaluate([rule_store], Request("dynamodb:UpdateItem", table)).allowed
    assert not evaluate([rule_store], Request("dynamodb:PutItem", other)).allowed
    invoke = load("iam", "rule-lambda")
    fn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{STACK}-commands"
    assert evaluate([invoke], Request("lambda:InvokeFunction", fn)).allowed
    assert not evaluate([invoke], Request("lambda:UpdateFunctionCode", fn)).allowed
    republish = load("iam", "rule-republish")
    assert not evaluate([republish], Request("iot:Publish", topic("chat/out"))).allowed
    assert not evaluate([republish], Request("iot:Publish", topic("$aws/things/x"))).allowed


def test_local_admin_may_do_everything():
    admin = load("iam", "local-admin")
    assert evaluate([admin], Request("iot:RetainPublish", topic("$aws/x"))).allowed
    assert evaluate([admin], Request("iot:Connect", client("+"))).allowed


@pytest.mark.parametrize("kind", PEOPLE)
def test_person_connects_with_any_of_own_sessions_and_none_of_anyone_elses(kind):
    for part in ("tab-1", "cli_chat-3f9a2c1b", "x" * 64):
        own = f"{U}_{part}"
        assert person(kind, "iot:Connect", client(own), client_id=own)
        other = f"{V}_{part}"
        assert not person(kind, "iot:Connect", client(other), client_id=other)
    # Identity ids have one shape, so no person's id is a prefix of another's id and "_".
    for near in (U[:-1] + "_x", f"{U}x_1", f"{U}-1", f"{U}:1"):
        assert not person(kind, "iot:Connect", client(near), client_id=near), near


@pytest.mark.parametrize("kind", PEOPLE)
def test_each_session_reads_its_own_replies_and_nobody_elses(kind):
    own = f"chat/in/{U}_tab-1"
    assert person(kind, "iot:Subscribe", tfilter(own))
    assert person(kind, "iot:Receive", topic(own))
    for bad in (f"chat/in/{V}_tab-1", f"chat/in/{U}_+", f"chat/in/{U}_tab/#", f"chat/in/{U[:-1]}_"):
        assert not person(kind, "iot:Subscribe", tfilter(bad)), bad
    assert not person(kind, "iot:Receive", topic(f"chat/in/{V}_tab-1"))


def test_only_signed_in_people_and_devices_pass_the_private_door():
    """chat/private carries direct and group commands: guests, whose credentials anyone
    knowing their id can get on AWS, are refused by their role (docs/protocol.md)."""
    assert person("signed-in", "iot:Publish", topic("chat/private"))
    assert not person("guest", "iot:Publish", topic("chat/private"))
    # Both halves of a signed-in person's authority must allow it.
    only_role = [[load("iam", "user-role")], [load("iam", "guest-role")]]
    request = Request("iot:Publish", topic("chat/private"), {SUB: U, "iot:ClientId": U})
    assert evaluate_all(only_role, request) is not Decision.ALLOW
    # A device's certificate proves who it is: it may use the door too.
    assert device("iot:Publish", topic("chat/private"))
