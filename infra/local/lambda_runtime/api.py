"""Lambda on the API endpoint: ``ListFunctions``, ``GetFunction``, ``GetFunctionConfiguration``
and ``Invoke`` over the manifest's functions and the running runtime.

``Invoke`` takes the three invocation types AWS has
(https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html): ``RequestResponse`` waits and
answers 200 with the function's result (its error object and ``X-Amz-Function-Error:
Unhandled`` when it failed), ``Event`` queues it (retried twice, as every asynchronous
invocation here) and answers 202, ``DryRun`` only checks the request and the caller's
permission and answers 204. The caller needs ``lambda:InvokeFunction`` on the function from its
own IAM policies: the functions' resource policies (``AWS::Lambda::Permission`` in the
template) admit only ``iot.amazonaws.com`` for the rules, never a person. The function itself
runs as its execution role, whoever invoked it.
"""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from infra.local.api.signed import Access, Call, RequiredAccess, ServiceError, SignedService
from lambdas.arns import function_name
from lambdas.manifest import FunctionSpec

from . import awsformat
from .errors import InvalidRequestContentError, ResourceNotFoundError
from .runtime import LambdaRuntime, log_path

RUNTIME = "python3.11"
# Invoke's LogType=Tail: the last 4 KB of the invocation's log, base64-encoded.
TAIL_BYTES = 4096


def _modified(path: Path) -> str:
    """Lambda's ``LastModified`` format, ``2024-01-31T12:00:00.000+0000``."""
    stamp = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


class LambdaAPI:
    """The Lambda operations, answered from ``runtime`` (which holds the manifest)."""

    def __init__(self, runtime: LambdaRuntime, role_arn: str, manifest_path: Path) -> None:
        self.runtime = runtime
        self.role_arn = role_arn
        self.manifest_path = manifest_path

    def _spec(self, name_or_arn: str) -> FunctionSpec:
        name = self.runtime.resolve(name_or_arn or "")
        spec = self.runtime.manifest.get(name) if name is not None else None
        if spec is None:
            shown = function_name(name_or_arn or "") or name_or_arn
            raise ServiceError(
                404,
                "ResourceNotFoundException",
                f"Function not found: {self.runtime.arn(shown or '')}",
            )
        return spec

    def configuration(self, spec: FunctionSpec) -> dict[str, Any]:
        return {
            "FunctionName": spec.name,
            "FunctionArn": self.runtime.arn(spec.name),
            "Runtime": RUNTIME,
            "Role": self.role_arn,
            "Handler": spec.handler,
            "CodeSize": 0,
            "Description": "",
            "Timeout": spec.timeout,
            "MemorySize": spec.memory_size,
            "LastModified": _modified(self.manifest_path),
            "Version": awsformat.VERSION,
            "Environment": {"Variables": dict(spec.environment)},
            "State": "Active",
            "LastUpdateStatus": "Successful",
            "PackageType": "Zip",
            "Architectures": ["x86_64"],
            "LoggingConfig": {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{spec.name}"},
        }

    def list_functions(self, call: Call) -> dict[str, Any]:
        return {"Functions": [self.configuration(spec) for spec in self.runtime.manifest]}

    def get_function_configuration(self, call: Call) -> dict[str, Any]:
        return self.configuration(self._spec(call.params.get("FunctionName", "")))

    def get_function(self, call: Call) -> dict[str, Any]:
        spec = self._spec(call.params.get("FunctionName", ""))
        answer: dict[str, Any] = {
            "Configuration": self.configuration(spec),
            "Code": {"RepositoryType": "Local"},
        }
        if spec.reserved_concurrency is not None:
            answer["Concurrency"] = {"ReservedConcurrentExecutions": spec.reserved_concurrency}
        return answer

    async def invoke(self, call: Call) -> web.StreamResponse:
        spec = self._spec(call.params.get("FunctionName", ""))
        kind = call.params.get("InvocationType") or "RequestResponse"
        payload = call.params.get("Payload") or b"{}"
        headers = {"X-Amz-Executed-Version": awsformat.VERSION}
        try:
            if kind == "DryRun":
                json.loads(payload)
                return web.Response(status=204, headers=headers)
            if kind == "Event":
                self.runtime.invoke_async(spec.name, payload, source="Invoke")
                return web.Response(status=202)
            if kind != "RequestResponse":
                raise ServiceError(400, "InvalidParameterValueException", f"{kind!r}")
            result = await self.runtime.invoke(spec.name, payload)
        except (ValueError, InvalidRequestContentError) as exc:
            raise ServiceError(
                400, "InvalidRequestContentException", f"Could not parse request body: {exc}"
            ) from None
        except ResourceNotFoundError as exc:
            raise ServiceError(404, "ResourceNotFoundException", str(exc)) from None
        if not result.ok:
            headers["X-Amz-Function-Error"] = "Unhandled"
        if call.params.get("LogType") == "Tail":
            headers["X-Amz-Log-Result"] = self._tail(spec.name, result.request_id)
        body = result.payload if result.ok else result.error
        return web.Response(
            body=json.dumps(body).encode(), headers=headers, content_type="application/json"
        )

    def _tail(self, name: str, request_id: str) -> str:
        """The end of the invocation's lines in the function's log, base64 (LogType=Tail)."""
        try:
            text = log_path(self.runtime.state_dir, name).read_text(errors="replace")
        except FileNotFoundError:
            return ""
        start = text.rfind(awsformat.start_line(request_id))
        mine = text[start:] if start >= 0 else ""
        return base64.b64encode(mine.encode()[-TAIL_BYTES:]).decode()


def required_access(region: str, account: str) -> RequiredAccess:
    """``lambda:<Action>`` on the function (``*`` for ListFunctions); Invoke's action is
    ``lambda:InvokeFunction`` (Service Authorization Reference,
    https://docs.aws.amazon.com/service-authorization/latest/reference/list_awslambda.html)."""

    def access(operation: str, params: Mapping[str, Any]) -> Iterable[Access]:
        if operation == "ListFunctions":
            return [("lambda:ListFunctions", "*")]
        name = function_name(str(params.get("FunctionName", ""))) or ""
        arn = f"arn:aws:lambda:{region}:{account}:function:{name}"
        action = "lambda:InvokeFunction" if operation == "Invoke" else f"lambda:{operation}"
        return [(action, arn)]

    return access


def service(api: LambdaAPI, region: str, account: str) -> SignedService:
    """Lambda as the edge serves it."""
    operations = {
        "ListFunctions": api.list_functions,
        "GetFunction": api.get_function,
        "GetFunctionConfiguration": api.get_function_configuration,
        "Invoke": api.invoke,
    }
    # Invoke's payload may be as large as Lambda takes synchronously (6 MB).
    return SignedService(
        "lambda", operations, required_access(region, account), max_request_bytes=6 * 1024 * 1024
    )
