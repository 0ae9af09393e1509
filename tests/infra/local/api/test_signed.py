"""The edge's own signed services: routing by botocore's models, and the answers a client reads
when a request is not signed, not allowed or not served, each in its protocol's shape. Requests
go over a real socket to a running stack, unsigned with urllib or signed with boto3."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError

from infra.local.api.signed import RestRoutes, rest_input, service_model
from tests.support import cognito
from tests.support.stack import InProcessStack, fresh_stack

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessStack]:
    with fresh_stack(tmp_path_factory, "signed") as running:
        yield running


def _unsigned(stack: InProcessStack, method: str, path: str, body: bytes | None = None):
    request = urllib.request.Request(stack.endpoint + path, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as refused:
        return refused.code, dict(refused.headers), refused.read()


def test_rest_paths_match_the_models_operations():
    iot = RestRoutes(service_model("iot"))
    assert iot.match("GET", "/things/kitchen-pi", {}) == (
        "DescribeThing",
        {"thingName": "kitchen-pi"},
    )
    assert iot.match("GET", "/things", {})[0] == "ListThings"
    assert iot.match("PUT", "/things/kitchen-pi/principals", {})[0] == "AttachThingPrincipal"
    assert iot.match("GET", "/nothing-here", {}) is None
    lam = RestRoutes(service_model("lambda"))
    operation, params = lam.match("POST", "/2015-03-31/functions/f%3A1/invocations", {})
    assert operation == "Invoke"
    parsed = rest_input(
        service_model("lambda").operation_model("Invoke"),
        params,
        [("Qualifier", "$LATEST")],
        {"X-Amz-Invocation-Type": "DryRun"},
        b'{"a":1}',
    )
    assert parsed == {
        "FunctionName": "f:1",
        "Qualifier": "$LATEST",
        "InvocationType": "DryRun",
        "Payload": b'{"a":1}',
    }


def test_unsigned_requests_are_refused_in_each_services_shape(stack):
    status, headers, body = _unsigned(stack, "GET", "/things")
    assert status == 403 and headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    status, _, body = _unsigned(stack, "POST", "/", b"Action=GetCallerIdentity&Version=2011-06-15")
    assert status == 403 and b"<Code>MissingAuthenticationToken</Code>" in body
    # The same calls signed by the admin are answered.
    assert stack.client("iot").list_things()["things"] == []
    assert stack.client("sts").get_caller_identity()["Account"] == "000000000000"


def test_a_bad_signature_and_an_unknown_key_are_refused(stack):
    wrong = boto3.client(
        "iot",
        endpoint_url=stack.endpoint,
        region_name=stack.info["region"],
        aws_access_key_id="test",
        aws_secret_access_key="not-the-secret",
    )
    with pytest.raises(ClientError) as refused:
        wrong.list_things()
    assert refused.value.response["Error"]["Code"] == "InvalidSignatureException"
    stranger = stack.client("lambda", key="AKIAUNKNOWN", secret="x")
    with pytest.raises(ClientError) as unknown:
        stranger.list_functions()
    assert unknown.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_unserved_operations_name_themselves_in_each_protocol(stack):
    for service, call, kwargs, operation in (
        ("iot", "list_thing_groups", {}, "ListThingGroups"),
        ("lambda", "list_layers", {}, "ListLayers"),
        ("logs", "describe_destinations", {}, "DescribeDestinations"),
        ("sts", "get_session_token", {}, "GetSessionToken"),
        (
            "cognito-identity",
            "list_tags_for_resource",
            {"ResourceArn": "arn:aws:cognito-identity:x"},
            "ListTagsForResource",
        ),
    ):
        client = stack.client(service)
        with pytest.raises(ClientError) as refused:
            getattr(client, call)(**kwargs)
        error = refused.value.response["Error"]
        assert error["Code"] == "NotImplementedException", (service, error)
        assert error["Message"].startswith(f"{operation} is not served by the local stack")
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501


def test_a_role_session_is_named_and_refused_beyond_its_role(stack):
    _, keys = cognito.signed_in_credentials(stack)
    creds = (keys["AccessKeyId"], keys["SecretKey"], keys["SessionToken"])
    me = stack.client("sts", *creds).get_caller_identity()
    assert me["Arn"].endswith(":assumed-role/iotchat-user-role/CognitoIdentityCredentials")
    assert me["UserId"].startswith("AROA") and me["UserId"].endswith(":CognitoIdentityCredentials")
    with pytest.raises(ClientError) as refused:
        stack.client("iot", *creds).list_things()
    error = refused.value.response["Error"]
    assert error["Code"] == "AccessDeniedException"
    assert "iot:ListThings" in error["Message"] and "iotchat-user-role" in error["Message"]
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    body = json.dumps(stack.client("iot").list_things())  # the admin's same call works
    assert "things" in body


def test_a_lambda_role_session_is_named_by_sts_and_may_read_only_what_its_role_allows(stack):
    assert stack.stack.lambdas is not None
    session = stack.stack.lambdas.role_credentials("iotchat-commands")
    assert session is not None
    creds = (session.access_key_id, session.secret_access_key, session.session_token)
    me = stack.client("sts", *creds).get_caller_identity()
    assert me["Arn"] == (
        "arn:aws:sts::000000000000:assumed-role/iotchat-backend-lambda/iotchat-commands"
    )
    with pytest.raises(ClientError) as refused:
        stack.client("iot", *creds).create_thing(thingName="from-a-lambda")
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "from-a-lambda" not in json.dumps(stack.client("iot").list_things())
