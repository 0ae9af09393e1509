"""Wires the rules engine into the local stack: what its actions and SQL functions reach.

Rule actions and ``aws_lambda()``/``get_dynamodb()`` talk to the same services a deployed rule
talks to on AWS: the gateway (republish), the Lambda runtime, DynamoDB and Kinesis, each as the
role the rule names (:mod:`.access`), never as the admin. Calls that go through the API
endpoint (Kinesis, ``get_dynamodb()``) are signed with that role session's temporary
credentials, so the endpoint authorizes them as it does every caller; the DynamoDB actions'
fast path (:class:`DirectJsonCaller`) is authorized by the action, once per message, from a
remembered decision.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra.local.gateway import Gateway
from infra.local.lambda_runtime import LambdaRuntime
from infra.local.node_service import socket_url, unix_connector
from infra.local.rules.access import RuleAccess
from infra.local.rules.actions import RuleServices
from infra.local.rules.batching import PutItemBatcher
from iot_rules.sql import SqlContext

# The session name of ``get_dynamodb()``'s role sessions (the SQL function knows no rule).
GET_DYNAMODB_SESSION = "get_dynamodb"


def role_client_factory(
    endpoint: str, region: str, access: RuleAccess
) -> Callable[[str, str, str], Any]:
    """``client(service, role ARN, session name)``: boto3 clients for the API endpoint signed
    with the role session's temporary credentials, one per service, session and thread (boto3
    clients are not safe to create concurrently, and actions run in worker threads), rebuilt
    when :meth:`RuleAccess.credentials` renews the session's keys."""
    import boto3

    session_lock = threading.Lock()
    local = threading.local()

    def client(service: str, role_arn: str, session_name: str) -> Any:
        credential = access.credentials(role_arn, session_name)
        cache: dict[tuple[str, str, str], tuple[str, Any]] | None = getattr(local, "clients", None)
        if cache is None:
            cache = local.clients = {}
        key = (service, role_arn, session_name)
        cached = cache.get(key)
        if cached is not None and cached[0] == credential.access_key_id:
            return cached[1]
        with session_lock:
            session = boto3.session.Session(
                aws_access_key_id=credential.access_key_id,
                aws_secret_access_key=credential.secret_access_key,
                aws_session_token=credential.session_token,
                region_name=region,
            )
            built = session.client(service, endpoint_url=endpoint)
        cache[key] = (credential.access_key_id, built)
        return built

    return client


def _get_dynamodb(client: Callable[[str, str, str], Any]) -> Callable[..., object]:
    """``get_dynamodb()``: GetItem as the role the call names, through the API endpoint."""

    def get_item(
        table: str,
        key_name: str,
        key_value: object,
        range_name: str | None,
        range_value: object | None,
        role_arn: str,
    ) -> object:
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        serializer = TypeSerializer()
        key = {key_name: serializer.serialize(key_value)}
        if range_name is not None:
            key[range_name] = serializer.serialize(range_value)
        dynamodb = client("dynamodb", role_arn, GET_DYNAMODB_SESSION)
        item = dynamodb.get_item(TableName=table, Key=key).get("Item")
        if item is None:
            return None
        deserializer = TypeDeserializer()
        return {k: deserializer.deserialize(v) for k, v in item.items()}

    return get_item


def _invoke_lambda(runtime: LambdaRuntime, access: RuleAccess) -> Callable[[str, object], object]:
    """``aws_lambda()``: the function's resource policy must let the rules engine invoke it."""

    def invoke(arn: str, payload: object) -> object:
        access.check_invoke(arn, None)
        result = runtime.invoke_blocking(arn, payload)
        if not result.ok:
            raise RuntimeError(f"aws_lambda({arn}) failed: {result.error}")
        return result.payload

    return invoke


