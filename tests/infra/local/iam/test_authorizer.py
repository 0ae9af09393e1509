"""IAM decisions for the stack's principals, from the project's own role policies."""

from __future__ import annotations

import pytest

from infra.local.iam import AccessDenied, IamAuthorizer, Roles, RoleSessions, caller_arn
from infra.local.identity import ADMIN_PRINCIPAL, Credential, Principal

REGION, ACCOUNT, STACK = "us-east-1", "000000000000", "iotchat"
MESSAGES = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{STACK}-messages"
STATE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{STACK}-state"
STREAM = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{STACK}-stream"


@pytest.fixture(scope="module")
def roles() -> Roles:
    return Roles(region=REGION, account=ACCOUNT, stack=STACK)


@pytest.fixture
def iam(roles: Roles) -> IamAuthorizer:
    return IamAuthorizer(roles)


def guest(identity: str = "us-east-1:guest") -> Principal:
    return Principal(
        "cognito",
        identity,
        (
            ("cognito-identity.amazonaws.com:sub", identity),
            ("cognito-identity.amazonaws.com:amr", "unauthenticated"),
        ),
    )


def role_session(roles: Roles, file: str) -> Principal:
    issued: list[Credential] = []
    return RoleSessions(issued.append).issue(roles.by_file(file), "test").principal


def test_every_policy_file_but_the_admin_is_a_role_named_as_the_template_names_it(
    roles: Roles,
) -> None:
    names = sorted(role.name for role in roles)
    assert f"{STACK}-backend-lambda" in names
    assert f"{STACK}-rule-dynamodb" in names
    assert all(not name.endswith("local-admin") for name in names)
    role = roles.by_file("rule-kinesis")
    assert role.arn == f"arn:aws:iam::{ACCOUNT}:role/{STACK}-rule-kinesis"
    assert roles.by_arn(role.arn) is role


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("dynamodb:Scan", MESSAGES),
        ("dynamodb:PutItem", STATE),
        ("dynamodb:DeleteTable", MESSAGES),
        ("kinesis:PutRecord", STREAM),
        ("kinesis:DeleteStream", STREAM),
    ],
)
def test_a_guest_may_not_touch_the_backend_stores(
    iam: IamAuthorizer, action: str, resource: str
) -> None:
    with pytest.raises(AccessDenied) as refused:
        iam.check(guest(), action, resource)
    assert str(refused.value) == (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/{STACK}-guest-role/CognitoIdentityCredentials"
        f" is not authorized to perform: {action} on resource: {resource}"
        f" because no identity-based policy allows the {action} action"
    )


def test_the_admin_may_do_anything(iam: IamAuthorizer) -> None:
    iam.check(ADMIN_PRINCIPAL, "dynamodb:DeleteTable", MESSAGES)
    assert caller_arn(ADMIN_PRINCIPAL, iam.roles) == f"arn:aws:iam::{ACCOUNT}:root"


def test_the_lambda_role_reads_and_writes_the_chat_tables_and_nothing_more(
    iam: IamAuthorizer, roles: Roles
) -> None:
    backend = role_session(roles, "backend-lambda")
    iam.check(backend, "dynamodb:Query", MESSAGES + "/index/byTime")
    iam.check(backend, "dynamodb:PutItem", STATE)
    iam.check(backend, "kinesis:GetRecords", STREAM)
    for action, resource in [
        ("dynamodb:Scan", MESSAGES),
        ("dynamodb:DeleteTable", MESSAGES),
        ("kinesis:PutRecord", STREAM),
        ("dynamodb:GetItem", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/other-stack-messages"),
    ]:
        with pytest.raises(AccessDenied) as refused:
            iam.check(backend, action, resource)
        assert f"assumed-role/{STACK}-backend-lambda/test" in str(refused.value)


def test_a_rule_role_may_do_exactly_its_action(iam: IamAuthorizer, roles: Roles) -> None:
    store = role_session(roles, "rule-dynamodb")
    iam.check(store, "dynamodb:PutItem", MESSAGES)
    assert not iam.decide(store, "dynamodb:PutItem", STATE).allowed
    assert not iam.decide(store, "dynamodb:DeleteItem", MESSAGES).allowed


def test_an_explicit_deny_is_named_as_such(iam: IamAuthorizer) -> None:
    topicfilter = f"arn:aws:iot:{REGION}:{ACCOUNT}:topicfilter/chat/pub/+"
    with pytest.raises(AccessDenied) as refused:
        iam.check(guest(), "iot:Subscribe", topicfilter)
    assert refused.value.explicit
    assert str(refused.value).endswith("with an explicit deny in an identity-based policy")


def test_policy_variables_take_the_callers_identity(iam: IamAuthorizer) -> None:
    own = f"arn:aws:iot:{REGION}:{ACCOUNT}:client/us-east-1:alice"
    iam.check(guest("us-east-1:alice"), "iot:Connect", own)
    assert not iam.decide(guest("us-east-1:eve"), "iot:Connect", own).allowed


def test_unknown_roles_and_devices_have_no_identity_policy(iam: IamAuthorizer) -> None:
    stray = Principal("role", f"arn:aws:iam::{ACCOUNT}:role/nobody", (("session", "x"),))
    device = Principal("certificate", "abc123")
    for principal in (stray, device):
        assert not iam.decide(principal, "dynamodb:GetItem", MESSAGES).allowed


def test_role_sessions_get_distinct_temporary_keys_registered_with_the_store(
    roles: Roles,
) -> None:
    issued: list[Credential] = []
    sessions = RoleSessions(issued.append, lifetime=60, clock=lambda: 1000.0)
    one = sessions.issue(roles.by_file("backend-lambda"), "a")
    two = sessions.issue(roles.by_file("backend-lambda"), "b")
    assert issued == [one, two]
    assert one.access_key_id != two.access_key_id and one.access_key_id.startswith("ASIA")
    assert len(one.access_key_id) == 20 and one.session_token and one.expires_at == 1060.0
    assert one.secret_access_key != two.secret_access_key
    assert one.principal.identifier == roles.by_file("backend-lambda").arn
