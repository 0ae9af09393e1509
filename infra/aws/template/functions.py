"""The Lambda side: the manifest's tables, streams, functions (each with its log group) and
event source mappings, and the dead-letter queue of failed asynchronous invokes.
"""

from __future__ import annotations

import json
from typing import Any

from lambdas.manifest import Manifest
from policies.arns import arn_resource_name
from policies.render import render_cloudformation

from .base import (
    Template,
    TemplateError,
    checkov_skip,
    logical_id,
    pascal_keys,
    short_name,
    sub,
)
from .suppressions import (
    DYNAMO_CMK,
    ENV_KMS,
    LOG_KMS,
    NO_RESERVATION,
    NO_VPC,
    QUEUE_CMK,
    STREAM_DLQ,
)

LAMBDA_RUNTIME = "python3.12"
COMMANDS_HANDLER = "lambdas.handlers.commands"
# The messages table's TTL attribute: the store rule and the commands Lambda write it.
TTL_ATTRIBUTES = {"{stack}-messages": "expiresAt"}


def add_manifest(t: Template) -> None:
    """The manifest's tables, streams, functions and event source mappings."""
    # Validate with the loader the local stack uses; build from the raw, templated file.
    Manifest.load(t.manifest_path, stack=t.stack)
    raw = json.loads(t.manifest_path.read_text(encoding="utf-8"))
    for table in raw.get("tables", []):
        _table(t, table)
    for stream in raw.get("streams", []):
        _stream(t, stream)
    for function in raw.get("functions", []):
        _function(t, function)
    for mapping in raw.get("eventSourceMappings", []):
        _mapping(t, mapping)


def _table(t: Template, request: dict[str, Any]) -> None:
    name = request["TableName"]
    table_id = t.add(logical_id("table", short_name(name, "tables")), {})
    props: dict[str, Any] = {
        "TableName": sub(name),
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": request["KeySchema"],
        "AttributeDefinitions": request["AttributeDefinitions"],
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "SSESpecification": {"SSEEnabled": True},
    }
    for key in ("LocalSecondaryIndexes", "GlobalSecondaryIndexes"):
        if request.get(key):
            props[key] = [
                {k: v for k, v in index.items() if k != "ProvisionedThroughput"}
                for index in request[key]
            ]
    if name in TTL_ATTRIBUTES:
        props["TimeToLiveSpecification"] = {
            "AttributeName": TTL_ATTRIBUTES[name],
            "Enabled": True,
        }
    t.resources[table_id] = {
        "Type": "AWS::DynamoDB::Table",
        "DeletionPolicy": "Delete",
        "UpdateReplacePolicy": "Retain",
        "Metadata": checkov_skip(DYNAMO_CMK),
        "Properties": props,
    }
    t.tables[name] = table_id
    t.output(logical_id(short_name(name, "tables"), "table"), {"Ref": table_id}, "DynamoDB table")


