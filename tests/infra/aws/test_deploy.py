"""The deploy path against moto's S3, CloudFormation, IoT, Lambda and Cognito: packaging,
upload, template validation, the change set flow, failures, the stack file, destroy."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from client.stack_file import load_stack_file
from infra.aws.deploy import (
    Cancelled,
    DeployError,
    Deployment,
    artifact_bucket_name,
    write_stack_file,
)
from infra.aws.package import build_package
from infra.aws.sign_in import handler as sign_in_handler
from infra.aws.template import build_template
from infra.aws.web import web_files
from tests.infra.aws.moto_cfn import moto_subset, neutral_bucket_policies, outputs_after_change_sets

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse")


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for var in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    neutral_bucket_policies(monkeypatch)
    outputs_after_change_sets(monkeypatch)
    with mock_aws():
        yield boto3.session.Session(region_name=REGION)


def distribution(session: Any) -> str:
    return session.client("cloudfront").create_distribution(
        DistributionConfig={
            "CallerReference": str(uuid.uuid4()),
            "Origins": {
                "Quantity": 1,
                "Items": [
                    {
                        "Id": "web",
                        "DomainName": "web.s3.amazonaws.com",
                        "S3OriginConfig": {"OriginAccessIdentity": ""},
                    }
                ],
            },
            "DefaultCacheBehavior": {
                "TargetOriginId": "web",
                "ViewerProtocolPolicy": "redirect-to-https",
            },
            "Comment": "",
            "Enabled": True,
        }
    )["Distribution"]["Id"]


def deployment(session: Any, stack: str, lines: list[str], **kwargs: Any) -> Deployment:
    """A deployment of what moto can run of the real template (tests/aws/moto_cfn.py)."""
    literal = {
        "IdentityPoolId": f"{REGION}:11111111-2222-4333-8444-555555555555",
        "UserPoolId": f"{REGION}_Abcdefghi",
        "UserPoolClientId": "clientid",
        "SignInFunction": f"{stack}-sign-in",
        "WebDistributionId": distribution(session),
        "WebUrl": "https://d111111abcdef8.cloudfront.net/",
        "UserPolicyName": f"{stack}-user",
        "DevicePolicyName": f"{stack}-device",
    }
    kwargs.setdefault(
        "template", lambda name, **options: moto_subset(build_template(name, **options), literal)
    )
    return Deployment(
        session, stack, echo=lines.append, poll_seconds=0, sleep=lambda _: None, **kwargs
    )


def deployed(session: Any, tmp_path: Path, stack: str = "chat-a") -> tuple[Deployment, Path]:
    """``stack`` deployed to moto without the stream, and the stack file the deploy wrote."""
    stack_file = tmp_path / "stack.json"
    deploy = deployment(session, stack, [])
    deploy.deploy(stream=False, yes=True, stack_file=stack_file)
    return deploy, stack_file


# ------------------------------------------------------------------ packaging


def test_lambda_package_holds_what_the_handlers_import_and_runs_alone(tmp_path: Path) -> None:
    package = build_package()
    assert build_package().data == package.data  # reproducible: same code, same key
    assert package.key == f"lambda/{package.sha256}.zip"
    names = set(zipfile.ZipFile(io.BytesIO(package.data)).namelist())
    assert {"lambdas/handlers.py", "lambdas/chat/store.py", "infra/aws/sign_in.py"} <= names
    assert not any(n.startswith(("infra/local", "client/", "tests/", "iot_rules")) for n in names)
    assert "lambdas/manifest.py" not in names
    zipfile.ZipFile(io.BytesIO(package.data)).extractall(tmp_path)
    probe = (
        "import sys; sys.path.insert(0, '.');"
        "import lambdas.handlers as h, infra.aws.sign_in as s;"
        "print(callable(h.commands) and callable(h.presence) and callable(h.stream) "
        "and callable(h.rule_errors) and callable(s.handler))"
    )
    # -I: no PYTHONPATH, no current directory: only the zip's files and the runtime's boto3.
    result = subprocess.run(
        [sys.executable, "-I", "-c", probe], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.stdout.strip() == "True", result.stderr


# ------------------------------------------------------------------ deploy


def test_deploy_uploads_creates_the_stack_and_writes_a_stack_file_clients_read(
    session: Any, tmp_path: Path
) -> None:
    lines: list[str] = []
    stack_file = tmp_path / "stack.json"
    content = deployment(session, "chat-a", lines).deploy(
        stream=None, yes=True, stack_file=stack_file
    )
    s3 = session.client("s3")
    bucket = artifact_bucket_name("chat-a", ACCOUNT, REGION)
    # The artifacts bucket is private, encrypted and TLS-only.
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    assert s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    assert "aws:SecureTransport" in s3.get_bucket_policy(Bucket=bucket)["Policy"]
    package = build_package()
    body = s3.get_object(Bucket=bucket, Key=package.key)["Body"].read()
    assert body == package.data
    # The stack ran the change set with the deploy-time parameters.
    stack = session.client("cloudformation").describe_stacks(StackName="chat-a")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    params = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    # moto answers DescribeEndpoint with a fresh random -ats host on every call.
    endpoint = params["IotDataEndpoint"]
    assert endpoint.endswith(f"-ats.iot.{REGION}.amazonaws.com")
    assert params == {
        "CodeBucket": bucket,
        "CodeKey": package.key,
        "IotDataEndpoint": endpoint,
        "EnableStream": "false",
        "LogRetentionDays": "30",
    }
    function = session.client("lambda").get_function_configuration(FunctionName="chat-a-commands")
    assert function["Environment"]["Variables"]["IOT_DATA_ENDPOINT"] == endpoint
    assert function["Handler"] == "lambdas.handlers.commands"
    tables = session.client("dynamodb").list_tables()["TableNames"]
    assert {"chat-a-messages", "chat-a-state"} <= set(tables)
    # The web app and its config are in the stack's web bucket.
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    web = outputs["WebBucketName"]
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=web)["Contents"]}
    assert keys == {*web_files(), "config.json"}
    config = json.loads(s3.get_object(Bucket=web, Key="config.json")["Body"].read())
    assert config["iot"]["url"] == f"wss://{endpoint}/mqtt"
    assert config["identityPoolId"] == content["cognito"]["identityPoolId"]
    assert config["apiEndpoint"] is None and config["signInFunction"] == "chat-a-sign-in"
    # The stack file has the local one's shape, and the clients read it.
    assert json.loads(stack_file.read_text()) == content
    info = load_stack_file(stack_file)
    assert (info.kind, info.region, info.stack_name) == ("aws", REGION, "chat-a")
    assert (info.iot_host, info.wss_port, info.api_endpoint) == (endpoint, 443, None)
    assert info.user_pool_client_id == "clientid"
    assert any("CREATE_COMPLETE" in line for line in lines)  # progress was shown
    # `iotchat outputs` finds the stack from the stack file.
    from cli.main import app

    shown = CliRunner().invoke(app, ["outputs", "--stack-file", str(stack_file), "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["WebBucketName"] == web


def test_the_change_set_is_shown_and_declining_it_leaves_nothing(
    session: Any, tmp_path: Path
) -> None:
    """The full template (moto validates it with cfn-lint and lists its changes)."""
    lines: list[str] = []
    questions: list[str] = []

    def decline(question: str) -> bool:
        questions.append(question)
        return False

    stack_file = tmp_path / "stack.json"
    deploy = deployment(session, "chat-b", lines, template=build_template, confirm=decline)
    with pytest.raises(Cancelled):
        deploy.deploy(stream=True, yes=False, stack_file=stack_file)
    assert questions == ["Apply these changes?"]
    shown = "\n".join(lines)
    for logical_id in build_template("chat-b")["Resources"]:
        assert logical_id in shown
    cfn = session.client("cloudformation")
    assert cfn.list_change_sets(StackName="chat-b")["Summaries"] == []
    assert deploy.describe() is None  # the review-only stack was removed
    assert not stack_file.exists()


class FailingUpdates:
    """The real (moto) CloudFormation client, except that executing a change set makes the
    stack roll back with one failed resource, as CloudFormation reports it."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.executed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def execute_change_set(self, **kwargs: Any) -> dict[str, Any]:
        self.executed = True
        return {}

    def describe_stacks(self, **kwargs: Any) -> dict[str, Any]:
        response = self.real.describe_stacks(**kwargs)
        if self.executed:
            response["Stacks"][0]["StackStatus"] = "UPDATE_ROLLBACK_COMPLETE"
        return response

    def get_paginator(self, name: str) -> Any:
        paginator = self.real.get_paginator(name)
        if name != "describe_stack_events" or not self.executed:
            return paginator
        failed = {
            "EventId": "failed-1",
            "StackName": "chat-a",
            "LogicalResourceId": "RuleChatRoomMessage",
            "ResourceType": "AWS::IoT::TopicRule",
            "ResourceStatus": "UPDATE_FAILED",
            "ResourceStatusReason": "Resource handler returned message: Invalid SQL",
            "Timestamp": datetime.now(UTC),
        }

        class Pages:
            def paginate(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
                yield {"StackEvents": [failed]}
                yield from paginator.paginate(**kwargs)

        return Pages()


def test_a_failed_update_is_reported_and_the_stack_file_is_untouched(
    session: Any, tmp_path: Path
) -> None:
    _, stack_file = deployed(session, tmp_path)
    before = stack_file.read_bytes()
    lines: list[str] = []
    second = deployment(session, "chat-a", lines)
    second.cfn = FailingUpdates(second.cfn)
    with pytest.raises(DeployError) as failure:
        second.deploy(stream=True, yes=True, stack_file=stack_file)
    message = str(failure.value)
    assert "UPDATE_ROLLBACK_COMPLETE" in message
    assert "RuleChatRoomMessage (AWS::IoT::TopicRule): Resource handler returned message" in (
        message
    )
    assert stack_file.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stack.json"]  # no temporary file


def test_a_redeploy_keeps_the_stream_setting_unless_told(session: Any, tmp_path: Path) -> None:
    stack_file = tmp_path / "stack.json"
    deploy = deployment(session, "chat-s", [])
    deploy.deploy(stream=True, yes=True, stack_file=stack_file)
    deploy.deploy(stream=None, yes=True, stack_file=stack_file)
    stack = deploy.describe() or {}
    params = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert params["EnableStream"] == "true"
    assert json.loads(stack_file.read_text())["stream"] == {"enabled": True}


def test_deploy_refuses_to_overwrite_a_local_stacks_file(session: Any, tmp_path: Path) -> None:
    stack_file = tmp_path / "stack.json"
    write_stack_file(stack_file, {"kind": "local", "region": "us-east-1"})
    with pytest.raises(DeployError, match="local stack"):
        deployment(session, "chat-a", []).deploy(stream=False, yes=True, stack_file=stack_file)
    assert json.loads(stack_file.read_text())["kind"] == "local"


# ------------------------------------------------------------------ destroy


def test_destroy_empties_the_buckets_deletes_the_stack_and_the_stack_file(
    session: Any, tmp_path: Path
) -> None:
    deploy, stack_file = deployed(session, tmp_path)
    web = deploy.outputs()["WebBucketName"]
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"kind": "aws", "stackName": "chat-z", "region": REGION}))
    lines: list[str] = []
    destroy = deployment(session, "chat-a", lines)
    with pytest.raises(Cancelled):
        destroy.destroy(yes=False)  # no confirmation, nothing deleted
    assert destroy.describe() is not None
    destroy.destroy(yes=True, stack_file=stack_file)
    assert destroy.describe() is None
    buckets = {b["Name"] for b in session.client("s3").list_buckets()["Buckets"]}
    assert web not in buckets
    assert artifact_bucket_name("chat-a", ACCOUNT, REGION) not in buckets
    assert not stack_file.exists()
    assert other.exists()