class DirectJsonCaller:
    """Rule actions' DynamoDB calls straight to the local DynamoDB, asynchronously.

    A deployed rule's action is a service-side call; locally, boto3 in a worker thread plus the
    edge API's proxy cost about 2 ms of this process's CPU per stored message, which is what
    limited the store path. This sends the same JSON request DynamoDB's API takes, on the
    stack's event loop, to the service itself. It holds no keys and decides nothing: each
    action has asked IAM for its role's permission before it calls (``RuleAccess.check``, a
    remembered decision per role, action and table), as the API endpoint does for other callers.
    """

    TARGETS = {"dynamodb": ("DynamoDB_20120810", "application/x-amz-json-1.0")}

    def __init__(self, endpoints: Callable[[str], Path | None], region: str) -> None:
        # service -> the Unix socket its emulator listens on, None while it is down.
        self.endpoints = endpoints
        self.region = region
        self._sessions: dict[Path, Any] = {}
        self._puts = PutItemBatcher(
            lambda operation, body: self._request("dynamodb", operation, body),
            _is_validation_error,
        )

    # dynalite checks the Authorization header's shape, not its key or signature: the key id
    # here is a placeholder, not a credential (authorization happened in the action).
    PLACEHOLDER_KEY_ID = "RULESENGINE"

    async def __call__(self, service: str, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        if service == "dynamodb" and operation == "PutItem" and body.keys() == _PLAIN_PUT:
            # Per message as ever (its own outcome), grouped on the way (.batching).
            await self._puts.put(body["TableName"], body["Item"])
            return {}
        return await self._request(service, operation, body)

    async def _request(self, service: str, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        import aiohttp

        from infra.local.rules.actions import AwsCallError

        prefix, content_type = self.TARGETS[service]
        socket_path = self.endpoints(service)
        if socket_path is None:
            raise AwsCallError("ServiceUnavailable", f"the local {service} is not running")
        session = self._sessions.get(socket_path)
        if session is None:
            session = self._sessions[socket_path] = aiohttp.ClientSession(
                connector=unix_connector(socket_path), timeout=aiohttp.ClientTimeout(total=10)
            )
        now = time.gmtime()
        headers = {
            "X-Amz-Target": f"{prefix}.{operation}",
            "Content-Type": content_type,
            "X-Amz-Date": time.strftime("%Y%m%dT%H%M%SZ", now),
            "Authorization": (
                f"AWS4-HMAC-SHA256 Credential={self.PLACEHOLDER_KEY_ID}/"
                f"{time.strftime('%Y%m%d', now)}/{self.region}/{service}/aws4_request, "
                "SignedHeaders=host;x-amz-date;x-amz-target, Signature=" + "0" * 64
            ),
        }
        try:
            async with session.post(
                socket_url(service), data=json.dumps(body), headers=headers
            ) as response:
                data = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise AwsCallError(type(exc).__name__, str(exc)) from None
        if status >= 400:
            code = str((data or {}).get("__type", f"HTTP{status}")).rpartition("#")[2]
            raise AwsCallError(code, str((data or {}).get("message", "")))
        return data or {}

    async def close(self) -> None:
        await self._puts.close()
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            await session.close()


_PLAIN_PUT = {"TableName", "Item"}  # a PutItem with no condition or return values


def _is_validation_error(exc: BaseException) -> bool:
    from infra.local.rules.actions import AwsCallError

    return isinstance(exc, AwsCallError) and exc.code == "ValidationException"


def rule_services(
    gateway: Gateway,
    runtime: LambdaRuntime | None,
    endpoint: str,
    region: str,
    account_id: str,
    access: RuleAccess,
    aws_json: Callable[[str, str, dict[str, Any]], Any] | None = None,
) -> RuleServices:
    """What the stack's rules engine reaches, every action acting as its role via ``access``."""
    client = role_client_factory(endpoint, region, access)

    def publish(topic: str, payload: bytes, **kwargs: Any) -> None:
        gateway.publish(topic, payload, **kwargs)

    context = SqlContext(
        account_id=account_id,
        region=region,
        invoke_lambda=_invoke_lambda(runtime, access) if runtime is not None else None,
        get_dynamodb=_get_dynamodb(client),
    )
    return RuleServices(
        publish=publish,
        invoke_async=runtime.invoke_async if runtime is not None else None,
        aws_client=client,
        aws_json=aws_json,
        account_id=account_id,
        region=region,
        sql_context=context,
        access=access,
    )
