"""Rule actions: what a matched rule does with its SELECT result, one class per action type.

Each action is built once from its ``TopicRulePayload`` entry (substitution templates compiled
then) and run per message. A failure raises :class:`ActionFailed` with the name and resource
AWS puts in an error action's ``failures`` list.

Each action acts as its ``roleArn`` (the lambda action as the rules engine, under the function's
resource policy), never as the admin: :mod:`.access` says what each needs and decides it, and a
refusal fails the action like any other error
(https://docs.aws.amazon.com/iot/latest/developerguide/rule-error-handling.html).
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from infra.local.gateway.codec import Prop
from infra.local.iam import AccessDenied
from iot_rules.sql import Result, SqlContext, SqlMessage, Template, compile_template

from .access import FunctionAccessDenied, RuleAccess, UnknownRole, refusal_message

_REFUSALS = (AccessDenied, FunctionAccessDenied, UnknownRole)


class ActionFailed(Exception):
    """One action's failure, with what AWS lists for it in the error action's message."""

    def __init__(self, action: str, resource: str, message: str) -> None:
        super().__init__(message)
        self.action = action
        self.resource = resource
        self.message = message


@dataclass
class RuleServices:
    """What actions reach: the gateway, the Lambda runtime, AWS APIs on the edge, and IAM.

    ``access`` decides what each action's role may do; the stack always supplies it (a bare
    engine on a gateway, in the engine's own tests, runs without IAM).
    """

    publish: Callable[..., None]
    invoke_async: Callable[[str, Any], str] | None = None
    # ``aws_client(service, role ARN, session name)``: a boto3 client for the API endpoint
    # signed with that role session's temporary credentials (the endpoint authorizes the call).
    aws_client: Callable[[str, str, str], Any] | None = None
    # The DynamoDB fast path, ``await aws_json(service, operation, body)`` with the wire-format
    # body, straight to the local service; raises AwsCallError. The action has been
    # authorized (``access``) before it is called.
    aws_json: Callable[[str, str, dict[str, Any]], Awaitable[dict[str, Any]]] | None = None
    account_id: str = "000000000000"
    region: str = "us-east-1"
    sql_context: SqlContext | None = None
    access: RuleAccess | None = None


class _Text:
    """A string field that may hold ``${...}`` substitution templates."""

    def __init__(self, text: str, version: str | None) -> None:
        self.text = text
        self.template: Template | None = compile_template(text, version) if "${" in text else None

    def render(self, msg: SqlMessage, ctx: SqlContext | None) -> str:
        return self.template.render(msg, ctx) if self.template else self.text


def _result_json(result: Result) -> Any:
    if result.raw is not None:
        try:
            return json.loads(result.raw)
        except ValueError:
            return None
    return result.value


class Action:
    """Base class; ``name`` is AWS's ``failedAction`` value, ``resource`` its
    ``failedResource`` (the topic, function, table or stream the action writes to);
    ``role_arn`` the role it acts as and ``rule`` its rule's name (the role session's name),
    set when the rule is compiled."""

    name = "Action"
    resource = ""
    role_arn = ""
    rule = ""

    def bind(self, spec: Mapping[str, Any], rule: str) -> Action:
        self.role_arn = str(spec.get("roleArn", ""))
        self.rule = rule
        return self

    def authorize(
        self, services: RuleServices, action: str, resource: str, failed_resource: str
    ) -> None:
        """Raise :class:`ActionFailed` unless the action's role may perform ``action`` on
        ``resource``."""
        if services.access is None:
            return
        try:
            services.access.check(self.role_arn, self.rule, action, resource)
        except _REFUSALS as refused:
            raise self.fail(refusal_message(refused), failed_resource) from None

    async def run(self, result: Result, msg: SqlMessage, services: RuleServices) -> None:
        raise NotImplementedError

    def fail(self, message: str, resource: str | None = None) -> ActionFailed:
        return ActionFailed(self.name, resource if resource is not None else self.resource, message)


class RepublishAction(Action):
    """Publish the SELECT result to a templated topic, with templated MQTT 5 headers."""

    name = "RepublishAction"

    def __init__(self, spec: Mapping[str, Any], version: str | None) -> None:
        self.topic = _Text(spec["topic"], version)
        self.resource = self.topic.text
        self.qos = int(spec.get("qos", 0))
        headers = spec.get("headers") or {}
        self.headers: dict[str, _Text] = {
            key: _Text(value, version) for key, value in headers.items() if isinstance(value, str)
        }
        self.user_properties = [
            (_Text(p["key"], version), _Text(p["value"], version))
            for p in headers.get("userProperties", [])
        ]

    def render_topic(self, msg: SqlMessage, ctx: SqlContext | None) -> str:
        topic = self.topic.render(msg, ctx)
        # "$$" escapes a reserved topic's leading "$" (it would otherwise start a template).
        return topic[1:] if topic.startswith("$$") else topic

    def properties(self, msg: SqlMessage, ctx: SqlContext | None) -> dict[int, Any]:
        props: dict[int, Any] = {}
        h = {key: text.render(msg, ctx) for key, text in self.headers.items()}
        if "payloadFormatIndicator" in h:
            props[Prop.PAYLOAD_FORMAT_INDICATOR] = (
                1 if h["payloadFormatIndicator"] == "UTF8_DATA" else 0
            )
        if "contentType" in h:
            props[Prop.CONTENT_TYPE] = h["contentType"]
        if "responseTopic" in h:
            props[Prop.RESPONSE_TOPIC] = h["responseTopic"]
        if "correlationData" in h:
            props[Prop.CORRELATION_DATA] = base64.b64decode(h["correlationData"])
        if "messageExpiry" in h:
            props[Prop.MESSAGE_EXPIRY_INTERVAL] = int(h["messageExpiry"])
        if self.user_properties:
            props[Prop.USER_PROPERTY] = [
                (k.render(msg, ctx), v.render(msg, ctx)) for k, v in self.user_properties
            ]
        return props

    async def run(self, result: Result, msg: SqlMessage, services: RuleServices) -> None:
        self.publish_now(result, msg, services)

    def publish_now(self, result: Result, msg: SqlMessage, services: RuleServices) -> None:
        """Synchronous, so republished messages keep the order of their originals."""
        ctx = services.sql_context
        try:
            topic = self.render_topic(msg, ctx)
            props = self.properties(msg, ctx)
        except (ValueError, KeyError) as exc:
            raise self.fail(f"invalid republish parameters: {exc}") from None
        if services.access is not None:
            self.authorize(services, "iot:Publish", services.access.topic_arn(topic), topic)
        try:
            services.publish(
                topic, result.to_bytes(), qos=self.qos, properties=props, source="rule"
            )
        except ValueError as exc:
            raise self.fail(str(exc), topic) from None


class LambdaAction(Action):
    """Invoke a function asynchronously, as AWS does, with the SELECT result as the event."""

    name = "LambdaAction"

    def __init__(self, spec: Mapping[str, Any], version: str | None) -> None:
        self.function_arn = spec["functionArn"]
        self.resource = self.function_arn

    async def run(self, result: Result, msg: SqlMessage, services: RuleServices) -> None:
        if services.invoke_async is None:
            raise self.fail("no Lambda runtime is running")
        if services.access is not None:
            try:
                services.access.check_invoke(self.function_arn, self.rule)
            except FunctionAccessDenied as refused:
                raise self.fail(refusal_message(refused)) from None
        event = _result_json(result)
        if result.raw is not None and event is None:
            raise self.fail("the Lambda action needs a JSON payload; use encode(*, 'base64')")
        try:
            services.invoke_async(self.function_arn, event)
        except (KeyError, LookupError, ValueError) as exc:
            raise self.fail(f"function not found or not invocable: {exc}") from None


def _to_dynamo(value: Any) -> Any:
    """Python JSON value -> what boto3's serializer takes (Decimal instead of float)."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_dynamo(v) for v in value]
    return value


