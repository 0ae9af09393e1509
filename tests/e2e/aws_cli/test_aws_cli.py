"""The AWS CLI against a running local stack, as a LocalStack user drives it: ``AWS_ENDPOINT_URL``
and the admin keys, one stack for the module. Each test runs the real ``aws`` command and reads
its output; a guest's credentials are refused on every control-plane call, beside the admin's
same calls that work. docs/aws-cli.md lists what is served."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import awscrt.mqtt
import pytest
from awsiot import mqtt_connection_builder

from tests.support import cognito
from tests.support.stack import InProcessStack, fresh_stack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(240)
AWS = [str(Path(sys.executable).with_name("aws"))]
TIMEOUT = 15.0
REPUBLISH_ROLE = "arn:aws:iam::000000000000:role/iotchat-rule-republish"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessStack]:
    with fresh_stack(tmp_path_factory, "aws-cli") as running:
        yield running


def _env(stack: InProcessStack, key: str, secret: str, token: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=stack.endpoint,
        AWS_ACCESS_KEY_ID=key,
        AWS_SECRET_ACCESS_KEY=secret,
        AWS_DEFAULT_REGION=stack.info["region"],
        # The developer's own files must not change what the CLI sends.
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_MAX_ATTEMPTS="1",
    )
    if token is not None:
        env["AWS_SESSION_TOKEN"] = token
    return env


def aws(
    stack: InProcessStack,
    *args: str,
    key: str = "test",
    secret: str = "test",
    token: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """``aws <args>`` as the admin (or the given keys); the process, output captured."""
    return subprocess.run(
        [*AWS, *args, "--output", "json"],
        env=_env(stack, key, secret, token),
        capture_output=True,
        text=True,
        timeout=60,
    )


def ok(stack: InProcessStack, *args: str) -> Any:
    """The JSON ``aws <args>`` prints as the admin, which must succeed."""
    done = aws(stack, *args)
    assert done.returncode == 0, f"aws {' '.join(args)}: {done.stderr}"
    return json.loads(done.stdout) if done.stdout.strip() else None


def test_caller_identity_endpoint_and_unserved_operations(stack):
    me = ok(stack, "sts", "get-caller-identity")
    assert me == {"UserId": "000000000000", "Account": "000000000000", "Arn": me["Arn"]}
    assert me["Arn"] == "arn:aws:iam::000000000000:root"
    endpoint = ok(stack, "iot", "describe-endpoint", "--endpoint-type", "iot:Data-ATS")
    assert endpoint == {"endpointAddress": stack.info["iot"]["host"]}
    # One unserved operation per protocol: rest-json, json, query. Each is named.
    for args, operation in (
        (("iot", "list-thing-groups"), "ListThingGroups"),
        (("logs", "list-tags-log-group", "--log-group-name", "x"), "ListTagsLogGroup"),
        (("sts", "get-session-token"), "GetSessionToken"),
        (("cognito-idp", "list-groups", "--user-pool-id", "x"), "ListGroups"),
    ):
        refused = aws(stack, *args)
        assert refused.returncode != 0
        assert f"{operation} is not served by the local stack" in refused.stderr, refused.stderr


def _mtls(
    directory: Path, port: int, client_id: str, interrupted: threading.Event
) -> awscrt.mqtt.Connection:
    return mqtt_connection_builder.mtls_from_path(
        endpoint="localhost",  # the stack's server certificate names localhost
        port=port,
        cert_filepath=str(directory / "device.pem.crt"),
        pri_key_filepath=str(directory / "private.pem.key"),
        ca_filepath=str(directory / "ca.pem"),
        client_id=client_id,
        clean_session=True,
        reconnect_min_timeout_secs=30,
        on_connection_interrupted=lambda *_args, **_kw: interrupted.set(),
    )


def test_a_device_made_with_the_cli_connects_over_mutual_tls(stack, tmp_path):
    thing = f"cli-pi-{uuid.uuid4().hex[:6]}"
    made = ok(stack, "iot", "create-thing", "--thing-name", thing)
    assert made["thingArn"].endswith(f":thing/{thing}")
    assert ok(stack, "iot", "describe-thing", "--thing-name", thing)["thingName"] == thing
    assert thing in [t["thingName"] for t in ok(stack, "iot", "list-things")["things"]]

    keys = ok(stack, "iot", "create-keys-and-certificate", "--set-as-active")
    cert_id, cert_arn = keys["certificateId"], keys["certificateArn"]
    (tmp_path / "device.pem.crt").write_text(keys["certificatePem"])
    (tmp_path / "private.pem.key").write_text(keys["keyPair"]["PrivateKey"])
    (tmp_path / "ca.pem").write_text(Path(stack.info["iot"]["caFile"]).read_text())
    listed = ok(stack, "iot", "list-certificates")["certificates"]
    assert {"certificateId": cert_id, "status": "ACTIVE"}.items() <= next(
        c for c in listed if c["certificateId"] == cert_id
    ).items()

    policies = [p["policyName"] for p in ok(stack, "iot", "list-policies")["policies"]]
    assert "iotchat-device" in policies
    document = json.loads(
        ok(stack, "iot", "get-policy", "--policy-name", "iotchat-device")["policyDocument"]
    )
    assert any("iot:Connect" in str(s["Action"]) for s in document["Statement"])
    ok(stack, "iot", "attach-policy", "--policy-name", "iotchat-device", "--target", cert_arn)
    ok(stack, "iot", "attach-thing-principal", "--thing-name", thing, "--principal", cert_arn)

    interrupted = threading.Event()
    connection = _mtls(tmp_path, stack.info["iot"]["mqttsPort"], thing, interrupted)
    connection.connect().result(TIMEOUT)
    try:
        message = json.dumps({"type": "message", "room": "lobby", "body": "hi"}).encode()
        publish, _ = connection.publish("chat/out", message, awscrt.mqtt.QoS.AT_LEAST_ONCE)
        publish.result(TIMEOUT)  # the PUBACK: the attached device policy allowed it
        # Deactivating the certificate closes its live connection, as on AWS.
        ok(
            stack,
            "iot",
            "update-certificate",
            "--certificate-id",
            cert_id,
            "--new-status",
            "INACTIVE",
        )
        assert interrupted.wait(TIMEOUT)
    finally:
        stopped = connection.disconnect()  # also ends awscrt's reconnect attempts
        if not interrupted.is_set():
            stopped.result(TIMEOUT)
    status = ok(stack, "iot", "describe-certificate", "--certificate-id", cert_id)
    assert status["certificateDescription"]["status"] == "INACTIVE"
    again = _mtls(tmp_path, stack.info["iot"]["mqttsPort"], thing, threading.Event())
    with pytest.raises(Exception):  # noqa: B017 - awscrt raises its own error types
        again.connect().result(TIMEOUT)


def _republished(stack: InProcessStack, topic: str, marker: str) -> bool:
    return any(marker.encode() in event.payload for event in stack.taps_on(topic))


def test_topic_rules_listed_created_in_force_at_once_then_disabled(stack, tmp_path):
    names = [r["ruleName"] for r in ok(stack, "iot", "list-topic-rules")["rules"]]
    assert "chat_room_message" in names
    rule = ok(stack, "iot", "get-topic-rule", "--rule-name", "chat_room_message")["rule"]
    assert "FROM 'chat/out'" in rule["sql"]

    name = f"cli_echo_{uuid.uuid4().hex[:6]}"
    payload = {
        "sql": "SELECT * FROM 'cli/in'",
        "awsIotSqlVersion": "2016-03-23",
        "actions": [
            {"republish": {"topic": "chat/pub/cli-echo", "roleArn": REPUBLISH_ROLE, "qos": 0}}
        ],
    }
    ok(
        stack,
        "iot",
        "create-topic-rule",
        "--rule-name",
        name,
        "--topic-rule-payload",
        json.dumps(payload),
    )
    assert ok(stack, "iot", "get-topic-rule", "--rule-name", name)["rule"]["ruleDisabled"] is False
    ok(stack, "iot-data", "publish", "--topic", "cli/in", "--payload", '{"n":"first"}')
    wait_for(lambda: _republished(stack, "chat/pub/cli-echo", "first"), TIMEOUT)
    saved = stack.stack.state_dir / "iot" / "topic-rules.json"
    assert name in json.loads(saved.read_text())["rules"]  # lasts across restarts
    assert saved.stat().st_mode & 0o077 == 0

    ok(stack, "iot", "disable-topic-rule", "--rule-name", name)
    ok(stack, "iot-data", "publish", "--topic", "cli/in", "--payload", '{"n":"second"}')
    wait_for(lambda: _republished(stack, "cli/in", "second"), TIMEOUT)
    assert stack.stack.rules is not None
    stack.call(lambda: stack.stack.rules.drain(TIMEOUT), timeout=TIMEOUT + 5)
    assert not _republished(stack, "chat/pub/cli-echo", "second")
    # A rule the engine cannot compile is refused and changes nothing.
    broken = {**payload, "sql": "SELECT FROM WHERE"}
    refused = aws(
        stack,
        "iot",
        "create-topic-rule",
        "--rule-name",
        name + "_x",
        "--topic-rule-payload",
        json.dumps(broken),
    )
    assert refused.returncode != 0 and "SqlParseException" in refused.stderr
    assert name + "_x" not in [r["ruleName"] for r in ok(stack, "iot", "list-topic-rules")["rules"]]


def test_lambda_invoke_and_its_log_group(stack, tmp_path):
    functions = [f["FunctionName"] for f in ok(stack, "lambda", "list-functions")["Functions"]]
    assert "iotchat-rule-errors" in functions
    since = int(time.time() * 1000) - 1000
    out = tmp_path / "out.json"
    event = {"ruleName": "cli", "topic": "chat/out", "failures": []}
    invoked = ok(
        stack,
        "lambda", "invoke", "--function-name", "iotchat-rule-errors",
        "--payload", json.dumps(event), "--log-type", "Tail", str(out),
    )  # fmt: skip
    assert invoked["StatusCode"] == 200 and "FunctionError" not in invoked
    tail = base64.b64decode(invoked["LogResult"]).decode()
    request_id = tail.split("START RequestId: ", 1)[1].split()[0]
    json.loads(out.read_text())  # the function's answer, as JSON

    groups = [g["logGroupName"] for g in ok(stack, "logs", "describe-log-groups")["logGroups"]]
    assert "/aws/lambda/iotchat-rule-errors" in groups and "AWSIotLogsV2" in groups
    group = "/aws/lambda/iotchat-rule-errors"
    streams = ok(stack, "logs", "describe-log-streams", "--log-group-name", group)["logStreams"]
    assert len(streams) == 1
    # What `aws logs tail GROUP --since ...` (AWS CLI v2) asks for: FilterLogEvents from a time.
    found = ok(
        stack, "logs", "filter-log-events", "--log-group-name", group, "--start-time", str(since)
    )["events"]
    assert any(f"END RequestId: {request_id}" in e["message"] for e in found)
    events = ok(
        stack,
        "logs", "get-log-events", "--log-group-name", group,
        "--log-stream-name", streams[0]["logStreamName"], "--start-from-head",
    )["events"]  # fmt: skip
    assert any(f"START RequestId: {request_id}" in e["message"] for e in events)

    # `logs tail --follow` (CLI v2) polls FilterLogEvents from the newest time it saw and skips
    # the event ids it printed: a later invocation shows up in a later poll, once.
    seen = {e["eventId"] for e in found}
    newest = max(e["timestamp"] for e in found)
    again = ok(
        stack,
        "lambda", "invoke", "--function-name", "iotchat-rule-errors",
        "--payload", json.dumps(event), "--log-type", "Tail", str(out),
    )  # fmt: skip
    later = base64.b64decode(again["LogResult"]).decode().split("START RequestId: ", 1)[1]
    polled = ok(
        stack, "logs", "filter-log-events", "--log-group-name", group, "--start-time", str(newest)
    )["events"]
    fresh = [e for e in polled if e["eventId"] not in seen]
    assert any(f"END RequestId: {later.split()[0]}" in e["message"] for e in fresh)
    assert not any(request_id in e["message"] for e in fresh)


def _cli_v2() -> str:
    """Debian's AWS CLI v2 (``apt-get install awscli``, in ``scripts/setup --dev``): ``logs
    tail`` exists only in v2, which is not on PyPI; the dev extras pin v1 for the rest."""
    path = "/usr/bin/aws"
    version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
    assert version.stdout.startswith("aws-cli/2."), f"no AWS CLI v2 at {path}: {version}"
    return path


def _invoke_rule_errors(stack: InProcessStack, out: Path) -> str:
    """Invoke the rule-errors function through the CLI; its request id."""
    event = {"ruleName": "cli", "topic": "chat/out", "failures": []}
    invoked = ok(
        stack,
        "lambda", "invoke", "--function-name", "iotchat-rule-errors",
        "--payload", json.dumps(event), "--log-type", "Tail", str(out),
    )  # fmt: skip
    tail = base64.b64decode(invoked["LogResult"]).decode()
    return tail.split("START RequestId: ", 1)[1].split()[0]


def test_logs_tail_prints_and_follows_a_functions_log(stack, tmp_path):
    cli = _cli_v2()
    group = "/aws/lambda/iotchat-rule-errors"
    # v2.9 predates AWS_ENDPOINT_URL (v2.13): the endpoint goes on the command line too.
    env = _env(stack, "test", "test", None)
    first = _invoke_rule_errors(stack, tmp_path / "out.json")
    done = subprocess.run(
        [cli, "logs", "tail", group, "--since", "10m", "--endpoint-url", stack.endpoint],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert f"END RequestId: {first}" in done.stdout

    lines: list[str] = []
    follow = subprocess.Popen(
        [cli, "logs", "tail", group, "--follow", "--since", "1s", "--endpoint-url", stack.endpoint],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    reader = threading.Thread(
        target=lambda: lines.extend(iter(follow.stdout.readline, "")),  # type: ignore[union-attr]
        daemon=True,
    )
    reader.start()
    try:
        later = _invoke_rule_errors(stack, tmp_path / "out.json")
        # `--follow` polls every few seconds: the later invocation appears, once.
        wait_for(lambda: any(f"END RequestId: {later}" in line for line in lines), 30)
        assert sum(f"END RequestId: {later}" in line for line in lines) == 1
    finally:
        follow.terminate()
        follow.wait(10)


def test_cognito_admin_calls_and_the_sign_up_path(stack):
    pool = stack.info["cognito"]["userPoolId"]
    client = stack.info["cognito"]["userPoolClientId"]
    assert pool in [
        p["Id"]
        for p in ok(stack, "cognito-idp", "list-user-pools", "--max-results", "10")["UserPools"]
    ]
    described = ok(stack, "cognito-idp", "describe-user-pool", "--user-pool-id", pool)
    assert described["UserPool"]["Id"] == pool
    username = f"cli-{uuid.uuid4().hex[:6]}"
    ok(
        stack,
        "cognito-idp", "sign-up", "--client-id", client, "--username", username,
        "--password", cognito.PASSWORD,
        "--user-attributes", f"Name=email,Value={username}@example.com",
    )  # fmt: skip
    ok(
        stack,
        "cognito-idp",
        "admin-confirm-sign-up",
        "--user-pool-id",
        pool,
        "--username",
        username,
    )
    user = ok(
        stack, "cognito-idp", "admin-get-user", "--user-pool-id", pool, "--username", username
    )
    assert user["UserStatus"] == "CONFIRMED"
    assert {"password", "salt"}.isdisjoint(a["Name"] for a in user["UserAttributes"])
    signed_in = ok(
        stack,
        "cognito-idp", "initiate-auth", "--client-id", client, "--auth-flow", "USER_PASSWORD_AUTH",
        "--auth-parameters", f"USERNAME={username},PASSWORD={cognito.PASSWORD}",
    )  # fmt: skip
    assert signed_in["AuthenticationResult"]["IdToken"]
    identity_pool = stack.info["cognito"]["identityPoolId"]
    pools = ok(stack, "cognito-identity", "list-identity-pools", "--max-results", "10")
    assert identity_pool in [p["IdentityPoolId"] for p in pools["IdentityPools"]]
    guest = ok(stack, "cognito-identity", "get-id", "--identity-pool-id", identity_pool)
    keys = ok(
        stack,
        "cognito-identity",
        "get-credentials-for-identity",
        "--identity-id",
        guest["IdentityId"],
    )
    assert keys["Credentials"]["AccessKeyId"]


def test_the_data_plane_calls_that_worked_before(stack):
    ok(stack, "iot-data", "publish", "--topic", "chat/out", "--payload", '{"type":"ping"}')
    tables = ok(stack, "dynamodb", "list-tables")["TableNames"]
    assert "iotchat-messages" in tables
    ok(stack, "dynamodb", "describe-table", "--table-name", "iotchat-messages")
    assert "Items" in ok(stack, "dynamodb", "scan", "--table-name", "iotchat-messages")
    streams = ok(stack, "kinesis", "list-streams")["StreamNames"]
    assert streams
    ok(stack, "kinesis", "describe-stream-summary", "--stream-name", streams[0])
    shard = ok(stack, "kinesis", "list-shards", "--stream-name", streams[0])["Shards"][0]
    iterator = ok(
        stack,
        "kinesis", "get-shard-iterator", "--stream-name", streams[0],
        "--shard-id", shard["ShardId"], "--shard-iterator-type", "TRIM_HORIZON",
    )["ShardIterator"]  # fmt: skip
    assert "Records" in ok(stack, "kinesis", "get-records", "--shard-iterator", iterator)
    # Sign-up confirmed with the code the local pool "mailed", unsigned as on AWS.
    client = stack.info["cognito"]["userPoolClientId"]
    username = f"mailed-{uuid.uuid4().hex[:6]}"
    ok(
        stack,
        "cognito-idp", "sign-up", "--client-id", client, "--username", username,
        "--password", cognito.PASSWORD,
        "--user-attributes", f"Name=email,Value={username}@example.com",
    )  # fmt: skip
    (code,) = cognito.outbox_codes(stack.stack.state_dir, username)
    confirmed = aws(
        stack, "cognito-idp", "confirm-sign-up", "--client-id", client,
        "--username", username, "--confirmation-code", code,
    )  # fmt: skip
    assert confirmed.returncode == 0, confirmed.stderr


# Every control-plane call above, with the arguments that make it valid for the admin.
CONTROL_PLANE = [
    ("iot", "describe-endpoint", "--endpoint-type", "iot:Data-ATS"),
    ("iot", "create-thing", "--thing-name", "guest-thing"),
    ("iot", "describe-thing", "--thing-name", "guest-thing"),
    ("iot", "list-things"),
    ("iot", "create-keys-and-certificate", "--set-as-active"),
    ("iot", "list-certificates"),
    ("iot", "list-policies"),
    ("iot", "get-policy", "--policy-name", "iotchat-device"),
    ("iot", "list-topic-rules"),
    ("iot", "get-topic-rule", "--rule-name", "chat_room_message"),
    ("iot", "disable-topic-rule", "--rule-name", "chat_room_message"),
    ("lambda", "list-functions"),
    ("lambda", "invoke", "--function-name", "iotchat-rule-errors", "--payload", "{}", os.devnull),
    ("logs", "describe-log-groups"),
    ("logs", "filter-log-events", "--log-group-name", "/aws/lambda/iotchat-rule-errors"),
    ("cognito-idp", "list-user-pools", "--max-results", "10"),
    ("cognito-identity", "list-identity-pools", "--max-results", "10"),
]


def test_a_guest_is_refused_every_control_plane_call(stack):
    _, keys = cognito.guest_credentials(stack)
    creds = {"key": keys["AccessKeyId"], "secret": keys["SecretKey"], "token": keys["SessionToken"]}
    me = json.loads(aws(stack, "sts", "get-caller-identity", **creds).stdout)
    assert me["Arn"].endswith(":assumed-role/iotchat-guest-role/CognitoIdentityCredentials")
    pool = stack.info["cognito"]["userPoolId"]
    calls = [
        *CONTROL_PLANE,
        ("cognito-idp", "describe-user-pool", "--user-pool-id", pool),
        ("cognito-idp", "admin-confirm-sign-up", "--user-pool-id", pool, "--username", "nobody"),
    ]
    for call in calls:
        refused = aws(stack, *call, **creds)
        assert refused.returncode != 0, call
        assert "AccessDeniedException" in refused.stderr, (call, refused.stderr)
        assert "iotchat-guest-role" in refused.stderr, call
    # Nothing the guest tried happened; the rule it tried to disable still runs.
    assert (
        ok(stack, "iot", "get-topic-rule", "--rule-name", "chat_room_message")["rule"][
            "ruleDisabled"
        ]
        is False
    )
    assert "guest-thing" not in [t["thingName"] for t in ok(stack, "iot", "list-things")["things"]]
