"""The edge API: the one HTTP port that ``AWS_ENDPOINT_URL`` points at.

AWS SDK clients of every service the stack emulates share this port, as with LocalStack. A
request is routed the way AWS's front ends tell services apart:

* JSON-protocol services (DynamoDB, Kinesis, Cognito) name the operation in ``X-Amz-Target``;
  a middleware hands the request to the handler registered for the target's prefix
  (:meth:`EdgeAPI.add_target`). DynamoDB and Kinesis are forwarded verbatim to their
  emulators, as each describes itself in its folder's ``api.py`` (:mod:`.backend`), once
  the request is authenticated (SigV4 ``Authorization`` header, session token included) and
  authorized: every (action, resource ARN) it needs must be allowed by the caller's IAM
  policies (:class:`infra.local.iam.IamAuthorizer`), as AWS decides it.
* REST services (iot-data, iot) are told apart by path: ``POST /topics/{topic}`` is
  iot-data publish, ``GET /retainedMessage[/{topic}]`` lists and reads retained messages
  (both authorised like publish, by the gateway's authorizer); others add routes to
  :attr:`EdgeAPI.app`.
* The services the edge serves itself (STS, the IoT control plane, Lambda, CloudWatch Logs,
  Cognito's admin calls: :mod:`.signed`, added with :meth:`EdgeAPI.add_service`) take what no
  route took, by the service their SigV4 credential scope names (json-protocol ones by
  ``X-Amz-Target``).
* ``GET /_iotchat/health`` answers 200 once every component is ready (``"status": "ok"``, or
  ``"degraded"`` with its ``reasons`` when, say, a declared table is missing), 503 before.

Every request first passes the ``Host`` check of :mod:`infra.local.http` (403 for a name
that is neither loopback nor allowed with ``--allow-host``) and the listener's deadlines and
limits (:class:`infra.local.http.HttpLimits`: request head within 10 s, body within its
deadline, at most 16 MiB, 512 connections), then the loopback-origin CORS middleware
(:mod:`.cors`). The emulators' own CORS headers (``Access-Control-Allow-Origin: *``) never
leave the edge.

Hostile traffic costs no body read: each service's own request size limit is checked against
``Content-Length`` before the body is read (iot-data publish: 128 KB, as AWS IoT Core,
https://docs.aws.amazon.com/general/latest/gr/iot-core.html; DynamoDB 16 MB, Kinesis per
operation, Cognito 256 KiB), and the SigV4 ``Authorization`` header is checked before it too
(:func:`infra.local.sigv4.verify_authorization_headers`): an unknown or expired key, a
temporary key without its session token and ``UNSIGNED-PAYLOAD`` are refused unread; the
body, read within the limit and the deadline, must then hash to what was signed.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import aiohttp
from aiohttp import web

from infra.local.api.backend import ServiceBackend
from infra.local.api.cors import cors_middleware
from infra.local.api.errors import ApiError, json_protocol_error, json_too_large, rest_json_error
from infra.local.api.iot_data import (
    boolean_flag,
    invalid_request,
    max_results,
    not_found,
    page_start,
    payload_too_large,
    publish_properties,
    publish_qos,
    retained_message,
    retained_page,
)
from infra.local.api.signed import SignedService, SignedServices
from infra.local.gateway import Authorizer, CredentialStore, Gateway, Principal
from infra.local.gateway.topics import InvalidTopic, is_reserved, validate_topic_name
from infra.local.hosts import HostAllowList
from infra.local.http import (
    AppServer,
    BodyTooLarge,
    HttpLimits,
    declared_too_large,
    defer_expect,
    read_body,
)
from infra.local.iam import AccessDenied, IamAuthorizer
from infra.local.node_service import socket_url, unix_connector
from infra.local.sigv4 import PendingSignature, SigV4Error, verify_authorization_headers
from infra.local.trace import from_xray_header, traced

log = logging.getLogger("iotchat.edge")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Health:
    """What ``/_iotchat/health`` reports: ready or not, each component's state, and (once
    ready) what is wrong though everything runs, e.g. a declared table that is missing."""

    ready: bool
    components: dict[str, str]
    problems: tuple[str, ...] = field(default=())
    # Counters worth watching (the gateway's drops, refusals and backpressure, docs/gateway.md).
    metrics: dict[str, int] = field(default_factory=dict)


HealthStatus = Callable[[], Awaitable[Health]]

IOT_DATA_SIGNING_NAME = "iotdata"  # botocore's iot-data model: signingName
TOPICS_PREFIX = "/topics/"
RETAINED_PATH = "/retainedMessage"
# Cognito's requests (and any other X-Amz-Target handler's) are a few KB.
TARGET_MAX_REQUEST_BYTES = 256 * 1024
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
    }
)
# SigV4 refusals as JSON-protocol services name them.
_JSON_SIGNATURE_ERRORS = {
    "SignatureMismatch": "InvalidSignatureException",
    "UnknownAccessKey": "UnrecognizedClientException",
    "TokenMismatch": "UnrecognizedClientException",
    "CredentialExpired": "ExpiredTokenException",
    "Expired": "InvalidSignatureException",
    "NotYetValid": "InvalidSignatureException",
}
# AWS's answer to a JSON-protocol request with no Authorization header at all.
_MISSING_TOKEN = ("MissingAuthenticationTokenException", "Request is missing Authentication Token")
# Emulators' own CORS headers (dynalite and kinesalite send Access-Control-Allow-Origin: *):
# dropped, so only the loopback-origin CORS middleware decides what a browser may read.
_CORS_PREFIX = "access-control-"


class EdgeAPI:
    """The aiohttp application behind ``AWS_ENDPOINT_URL``; start once, stop once."""

    def __init__(
        self,
        *,
        gateway: Gateway,
        credentials: CredentialStore,
        iam: IamAuthorizer,
        region: str,
        health: HealthStatus,
        backends: Iterable[ServiceBackend] = (),
        allowed_hosts: tuple[str, ...] = (),
        limits: HttpLimits | None = None,
    ) -> None:
        """``backends`` are the JSON-protocol services forwarded to local emulators, as each
        service's folder describes itself (``dynamodb/api.py``, ``kinesis/api.py``); ``iam``
        decides what each signed caller may do there. Only loopback ``Host`` names and
        ``allowed_hosts`` are answered; ``limits`` are the listener's deadlines and caps."""
        self.gateway = gateway
        self.credentials = credentials
        self.iam = iam
        self.region = region
        self._health_status = health
        self.limits = limits or HttpLimits()
        # Each target prefix's handler and the largest request it takes (checked unread).
        self.targets: dict[str, tuple[Handler, int]] = {}
        self._error_prefixes = {backend.target_prefix: backend.error_prefix for backend in backends}
        for backend in backends:
            self.targets[backend.target_prefix] = (
                self._forwarder(backend),
                self.limits.max_body_bytes,
            )
        self.app = web.Application(
            middlewares=[cors_middleware, self._route_by_target],
            client_max_size=self.limits.max_body_bytes,
        )
        self.signed = SignedServices(credentials, iam, region)
        self.app.router.add_get("/_iotchat/health", self._health)
        # Handlers that read bodies send "100 Continue" themselves, once the request passed.
        self.app.router.add_post(
            TOPICS_PREFIX + "{topic:.*}", self._publish, expect_handler=defer_expect
        )
        self.app.router.add_get(RETAINED_PATH, self._list_retained)
        self.app.router.add_get(RETAINED_PATH + "/{topic:.*}", self._get_retained)
        self.app.router.add_post("/", self._no_target, expect_handler=defer_expect)
        self._server = AppServer(
            self.app, HostAllowList(allowed_hosts), self.limits, "api", self._too_large
        )
        # One client per emulator socket, opened on first use while the endpoint runs.
        self._clients: dict[Path, aiohttp.ClientSession] = {}
        self._serving = False
        self.port: int | None = None

    @property
    def authorizer(self) -> Authorizer:
        return self.gateway.authorizer

    def add_target(
        self, prefix: str, handler: Handler, max_request_bytes: int = TARGET_MAX_REQUEST_BYTES
    ) -> None:
        """Serve every request whose ``X-Amz-Target`` starts with ``prefix`` (e.g. Cognito's);
        a ``Content-Length`` above ``max_request_bytes`` is answered 413 unread."""
        self.targets[prefix] = (handler, max_request_bytes)

    def add_service(self, service: SignedService) -> None:
        """Serve one of the edge's own signed services (:mod:`.signed`)."""
        if service.protocol == "json":
            self.add_target(service.target_prefix, self.signed.handler(service))
        else:
            self.signed.add(service)

    @property
    def server(self) -> AppServer:
        """The listener (its open and refused connection counts)."""
        return self._server

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0 picks a free port) and return the bound port."""
        self.port = await self._server.start(host, port)
        self._serving = True
        return self.port

    async def stop(self) -> None:
        self._serving = False
        await self._server.stop()
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.close()

    def _client_for(self, socket_path: Path) -> aiohttp.ClientSession:
        """The client that forwards to the emulator listening on ``socket_path``."""
        client = self._clients.get(socket_path)
        if client is None:
            client = self._clients[socket_path] = aiohttp.ClientSession(
                connector=unix_connector(socket_path),
                auto_decompress=False,
                skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
                timeout=aiohttp.ClientTimeout(total=60),
            )
        return client

    # ------------------------------------------------------------------ routing

    @web.middleware
    async def _route_by_target(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        target = request.headers.get("X-Amz-Target")
        if target is None:
            if request.match_info.http_exception is not None:  # no route: by credential scope
                served = await self.signed.by_scope(request)
                if served is not None:
                    return served
            return await handler(request)
        for prefix, (target_handler, limit) in self.targets.items():
            if target.startswith(prefix):
                if declared_too_large(request, limit):
                    return json_too_large("", limit)
                return await target_handler(request)
        return json_protocol_error(400, "UnknownOperationException", f"unknown target {target}")

    def _too_large(self, request: web.Request, limit: int) -> web.StreamResponse:
        """A body declared above the listener's limit, answered in its service's shape."""
        if request.path.startswith(TOPICS_PREFIX):
            return rest_json_error(payload_too_large(self.gateway.broker.limits.max_payload_bytes))
        target = request.headers.get("X-Amz-Target", "")
        prefix = next((p for t, p in self._error_prefixes.items() if target.startswith(t)), "")
        return json_too_large(prefix, limit)

    async def _no_target(self, request: web.Request) -> web.StreamResponse:
        """``POST /`` without ``X-Amz-Target``: a query-protocol service (STS), else nothing."""
        served = await self.signed.by_scope(request)
        if served is None:
            raise web.HTTPNotFound()
        return served

    async def _health(self, request: web.Request) -> web.Response:
        health = await self._health_status()
        body: dict[str, Any] = {"status": "starting", "components": health.components}
        if health.metrics:
            body["metrics"] = health.metrics
        if health.ready:
            body["status"] = "degraded" if health.problems else "ok"
            if health.problems:
                body["reasons"] = list(health.problems)
        return web.json_response(body, status=200 if health.ready else 503)

    # ------------------------------------------------------------------ forwarded services

    def _forwarder(self, service: ServiceBackend) -> Handler:
        """A handler that forwards a JSON-protocol request verbatim to the service's emulator
        (which validates requests but checks no signature and no permission), once it is
        within the service's size limit, its signature is verified and IAM allows every
        (action, resource) it needs. Size and signature headers are checked before the body
        is read."""

        async def forward(request: web.Request) -> web.StreamResponse:
            socket_path = service.endpoint()
            if socket_path is None or not self._serving:
                return json_protocol_error(
                    503,
                    service.error_prefix + "ServiceUnavailableException",
                    f"{service.name} is not running",
                )
            operation = request.headers.get("X-Amz-Target", "")[len(service.target_prefix) :]
            limit = service.max_request_bytes(operation)
            if declared_too_large(request, limit):
                return json_too_large(service.error_prefix, limit)
            pending: PendingSignature | None = None
            if service.signing_name is not None:
                pending_or_refusal = self._check_signature(request, service)
                if isinstance(pending_or_refusal, web.Response):
                    return pending_or_refusal
                pending = pending_or_refusal
            try:
                body = await read_body(request, limit)
            except BodyTooLarge:
                return json_too_large(service.error_prefix, limit)
            parsed: Mapping[str, Any] = {}
            if pending is not None:
                # The exact bytes the signature covers are the ones authorized and forwarded.
                principal_or_refusal = self._check_payload(pending, body, service)
                if isinstance(principal_or_refusal, web.Response):
                    return principal_or_refusal
                parsed = _json_object(body)
                if service.required_access is not None:
                    refused = self._check_access(principal_or_refusal, service, operation, parsed)
                    if refused is not None:
                        return refused
            elif service.on_success is not None:
                parsed = _json_object(body)
            headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP]
            url = socket_url(service.name.lower(), request.rel_url.raw_path_qs)
            try:
                async with self._client_for(socket_path).request(
                    request.method, url, data=body, headers=headers
                ) as upstream:
                    payload = await upstream.read()
                    if upstream.status == 200 and service.on_success is not None:
                        service.on_success(operation, parsed, payload)
                    response = web.Response(status=upstream.status, body=payload)
                    for key, value in upstream.headers.items():
                        lower = key.lower()
                        if lower not in _HOP_BY_HOP and not lower.startswith(_CORS_PREFIX):
                            response.headers.add(key, value)
                    return response
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("%s request failed: %s", service.name, exc)
                return json_protocol_error(
                    500, service.error_prefix + "InternalServerError", f"{service.name} failed"
                )

        return forward

    def _check_signature(
        self, request: web.Request, service: ServiceBackend
    ) -> PendingSignature | web.Response:
        """What is left to check once the SigV4 ``Authorization`` header is valid (the body),
        else the JSON-protocol error AWS answers with (botocore raises it as a ClientError
        with the same code). Nothing of the body has been read yet.

        These services sign the payload: ``UNSIGNED-PAYLOAD`` (which only S3 accepts) is a
        signature that does not match, so no byte of the body reaches the emulator unsigned."""
        assert service.signing_name is not None
        prefix = service.auth_error_prefix
        if "Authorization" not in request.headers:
            code, message = _MISSING_TOKEN
            return json_protocol_error(400, prefix + code, message)
        try:
            return self._verify(request, service.signing_name)
        except SigV4Error as exc:
            return self._signature_refused(service, exc)

    def _check_payload(
        self, pending: PendingSignature, body: bytes, service: ServiceBackend
    ) -> Principal | web.Response:
        """The signer once ``body`` is the one signed, else the JSON-protocol error."""
        try:
            return pending.check_body(body).principal
        except SigV4Error as exc:
            return self._signature_refused(service, exc)

    def _signature_refused(self, service: ServiceBackend, exc: SigV4Error) -> web.Response:
        log.info("%s request refused: %s", service.name, exc)
        code = _JSON_SIGNATURE_ERRORS.get(exc.reason, "IncompleteSignatureException")
        return json_protocol_error(
            400, service.auth_error_prefix + code, _forbidden_message(exc.reason)
        )

    def _check_access(
        self,
        principal: Principal,
        service: ServiceBackend,
        operation: str,
        request: Mapping[str, Any],
    ) -> web.Response | None:
        """None if IAM allows every (action, resource) the request needs, else AWS's
        AccessDeniedException (HTTP 400 on the JSON protocol) naming the first refused one.

        https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html"""
        assert service.required_access is not None
        try:
            for action, resource in service.required_access(operation, request):
                self.iam.check(principal, action, resource)
        except AccessDenied as denied:
            log.info("%s request refused: %s", service.name, denied)
            return json_protocol_error(
                400, service.auth_error_prefix + "AccessDeniedException", str(denied)
            )
        return None

    def _verify(self, request: web.Request, signing_name: str) -> PendingSignature:
        """The headers' check of ``request`` signed for ``signing_name``, the body's still to
        come; raises SigV4Error."""
        raw_path, _, raw_query = request.raw_path.partition("?")
        return verify_authorization_headers(
            request.method,
            raw_path,
            raw_query,
            request.headers,
            self.credentials,
            service=signing_name,
            region=self.region,
        )

    # ------------------------------------------------------------------ iot-data

    async def _publish(self, request: web.Request) -> web.Response:
        try:
            await self._do_publish(request)
        except ApiError as error:
            response = rest_json_error(error)
            if error.status == 413:  # the body was not read: do not wait for it
                response.force_close()
            return response
        return web.json_response({}, headers={"x-amzn-RequestId": str(uuid.uuid4())})

    async def _read_signed_payload(self, request: web.Request) -> tuple[Principal, bytes]:
        """The signer and the payload of an iot-data publish, refused before the body is read
        when it is declared larger than the gateway's payload limit (128 KB, as AWS IoT Core:
        https://docs.aws.amazon.com/general/latest/gr/iot-core.html) or its ``Authorization``
        header is refused (unknown key, no session token, ``UNSIGNED-PAYLOAD``, ...)."""
        limit = self.gateway.broker.limits.max_payload_bytes
        if declared_too_large(request, limit):
            raise payload_too_large(limit)
        try:
            pending = self._verify(request, IOT_DATA_SIGNING_NAME)
            body = await read_body(request, limit)
            return pending.check_body(body).principal, body
        except SigV4Error as exc:
            log.info("iot-data request refused: %s", exc)
            raise ApiError(403, "ForbiddenException", _forbidden_message(exc.reason)) from None
        except BodyTooLarge:
            raise payload_too_large(limit) from None

    def _path_topic(self, request: web.Request, prefix: str) -> str:
        """The topic label of an iot-data path (percent-encoded, ``/`` included), checked
        like an MQTT topic name."""
        raw_path = request.raw_path.partition("?")[0]
        try:
            topic = unquote(raw_path[len(prefix) :], errors="strict")
        except UnicodeDecodeError:
            raise invalid_request("Invalid topic: not UTF-8") from None
        limits = self.gateway.broker.limits
        try:
            validate_topic_name(topic, limits.max_topic_bytes, limits.max_topic_slashes)
        except InvalidTopic as exc:
            raise ApiError(400, "InvalidRequestException", f"Invalid topic: {exc}") from None
        return topic

    async def _do_publish(self, request: web.Request) -> None:
        principal, body = await self._read_signed_payload(request)
        topic = self._path_topic(request, TOPICS_PREFIX)
        query = request.rel_url.query
        qos = publish_qos(query.get("qos"))
        retain = boolean_flag(query.get("retain"), "retain")
        properties = publish_properties(request, body)
        if is_reserved(topic) or not self.authorizer.can_publish(principal, "n/a", topic, retain):
            raise ApiError(403, "ForbiddenException", "Forbidden")
        # A Lambda's publish carries its invocation's trace in the header botocore adds from
        # _X_AMZN_TRACE_ID (infra/local/trace.py); any other caller's starts a new trace.
        trace_id = from_xray_header(request.headers.get("X-Amzn-Trace-Id"))
        try:
            with traced(trace_id):
                self.gateway.publish(
                    topic,
                    body,
                    qos=qos,
                    retain=retain,
                    properties=properties,
                    client_id="n/a",
                    principal=principal,
                )
        except ValueError as exc:  # the broker's own checks; InvalidTopic is one
            raise ApiError(400, "InvalidRequestException", str(exc)) from None

    async def _answer(self, request: web.Request, read: RetainedRead) -> web.Response:
        """A signed iot-data GET answered by ``read`` (caller, request) as JSON, or its error."""
        try:
            principal, _ = await self._read_signed_payload(request)
            body = read(principal, request)
        except ApiError as error:
            return rest_json_error(error)
        return web.json_response(body, headers={"x-amzn-RequestId": str(uuid.uuid4())})

    async def _get_retained(self, request: web.Request) -> web.Response:
        """GetRetainedMessage: ``GET /retainedMessage/{topic}``."""

        def read(principal: Principal, request: web.Request) -> dict[str, Any]:
            topic = self._path_topic(request, RETAINED_PATH + "/")
            if not self.authorizer.can_get_retained(principal, topic):
                raise ApiError(403, "ForbiddenException", "Forbidden")
            msg = self.gateway.broker.router.retained_message(topic)
            if msg is None:
                raise not_found(topic)
            return retained_message(msg)

        return await self._answer(request, read)

    async def _list_retained(self, request: web.Request) -> web.Response:
        """ListRetainedMessages: ``GET /retainedMessage?maxResults=&nextToken=``."""

        def read(principal: Principal, request: web.Request) -> dict[str, Any]:
            query = request.rel_url.query
            limit = max_results(query.get("maxResults"))
            after = page_start(query.get("nextToken"))
            if not self.authorizer.can_list_retained(principal):
                raise ApiError(403, "ForbiddenException", "Forbidden")
            messages = self.gateway.broker.router.retained_messages()
            summaries, token = retained_page(messages, after, limit)
            body: dict[str, Any] = {"retainedTopics": summaries}
            if token is not None:
                body["nextToken"] = token
            return body

        return await self._answer(request, read)


RetainedRead = Callable[[Principal, web.Request], dict[str, Any]]


def _json_object(body: bytes) -> Mapping[str, Any]:
    """The request's JSON object, or ``{}`` when it is none (the emulator then refuses it,
    and IAM sees a request naming no resource: ``*``)."""
    try:
        value = json.loads(body) if body else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _forbidden_message(reason: str) -> str:
    if reason == "SignatureMismatch":
        return (
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method."
        )
    if reason in ("UnknownAccessKey", "TokenMismatch", "CredentialExpired"):
        return "The security token included in the request is invalid."
    if reason in ("Expired", "NotYetValid"):
        return "Signature expired or not yet current."
    return "Forbidden"