def _wire(value: Any) -> Any:
    """boto3's serialised attribute values as DynamoDB's JSON wire format (numbers are
    already strings; binary becomes base64)."""
    if isinstance(value, dict):
        return {k: _wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_wire(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, Decimal):
        return str(value)
    return value


async def _call_aws(
    services: RuleServices, service: str, role: tuple[str, str], method: str, **kwargs: Any
) -> Any:
    """``method`` of a boto3 client signed as the role session ``role`` (ARN, session name),
    in a worker thread."""
    if services.aws_client is None:
        raise RuntimeError(f"no {service} endpoint is configured")

    def call() -> Any:
        assert services.aws_client is not None
        client = services.aws_client(service, *role)
        return getattr(client, method)(**kwargs)

    return await asyncio.to_thread(call)


async def _json_call(
    services: RuleServices, service: str, operation: str, body: dict[str, Any]
) -> dict[str, Any]:
    if services.aws_json is None:
        raise AwsCallError("ServiceUnavailable", f"no local {service} is configured")
    return await services.aws_json(service, operation, body)


class AwsCallError(Exception):
    """An AWS API error from the ``aws_json`` path: the service's error code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def _aws_error(exc: Exception) -> str:
    if isinstance(exc, _REFUSALS):
        return refusal_message(exc)
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        err = response["Error"]
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"


class DynamoDBv2Action(Action):
    """PutItem with one column per top-level attribute of the SELECT result."""

    name = "DynamoDBv2Action"

    def __init__(self, spec: Mapping[str, Any], version: str | None) -> None:
        self.table = _Text(spec["putItem"]["tableName"], version)
        self.resource = self.table.text

    async def run(self, result: Result, msg: SqlMessage, services: RuleServices) -> None:
        from boto3.dynamodb.types import TypeSerializer

        item = _result_json(result)
        table = self.table.render(msg, services.sql_context)
        if not isinstance(item, dict):
            raise self.fail("the dynamoDBv2 action needs a JSON object result", table)
        if services.access is not None:
            self.authorize(services, "dynamodb:PutItem", services.access.table_arn(table), table)
        serializer = TypeSerializer()
        try:
            attrs = {k: serializer.serialize(_to_dynamo(v)) for k, v in item.items()}
            body = {"TableName": table, "Item": _wire(attrs)}
            await _json_call(services, "dynamodb", "PutItem", body)
        except Exception as exc:
            raise self.fail(_aws_error(exc), table) from None


class DynamoDBAction(Action):
    """The original DynamoDB action: hash/range key from templates, the payload in one column."""

    name = "DynamoDBAction"

    def __init__(self, spec: Mapping[str, Any], version: str | None) -> None:
        self.table = _Text(spec["tableName"], version)
        self.hash_field = spec["hashKeyField"]
        self.hash_value = _Text(spec["hashKeyValue"], version)
        self.hash_type = spec.get("hashKeyType", "STRING")
        self.range_field = spec.get("rangeKeyField")
        self.range_value = (
            _Text(spec["rangeKeyValue"], version) if "rangeKeyValue" in spec else None
        )
        self.range_type = spec.get("rangeKeyType", "STRING")
        self.payload_field = spec.get("payloadField", "payload")
        self.operation = _Text(spec.get("operation", "INSERT"), version)
        self.resource = self.table.text

    @staticmethod
    def _key(value: str, key_type: str) -> dict[str, str]:
        return {"N": value} if key_type == "NUMBER" else {"S": value}

    async def run(self, result: Result, msg: SqlMessage, services: RuleServices) -> None:
        from boto3.dynamodb.types import TypeSerializer

        ctx = services.sql_context
        table = self.table.render(msg, ctx)
        key = {self.hash_field: self._key(self.hash_value.render(msg, ctx), self.hash_type)}
        if self.range_field and self.range_value is not None:
            key[self.range_field] = self._key(self.range_value.render(msg, ctx), self.range_type)
        operation = self.operation.render(msg, ctx).upper()
        # The action's page asks the role for dynamodb:PutItem; a DELETE deletes the item.
        needed = "dynamodb:DeleteItem" if operation == "DELETE" else "dynamodb:PutItem"
        if services.access is not None:
            self.authorize(services, needed, services.access.table_arn(table), table)
        try:
            if operation == "DELETE":
                await _json_call(
                    services, "dynamodb", "DeleteItem", {"TableName": table, "Key": key}
                )
                return
            body = _result_json(result)
            payload = _wire(
                TypeSerializer().serialize(_to_dynamo(body))
                if body is not None
                else {"B": result.to_bytes()}
            )
            if operation == "UPDATE":
                request = {
                    "TableName": table,
                    "Key": key,
                    "UpdateExpression": "SET #p = :p",
                    "ExpressionAttributeNames": {"#p": self.payload_field},
                    "ExpressionAttributeValues": {":p": payload},
                }
                await _json_call(services, "dynamodb", "UpdateItem", request)
            else:
                request = {"TableName": table, "Item": {**key, self.payload_field: payload}}
                await _json_call(services, "dynamodb", "PutItem", request)
        except Exception as exc:
            raise self.fail(_aws_error(exc), table) from None


class KinesisAction(Action):
    """PutRecord the SELECT result to a stream, under a templated (or random) partition key."""

    name = "KinesisAction"

    def __init__(self, spec: Mapping[str, Any], version: str | None) -> None:
        self.stream = spec["streamName"]
        self.resource = self.stream
        self.partition_key = (
            _Text(spec["partitionKey"], version) if spec.get("partitionKey") else None
        )

    async def run(self, result: Result, msg: SqlMessage, services: RuleServices) -> None:
        key = (
            self.partition_key.render(msg, services.sql_context)
            if self.partition_key
            else str(uuid.uuid4())
        )
        try:
            await _call_aws(
                services,
                "kinesis",
                (self.role_arn, self.rule),
                "put_record",
                StreamName=self.stream,
                Data=result.to_bytes(),
                PartitionKey=key,
            )
        except Exception as exc:
            raise self.fail(_aws_error(exc)) from None


# Builds an action from its ``TopicRulePayload`` entry and the rule's SQL version.
ActionFactory = Callable[[Mapping[str, Any], str | None], Action]

ACTION_TYPES: dict[str, ActionFactory] = {
    "republish": RepublishAction,
    "lambda": LambdaAction,
    "dynamoDBv2": DynamoDBv2Action,
    "dynamoDB": DynamoDBAction,
    "kinesis": KinesisAction,
}


def build_action(spec: Mapping[str, Any], version: str | None, rule: str = "") -> Action:
    """The action for one ``actions`` (or ``errorAction``) entry of the rule named ``rule``."""
    ((kind, params),) = spec.items()
    return ACTION_TYPES[kind](params, version).bind(params, rule)
