"""Small handlers, each exercising one behaviour of the runtime."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

ENV_KEYS = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_TIMEOUT",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "GREETING",
    "HOME_SECRET",
)


def echo(event, context):
    return {
        "event": event,
        "pid": os.getpid(),
        "env": {key: os.environ.get(key) for key in ENV_KEYS},
        "context": {
            "function_name": context.function_name,
            "function_version": context.function_version,
            "invoked_function_arn": context.invoked_function_arn,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "aws_request_id": context.aws_request_id,
            "log_group_name": context.log_group_name,
            "log_stream_name": context.log_stream_name,
            "remaining_ms": context.get_remaining_time_in_millis(),
        },
    }


def noop(event, context):
    return None


def fail(event, context):
    with Path(os.environ["COUNT_FILE"]).open("a") as out:
        out.write(context.aws_request_id + "\n")
    raise ValueError(f"boom: {event.get('why')}")


def sleep(event, context):
    if "pidFile" in event:
        Path(event["pidFile"]).write_text(str(os.getpid()))
    time.sleep(event["seconds"])
    return {"slept": event["seconds"], "pid": os.getpid()}


def interval(event, context):
    """Record when this invocation ran and in which process, for the concurrency test."""
    began = time.time()
    time.sleep(event["seconds"])
    with Path(event["file"]).open("a") as out:
        out.write(json.dumps({"pid": os.getpid(), "start": began, "end": time.time()}) + "\n")
    return "ok"


def chatty(event, context):
    print("hello from the handler, not JSON {")
    os.write(1, b"raw bytes on fd 1\n")
    logging.getLogger("chatty").warning("a warning with the request id")
    return {"said": "hello"}


def unserializable(event, context):
    return {"when": object()}


def crash(event, context):
    os._exit(3)


def list_tables(event, context):
    """boto3 with no endpoint configured in code: AWS_ENDPOINT_URL must lead to the local stack."""
    import boto3

    return boto3.client("dynamodb").list_tables()["TableNames"]


def _outcome(call) -> str:
    """``"ok"``, or ``"<AWS error code>: <message>"`` for a refused call."""
    from botocore.exceptions import ClientError

    try:
        call()
    except ClientError as exc:
        return f"{exc.response['Error']['Code']}: {exc.response['Error'].get('Message', '')}"
    return "ok"


def role_probe(event, context):
    """What a handler sees of its execution role: the key it holds, and how the calls below
    end (boto3 through AWS_ENDPOINT_URL, credentials from the environment, as on AWS).
    ``event``: {"table": ..., "stream": ...}."""
    import boto3

    dynamodb = boto3.client("dynamodb")
    kinesis = boto3.client("kinesis")
    table, stream = event["table"], event["stream"]
    key = {"pk": {"S": "probe"}, "sk": {"S": "probe"}}
    return {
        "accessKeyId": os.environ.get("AWS_ACCESS_KEY_ID"),
        "hasSessionToken": bool(os.environ.get("AWS_SESSION_TOKEN")),
        "calls": {
            # Inside policies/iam/backend-lambda.json:
            "dynamodb:GetItem": _outcome(lambda: dynamodb.get_item(TableName=table, Key=key)),
            "kinesis:ListShards": _outcome(lambda: kinesis.list_shards(StreamName=stream)),
            # Outside it:
            "dynamodb:Scan": _outcome(lambda: dynamodb.scan(TableName=table)),
            "kinesis:PutRecord": _outcome(
                lambda: kinesis.put_record(StreamName=stream, Data=b"x", PartitionKey="x")
            ),
            "dynamodb:DeleteTable": _outcome(lambda: dynamodb.delete_table(TableName=table)),
        },
    }


def traced(event, context):
    """Prints the trace it was given, both ways a handler can see it."""
    print(f"trace={context.trace_id} env={os.environ.get('_X_AMZN_TRACE_ID')}")
    if event.get("fail"):
        raise RuntimeError("asked to fail")
