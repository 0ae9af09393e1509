"""Signed AWS APIs the edge serves itself: STS, the IoT control plane, Lambda, CloudWatch Logs
and Cognito's admin calls, each described by its folder's ``api.py`` as a :class:`SignedService`.

botocore's own service model says everything about the wire: the operation names, the protocol
(rest-json for ``iot`` and ``lambda``, json for ``logs`` and Cognito, query/XML for ``sts``),
each operation's method and path, where each input member travels (path, query string, header,
body) and the signing name. So a request is matched to its operation by the model, every
operation of the service is known by name, and one the local stack does not serve is answered
in the service's own error shape naming it, never with a bare 404.

Every request takes the same path as the forwarded services (:mod:`.server`): the SigV4
``Authorization`` header is checked before the body is read, the body must hash to what was
signed, then IAM (:class:`infra.local.iam.IamAuthorizer`) must allow every (action, resource)
the service's ``access.py`` names for the operation, and only then does the handler run, as
AWS decides it (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html).
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import Any
from urllib.parse import parse_qsl, unquote
from xml.sax.saxutils import escape

import botocore.session
from aiohttp import web
from botocore.model import OperationModel, ServiceModel, Shape

from infra.local.http import BodyTooLarge, declared_too_large, read_body
from infra.local.iam import AccessDenied, IamAuthorizer
from infra.local.identity import CredentialStore, Principal
from infra.local.sigv4 import SigV4Error, verify_authorization_headers

log = logging.getLogger("iotchat.edge")

DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024
# What a 501 says besides the operation: where the served ones are listed.
NOT_SERVED = (
    "{operation} is not served by the local stack (iotchat up); docs/aws-cli.md lists what is"
)
_CREDENTIAL = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/,\s]+/([^/,\s]+)/aws4_request")
# SigV4 refusals: (code, message) per reason, as JSON and rest-json services name them.
_SIGNATURE_ERRORS = {
    "SignatureMismatch": (
        "InvalidSignatureException",
        "The request signature we calculated does not match the signature you provided. "
        "Check your AWS Secret Access Key and signing method.",
    ),
    "UnknownAccessKey": (
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    ),
    "TokenMismatch": (
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    ),
    "CredentialExpired": (
        "ExpiredTokenException",
        "The security token included in the request is expired",
    ),
    "Expired": ("InvalidSignatureException", "Signature expired or not yet current."),
    "NotYetValid": ("InvalidSignatureException", "Signature expired or not yet current."),
}
_MISSING_TOKEN = ("MissingAuthenticationTokenException", "Request is missing Authentication Token")
# The query protocol (STS) names the same refusals its own way.
_QUERY_CODES = {
    "InvalidSignatureException": "SignatureDoesNotMatch",
    "UnrecognizedClientException": "InvalidClientTokenId",
    "ExpiredTokenException": "ExpiredToken",
    "MissingAuthenticationTokenException": "MissingAuthenticationToken",
    "AccessDeniedException": "AccessDenied",
    "IncompleteSignatureException": "IncompleteSignature",
}

# (IAM action, resource ARN), e.g. ("iot:DescribeThing", "arn:aws:iot:...:thing/kitchen").
Access = tuple[str, str]


class ServiceError(Exception):
    """An AWS error a handler raises: HTTP status, the service's error code, the message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Call:
    """One authorized request, as its handler sees it: who, which operation, its input
    (members named as in the model) and the raw headers."""

    principal: Principal
    operation: str
    params: dict[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


# A handler returns the output members (a dict) or, for the odd operation whose answer is not
# a JSON document (Lambda's Invoke), a ready response; it may be a coroutine function.
OperationHandler = Callable[[Call], Any]
RequiredAccess = Callable[[str, Mapping[str, Any]], Iterable[Access]]


@cache
def service_model(name: str) -> ServiceModel:
    """botocore's model of service ``name`` (``iot``, ``lambda``, ``logs``, ``sts``, ...)."""
    return botocore.session.get_session().get_service_model(name)


@dataclass(frozen=True)
class SignedService:
    """A service the edge serves itself: its botocore model's name, the operations served
    (name -> handler) and, per operation and input, what IAM must allow. Operations of the
    model that are not in ``operations`` are answered 501, naming the operation."""

    model_name: str
    operations: Mapping[str, OperationHandler]
    required_access: RequiredAccess
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES

    @property
    def model(self) -> ServiceModel:
        return service_model(self.model_name)

    @property
    def protocol(self) -> str:
        return str(self.model.protocol)

    @property
    def signing_name(self) -> str:
        return str(self.model.signing_name)

    @property
    def target_prefix(self) -> str:
        """``X-Amz-Target``'s prefix with its dot (json protocol only)."""
        return str(self.model.metadata["targetPrefix"]) + "."

    @cached_property
    def routes(self) -> RestRoutes:
        return RestRoutes(self.model)


# ---------------------------------------------------------------------------- rest-json paths


@dataclass(frozen=True)
class _Route:
    operation: str
    method: str
    pattern: re.Pattern[str]
    literal: int  # characters of the path that are not parameters: more is more specific
    query: tuple[str, ...]  # query keys the requestUri itself demands ("?versions")


class RestRoutes:
    """Matches a REST request to its operation with the model's ``requestUri`` templates."""

    def __init__(self, model: ServiceModel) -> None:
        self._routes: list[_Route] = []
        for name in model.operation_names:
            http = model.operation_model(name).http
            path, _, query = http["requestUri"].partition("?")
            parts: list[str] = []
            literal = 0
            for piece in re.split(r"(\{[^}]+\})", path):
                if piece.startswith("{"):
                    key = piece[1:-1]
                    greedy = key.endswith("+")
                    key = key.rstrip("+")
                    group = re.sub(r"\W", "_", key)
                    parts.append(f"(?P<{group}>{'.+' if greedy else '[^/]+'})")
                else:
                    literal += len(piece)
                    parts.append(re.escape(piece))
            pattern = re.compile("".join(parts).rstrip("/") + "/?")
            keys = tuple(k.partition("=")[0] for k in query.split("&") if k)
            self._routes.append(_Route(name, http["method"], pattern, literal, keys))
        self._routes.sort(key=lambda route: -route.literal)

    def match(
        self, method: str, raw_path: str, query: Mapping[str, str]
    ) -> tuple[str, dict[str, str]] | None:
        """The operation and its (still percent-encoded) path parameters, or None."""
        for route in self._routes:
            if route.method != method or any(key not in query for key in route.query):
                continue
            found = route.pattern.fullmatch(raw_path)
            if found is not None:
                return route.operation, found.groupdict()
        return None


def _scalar(shape: Shape, text: str) -> Any:
    if shape.type_name in ("integer", "long"):
        try:
            return int(text)
        except ValueError:
            raise ServiceError(400, "InvalidRequestException", f"not a number: {text!r}") from None
    if shape.type_name == "boolean":
        return text.lower() == "true"
    return text


def rest_input(
    operation: OperationModel,
    path_params: Mapping[str, str],
    query: list[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
) -> dict[str, Any]:
    """The operation's input members, each taken from where the model says it travels."""
    shape = operation.input_shape
    if shape is None:
        return {}
    params: dict[str, Any] = {}
    payload = shape.serialization.get("payload")
    document: Any = None
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        key = member.serialization.get("name", name)
        if location == "uri":
            group = re.sub(r"\W", "_", key)
            if group in path_params:
                params[name] = unquote(path_params[group])
        elif location == "querystring":
            values = [value for k, value in query if k == key]
            if values and member.type_name == "list":
                params[name] = [_scalar(member.member, v) for v in values]
            elif values:
                params[name] = _scalar(member, values[0])
        elif location == "header":
            if key in headers:
                params[name] = _scalar(member, headers[key])
        elif name == payload:
            if member.type_name in ("blob", "string"):
                params[name] = body
            elif body:
                params[name] = _json_body(body)
        else:
            if document is None:
                document = _json_body(body) if body else {}
            if key in document:
                params[name] = document[key]
    return params


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:
        raise ServiceError(400, "SerializationException", "the body is not JSON") from None
    if not isinstance(value, dict):
        raise ServiceError(400, "SerializationException", "the body is not a JSON object")
    return value


# ---------------------------------------------------------------------------- answers


def _request_id() -> dict[str, str]:
    return {"x-amzn-RequestId": str(uuid.uuid4())}


def error_response(service: SignedService, error: ServiceError) -> web.Response:
    """``error`` in the shape of the service's protocol, which botocore reads into the code."""
    if service.protocol == "query":
        code = _QUERY_CODES.get(error.code, error.code)
        kind = "Receiver" if error.status >= 500 else "Sender"
        xml = (
            '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            f"<Error><Type>{kind}</Type><Code>{escape(code)}</Code>"
            f"<Message>{escape(error.message)}</Message></Error>"
            f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
        )
        return web.Response(status=error.status, text=xml, content_type="text/xml")
    if service.protocol == "json":
        version = service.model.metadata.get("jsonVersion", "1.1")
        return web.Response(
            status=error.status,
            text=json.dumps({"__type": error.code, "message": error.message}),
            content_type=f"application/x-amz-json-{version}",
            headers=_request_id(),
        )
    return web.json_response(
        {"message": error.message},
        status=error.status,
        headers={"x-amzn-ErrorType": error.code, **_request_id()},
    )


def _xml_members(value: Any) -> str:
    """A query-protocol result body: members as elements, lists as ``<member>`` items."""
    if isinstance(value, dict):
        return "".join(f"<{k}>{_xml_members(v)}</{k}>" for k, v in value.items() if v is not None)
    if isinstance(value, list):
        return "".join(f"<member>{_xml_members(v)}</member>" for v in value)
    return escape(str(value))


def success_response(service: SignedService, operation: str, output: Any) -> web.StreamResponse:
    if isinstance(output, web.StreamResponse):
        return output
    output = output or {}
    if service.protocol == "query":
        xml = (
            f'<{operation}Response xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            f"<{operation}Result>{_xml_members(output)}</{operation}Result>"
            f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
            f"</{operation}Response>"
        )
        return web.Response(text=xml, content_type="text/xml")
    if service.protocol == "json":
        version = service.model.metadata.get("jsonVersion", "1.1")
        return web.Response(
            text=json.dumps(output),
            content_type=f"application/x-amz-json-{version}",
            headers=_request_id(),
        )
    status = service.model.operation_model(operation).http.get("responseCode", 200)
    return web.json_response(output, status=status, headers=_request_id())


def scope_service(headers: Mapping[str, str]) -> str | None:
    """The service named in the SigV4 ``Authorization`` header's credential scope."""
    found = _CREDENTIAL.search(headers.get("Authorization", ""))
    return found.group(1) if found else None


# ---------------------------------------------------------------------------- the door


class SignedServices:
    """Routes, authenticates, authorizes and answers requests to the edge's own services."""

    def __init__(self, credentials: CredentialStore, iam: IamAuthorizer, region: str) -> None:
        self.credentials = credentials
        self.iam = iam
        self.region = region
        self._by_signing_name: dict[str, SignedService] = {}

    def add(self, service: SignedService) -> None:
        """Serve requests signed for ``service`` that no other route of the edge took."""
        self._by_signing_name[service.signing_name] = service

    def services(self) -> list[SignedService]:
        return list(self._by_signing_name.values())

    async def by_scope(self, request: web.Request) -> web.StreamResponse | None:
        """Serve ``request`` if its credential scope names one of these services, else None."""
        name = scope_service(request.headers)
        service = self._by_signing_name.get(name or "")
        if service is None and name is None:
            service = self._unsigned_owner(request)
        if service is None or service.protocol == "json":
            return None
        return await self.handle(service, request)

    def _unsigned_owner(self, request: web.Request) -> SignedService | None:
        """For a request with no signature: the one service whose model has its path (it is
        then refused in that service's shape), else None."""
        raw_path, _, raw_query = request.raw_path.partition("?")
        query = dict(parse_qsl(raw_query, keep_blank_values=True))
        owners = [
            service
            for service in self._by_signing_name.values()
            if (service.protocol == "query" and raw_path == "/")
            or (
                service.protocol == "rest-json"
                and service.routes.match(request.method, raw_path, query) is not None
            )
        ]
        return owners[0] if len(owners) == 1 else None

    def handler(
        self, service: SignedService
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """An ``X-Amz-Target`` handler for a json-protocol service."""

        async def handle(request: web.Request) -> web.StreamResponse:
            return await self.handle(service, request)

        return handle

    async def handle(self, service: SignedService, request: web.Request) -> web.StreamResponse:
        try:
            return await self._handle(service, request)
        except ServiceError as error:
            if error.status >= 500 and error.status != 501:
                log.warning("%s failed: %s", service.model_name, error.message)
            response = error_response(service, error)
            if error.status == 413:
                response.force_close()
            return response

    async def _handle(self, service: SignedService, request: web.Request) -> web.StreamResponse:
        denied = 400 if service.protocol == "json" else 403
        if declared_too_large(request, service.max_request_bytes):
            raise _too_large(service)
        if service.protocol == "json":  # a target no model names: nothing to authorize
            self._target(service, request)
        if "Authorization" not in request.headers:
            raise ServiceError(denied, *_MISSING_TOKEN)
        raw_path, _, raw_query = request.raw_path.partition("?")
        try:
            pending = verify_authorization_headers(
                request.method,
                raw_path,
                raw_query,
                request.headers,
                self.credentials,
                service=service.signing_name,
                region=self.region,
            )
            body = await read_body(request, service.max_request_bytes)
            principal = pending.check_body(body).principal
        except SigV4Error as exc:
            log.info("%s request refused: %s", service.model_name, exc)
            code, message = _SIGNATURE_ERRORS.get(
                exc.reason, ("IncompleteSignatureException", str(exc))
            )
            raise ServiceError(denied, code, message) from None
        except BodyTooLarge:
            raise _too_large(service) from None
        query = parse_qsl(raw_query, keep_blank_values=True)
        operation, params = self._operation(service, request, raw_path, query, body)
        handler = service.operations.get(operation)
        if handler is None:
            raise ServiceError(
                501, "NotImplementedException", NOT_SERVED.format(operation=operation)
            )
        try:
            for action, resource in service.required_access(operation, params):
                self.iam.check(principal, action, resource)
        except AccessDenied as refused:
            log.info("%s %s refused: %s", service.model_name, operation, refused)
            raise ServiceError(denied, "AccessDeniedException", str(refused)) from None
        result = handler(Call(principal, operation, params, request.headers))
        if inspect.isawaitable(result):
            result = await result
        return success_response(service, operation, result)

    @staticmethod
    def _target(service: SignedService, request: web.Request) -> str:
        """The operation ``X-Amz-Target`` names, if the service's model has it."""
        operation = request.headers.get("X-Amz-Target", "")[len(service.target_prefix) :]
        if operation not in service.model.operation_names:
            raise ServiceError(400, "UnknownOperationException", f"unknown operation {operation}")
        return operation

    def _operation(
        self,
        service: SignedService,
        request: web.Request,
        raw_path: str,
        query: list[tuple[str, str]],
        body: bytes,
    ) -> tuple[str, dict[str, Any]]:
        """The operation the request names and its input, by the service's protocol."""
        model = service.model
        if service.protocol == "json":
            return self._target(service, request), _json_body(body) if body else {}
        if service.protocol == "query":
            fields = dict(query)
            fields.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            operation = fields.pop("Action", "")
            if operation not in model.operation_names:
                raise ServiceError(400, "InvalidAction", f"unknown action {operation!r}")
            fields.pop("Version", None)
            return operation, fields
        matched = service.routes.match(request.method, raw_path, dict(query))
        if matched is None:
            raise ServiceError(
                404,
                "UnknownOperationException",
                f"no {model.service_name} operation is {request.method} {raw_path}",
            )
        operation, path_params = matched
        params = rest_input(
            model.operation_model(operation), path_params, query, request.headers, body
        )
        return operation, params


def _too_large(service: SignedService) -> ServiceError:
    return ServiceError(
        413,
        "ValidationException",
        f"Request size exceeds the limit of {service.max_request_bytes} bytes",
    )