def _stream(t: Template, request: dict[str, Any]) -> None:
    name = request["StreamName"]
    stream_id = t.add(
        logical_id("kinesis", short_name(name, "streams")),
        {
            "Type": "AWS::Kinesis::Stream",
            "Condition": "StreamEnabled",
            "DeletionPolicy": "Delete",
            "UpdateReplacePolicy": "Delete",
            "Properties": {
                "Name": sub(name),
                "ShardCount": request.get("ShardCount", 1),
                "RetentionPeriodHours": 24,
                "StreamModeDetails": {"StreamMode": "PROVISIONED"},
                "StreamEncryption": {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"},
            },
        },
    )
    t.streams[name] = stream_id


def _function(t: Template, spec: dict[str, Any]) -> None:
    name = spec["name"]
    short = short_name(name, "functions")
    environment = dict(render_cloudformation(spec.get("environment", {})))
    environment["IOT_DATA_ENDPOINT"] = {"Ref": "IotDataEndpoint"}
    if spec["handler"] == COMMANDS_HANDLER:
        # It checks sign-in tokens with the identity pool (hello: lambdas/chat/people.py).
        environment["IDENTITY_POOL_ID"] = {"Ref": "IdentityPool"}
        environment["USER_POOL_PROVIDER"] = {"Fn::GetAtt": ["UserPool", "ProviderName"]}
    consumer = _is_stream_consumer(t, name)
    function_id = lambda_function(
        t,
        short,
        handler=spec["handler"],
        role={"Fn::GetAtt": [t.roles["{stack}-backend-lambda"], "Arn"]},
        environment=environment,
        timeout=spec.get("timeout", 3),
        memory=spec.get("memorySize", 128),
        concurrency=spec.get("reservedConcurrency") if t.reserve_concurrency else None,
        dead_letters=not consumer,
        skips=(STREAM_DLQ,) if consumer else (),
    )
    t.functions[name] = function_id


def _is_stream_consumer(t: Template, name: str) -> bool:
    raw = json.loads(t.manifest_path.read_text(encoding="utf-8"))
    return any(m.get("FunctionName") == name for m in raw.get("eventSourceMappings", []))


def lambda_function(
    t: Template,
    short: str,
    *,
    handler: str,
    role: Any,
    environment: dict[str, Any],
    timeout: int,
    memory: int,
    concurrency: int | None,
    dead_letters: bool,
    skips: tuple[tuple[str, str], ...] = (),
) -> str:
    """One function from the shared code zip, with its own log group; returns its logical id."""
    function_id = logical_id("function", short)
    log_id = t.add(
        logical_id("log", "group", short),
        {
            "Type": "AWS::Logs::LogGroup",
            "DeletionPolicy": "Delete",
            "UpdateReplacePolicy": "Delete",
            "Metadata": checkov_skip(LOG_KMS),
            "Properties": {
                "LogGroupName": {"Fn::Sub": f"/aws/lambda/${{AWS::StackName}}-{short}"},
                "RetentionInDays": {"Ref": "LogRetentionDays"},
            },
        },
    )
    props: dict[str, Any] = {
        "FunctionName": {"Fn::Sub": f"${{AWS::StackName}}-{short}"},
        "Description": f"iotchat {short}",
        "Runtime": LAMBDA_RUNTIME,
        "Architectures": ["arm64"],
        "Handler": handler,
        "Code": {"S3Bucket": {"Ref": "CodeBucket"}, "S3Key": {"Ref": "CodeKey"}},
        "Role": role,
        "Timeout": timeout,
        "MemorySize": memory,
        "Environment": {"Variables": environment},
        "LoggingConfig": {"LogGroup": {"Ref": log_id}, "LogFormat": "Text"},
    }
    if concurrency is not None:
        props["ReservedConcurrentExecutions"] = concurrency
    checks = [NO_VPC, ENV_KMS, *skips]
    if concurrency is None:
        checks.append(NO_RESERVATION)
    if dead_letters:
        props["DeadLetterConfig"] = {"TargetArn": {"Fn::GetAtt": ["FailureQueue", "Arn"]}}
    t.add(
        function_id,
        {
            "Type": "AWS::Lambda::Function",
            "Metadata": checkov_skip(*checks),
            "Properties": props,
        },
    )
    return function_id


def _mapping(t: Template, request: dict[str, Any]) -> None:
    function = request["FunctionName"]
    stream = arn_resource_name(request["EventSourceArn"], "kinesis", "stream") or ""
    if function not in t.functions or stream not in t.streams:
        raise TemplateError(f"eventSourceMappings: {function} <- {stream} is not declared")
    props = pascal_keys(render_cloudformation(request))
    props["FunctionName"] = {"Ref": t.functions[function]}
    props["EventSourceArn"] = {"Fn::GetAtt": [t.streams[stream], "Arn"]}
    t.add(
        logical_id("mapping", short_name(function, "mapping"), short_name(stream, "mapping")),
        {
            "Type": "AWS::Lambda::EventSourceMapping",
            "Condition": "StreamEnabled",
            "Properties": props,
        },
    )


def add_failure_queue(t: Template) -> None:
    """The dead-letter queue of failed asynchronous invokes, which the backend role may feed."""
    t.add(
        "FailureQueue",
        {
            "Type": "AWS::SQS::Queue",
            "DeletionPolicy": "Delete",
            "UpdateReplacePolicy": "Delete",
            "Metadata": checkov_skip(QUEUE_CMK),
            "Properties": {
                "QueueName": {"Fn::Sub": "${AWS::StackName}-lambda-failures"},
                "MessageRetentionPeriod": 1209600,
                "SqsManagedSseEnabled": True,
            },
        },
    )
    t.allow_on_aws(
        "{stack}-backend-lambda",
        "aws-dead-letters",
        "FailedAsyncInvokes",
        "sqs:SendMessage",
        {"Fn::GetAtt": ["FailureQueue", "Arn"]},
    )
    t.output("FailureQueueUrl", {"Ref": "FailureQueue"}, "Failed asynchronous invokes")