def test_destroy_detaches_an_iot_policy_from_every_identity(session: Any) -> None:
    iot = session.client("iot")
    iot.create_policy(
        policyName="chat-a-user",
        policyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )
    cognito = session.client("cognito-identity")
    pool = cognito.create_identity_pool(
        IdentityPoolName="chat", AllowUnauthenticatedIdentities=True
    )["IdentityPoolId"]
    targets = [cognito.get_id(IdentityPoolId=pool)["IdentityId"] for _ in range(3)]
    targets.append(iot.create_keys_and_certificate(setAsActive=True)["certificateArn"])
    for target in targets:
        iot.attach_policy(policyName="chat-a-user", target=target)
    assert len(iot.list_targets_for_policy(policyName="chat-a-user")["targets"]) == 4
    Deployment(session, "chat-a", echo=lambda _: None)._detach_all("chat-a-user")
    assert iot.list_targets_for_policy(policyName="chat-a-user")["targets"] == []
    iot.delete_policy(policyName="chat-a-user")  # what CloudFormation then does


# ------------------------------------------------------------------ sign-in step


def test_sign_in_attaches_the_user_policy_to_the_tokens_identity(
    session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = session.client("cognito-identity").create_identity_pool(
        IdentityPoolName="chat", AllowUnauthenticatedIdentities=True
    )["IdentityPoolId"]
    iot = session.client("iot")
    iot.create_policy(
        policyName="chat-a-user",
        policyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )
    monkeypatch.setenv("IDENTITY_POOL_ID", pool)
    monkeypatch.setenv("USER_POOL_PROVIDER", f"cognito-idp.{REGION}.amazonaws.com/{REGION}_x")
    monkeypatch.setenv("USER_POLICY_NAME", "chat-a-user")
    assert sign_in_handler({}, None)["error"] == "BAD_REQUEST"
    result = sign_in_handler({"idToken": "header.payload.signature"}, None)
    assert result["policyName"] == "chat-a-user"
    targets = iot.list_targets_for_policy(policyName="chat-a-user")["targets"]
    assert targets == [result["identityId"]]


# ------------------------------------------------------------------ the command line


def test_iotchat_template_writes_the_stacks_template(tmp_path: Path) -> None:
    from cli.main import app

    out = tmp_path / "t.json"
    result = CliRunner().invoke(app, ["template", "--stack", "chat-c", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text()) == build_template("chat-c")
    reserving = ["template", "--stack", "chat-c", "--reserve-concurrency", "--output", str(out)]
    assert CliRunner().invoke(app, reserving).exit_code == 0
    assert json.loads(out.read_text()) == build_template("chat-c", reserve_concurrency=True)
    refused = CliRunner().invoke(app, ["template", "--stack", "Chat_C"])
    assert refused.exit_code == 1
    assert "stack name" in refused.output
