"""The JSON-protocol front of the local Cognito, served on the edge API by ``X-Amz-Target``.

The operations served here are the ones AWS serves without a SigV4 signature (a guest or a
user signing in has no AWS credentials yet), so requests are not authenticated; tokens and
passwords in the body are what the pools check.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .errors import CognitoError, invalid_parameter
from .service import LocalCognito

log = logging.getLogger("iotchat.cognito")

IDENTITY_TARGET_PREFIX = "AWSCognitoIdentityService."
IDP_TARGET_PREFIX = "AWSCognitoIdentityProviderService."
CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_BODY = 256 * 1024

Operation = Callable[[dict[str, Any]], dict[str, Any]]


def _response(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type=CONTENT_TYPE,
        headers={"x-amzn-RequestId": str(uuid.uuid4())},
    )


class CognitoAPI:
    """Two edge-API handlers, one per service, dispatching on the operation name."""

    def __init__(self, cognito: LocalCognito) -> None:
        # User pool calls hash passwords (scrypt, tens of ms): they run off the event loop,
        # one at a time. Identity pool calls feed the gateway's stores and stay on the loop.
        self._idp_lock = threading.Lock()
        idp = cognito.user_pool
        ids = cognito.identity_pool
        self.identity_operations: dict[str, Operation] = {
            "GetId": lambda b: ids.get_id(b.get("IdentityPoolId"), b.get("Logins")),
            "GetCredentialsForIdentity": lambda b: ids.get_credentials_for_identity(
                b.get("IdentityId"), b.get("Logins")
            ),
            "GetOpenIdToken": lambda b: ids.get_open_id_token(b.get("IdentityId"), b.get("Logins")),
        }
        self.idp_operations: dict[str, Operation] = {
            "SignUp": lambda b: idp.sign_up(
                b.get("ClientId"),
                b.get("Username"),
                b.get("Password"),
                b.get("UserAttributes") or [],
            ),
            "ConfirmSignUp": lambda b: idp.confirm_sign_up(
                b.get("ClientId"), b.get("Username"), b.get("ConfirmationCode")
            ),
            "ResendConfirmationCode": lambda b: idp.resend_confirmation_code(
                b.get("ClientId"), b.get("Username")
            ),
            "InitiateAuth": lambda b: idp.initiate_auth(
                b.get("ClientId"), b.get("AuthFlow"), b.get("AuthParameters") or {}
            ),
        }

    def _locked(self, operation: Operation, body: dict[str, Any]) -> dict[str, Any]:
        with self._idp_lock:
            return operation(body)

    async def identity(self, request: web.Request) -> web.Response:
        return await self._dispatch(
            request, IDENTITY_TARGET_PREFIX, self.identity_operations, offload=False
        )

    async def idp(self, request: web.Request) -> web.Response:
        return await self._dispatch(request, IDP_TARGET_PREFIX, self.idp_operations, offload=True)

    async def _dispatch(
        self, request: web.Request, prefix: str, operations: dict[str, Operation], *, offload: bool
    ) -> web.Response:
        name = request.headers.get("X-Amz-Target", "")[len(prefix) :]
        operation = operations.get(name)
        if operation is None:
            return _response(
                400, {"__type": "UnknownOperationException", "message": f"{name} is not served"}
            )
        try:
            raw = await request.content.read(MAX_BODY + 1)
            if len(raw) > MAX_BODY:
                raise invalid_parameter("request body too large")
            try:
                body = json.loads(raw or b"{}")
            except ValueError as exc:
                raise CognitoError("SerializationException", "body is not JSON") from exc
            if not isinstance(body, dict):
                raise CognitoError("SerializationException", "body is not a JSON object")
            if not offload:
                return _response(200, operation(body))
            return _response(200, await asyncio.to_thread(self._locked, operation, body))
        except CognitoError as exc:
            log.info("%s refused: %s (%s)", name, exc.code, exc.message)
            return _response(exc.status, {"__type": exc.code, "message": exc.message})
