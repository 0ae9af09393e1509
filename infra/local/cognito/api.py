"""The JSON-protocol front of the local Cognito, served on the edge API by ``X-Amz-Target``.

The operations served here are the ones AWS serves without a SigV4 signature (a guest or a
user signing in has no AWS credentials yet), so requests are not authenticated; tokens and
passwords in the body are what the pools check. That makes every one of them a door for
anyone who can reach the port, so before anything is read:

- each source IP, and all of them together, get a request rate (:class:`.limits.Throttle`);
  beyond it the answer is ``TooManyRequestsException`` (HTTP 400), as Cognito answers a
  caller over its request rate quota
  (https://docs.aws.amazon.com/cognito/latest/developerguide/quotas.html);
- at most ``max_pending`` calls wait for a worker thread; more are turned away the same way.

The pools block (SQLite, scrypt, RSA), so every call runs on a worker thread, never on the
event loop: identity pool calls on one small pool of threads, user pool calls on another, so
password hashing never delays a guest. User pool calls for one username run one at a time
(an ``asyncio.Lock`` per user, so waiting holds no thread): parallel guesses cannot race past
a user's failure counters. Keys ``GetCredentialsForIdentity`` issues are registered with the
gateway's credential store on the event loop before the answer leaves.

Every other operation of the two services (the read and admin calls of :mod:`.admin`, and any
the stack does not serve) needs a SigV4 signature and IAM's permission on AWS, so it is handed
to the signed handler the stack gives (``identity_admin``, ``idp_admin``), which answers it or
names it as not served.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
import weakref
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any

from aiohttp import web

from .errors import CognitoError, invalid_parameter
from .identity_pool import Issued
from .limits import Throttle
from .service import LocalCognito

log = logging.getLogger("iotchat.cognito")

IDENTITY_TARGET_PREFIX = "AWSCognitoIdentityService."
IDP_TARGET_PREFIX = "AWSCognitoIdentityProviderService."
CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_BODY = 256 * 1024
RATE_EXCEEDED = "Rate exceeded"

Operation = Callable[[dict[str, Any]], Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _response(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type=CONTENT_TYPE,
        headers={"x-amzn-RequestId": str(uuid.uuid4())},
    )


def _username(body: dict[str, Any]) -> str | None:
    """The user a user pool call is about (lower-cased, as usernames compare), if any."""
    name = body.get("Username")
    if name is None and isinstance(body.get("AuthParameters"), dict):
        name = body["AuthParameters"].get("USERNAME")
    return name.lower() if isinstance(name, str) else None


class CognitoAPI:
    """Two edge-API handlers, one per service, dispatching on the operation name."""

    def __init__(
        self,
        cognito: LocalCognito,
        identity_admin: Handler | None = None,
        idp_admin: Handler | None = None,
    ) -> None:
        self.cognito = cognito
        self._signed = {IDENTITY_TARGET_PREFIX: identity_admin, IDP_TARGET_PREFIX: idp_admin}
        self.throttle = Throttle(cognito.limits)
        self.pending = 0
        self.refused = 0
        self._user_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        idp = cognito.user_pool
        ids = cognito.identity_pool
        self.identity_operations: dict[str, Operation] = {
            "GetId": lambda b: ids.get_id(b.get("IdentityPoolId"), b.get("Logins")),
            "GetCredentialsForIdentity": lambda b: ids.issue_credentials(
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
            "GetUser": lambda b: idp.get_user(b.get("AccessToken")),
            "InitiateAuth": lambda b: idp.initiate_auth(
                b.get("ClientId"), b.get("AuthFlow"), b.get("AuthParameters") or {}
            ),
        }

    async def identity(self, request: web.Request) -> web.StreamResponse:
        return await self._dispatch(
            request,
            IDENTITY_TARGET_PREFIX,
            self.identity_operations,
            self.cognito.identity_workers,
            per_user=False,
        )

    async def idp(self, request: web.Request) -> web.StreamResponse:
        return await self._dispatch(
            request,
            IDP_TARGET_PREFIX,
            self.idp_operations,
            self.cognito.user_workers,
            per_user=True,
        )

    def _user_lock(self, key: str) -> asyncio.Lock:
        lock = self._user_locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._user_locks[key] = lock
        return lock

    async def _dispatch(
        self,
        request: web.Request,
        prefix: str,
        operations: dict[str, Operation],
        workers: Executor,
        *,
        per_user: bool,
    ) -> web.StreamResponse:
        name = request.headers.get("X-Amz-Target", "")[len(prefix) :]
        source = request.remote or "unknown"
        if not self.throttle.allow(source) or self.pending >= self.cognito.limits.max_pending:
            self.refused += 1
            if self.refused % 1000 == 1:  # once, then every thousandth
                log.warning(
                    "throttling Cognito calls (%d so far, latest from %s)", self.refused, source
                )
            return _response(400, {"__type": "TooManyRequestsException", "message": RATE_EXCEEDED})
        operation = operations.get(name)
        signed = self._signed[prefix]
        if operation is None and signed is not None:
            return await signed(request)
        if operation is None:
            return _response(
                400, {"__type": "UnknownOperationException", "message": f"{name} is not served"}
            )
        self.pending += 1
        try:
            if request.content_length is not None and request.content_length > MAX_BODY:
                raise invalid_parameter("request body too large")
            raw = await request.content.read(MAX_BODY + 1)
            while len(raw) <= MAX_BODY and not request.content.at_eof():
                more = await request.content.read(MAX_BODY + 1 - len(raw))
                if not more:
                    break
                raw += more
            if len(raw) > MAX_BODY:
                raise invalid_parameter("request body too large")
            try:
                body = json.loads(raw or b"{}")
            except ValueError as exc:
                raise CognitoError("SerializationException", "body is not JSON") from exc
            if not isinstance(body, dict):
                raise CognitoError("SerializationException", "body is not a JSON object")
            loop = asyncio.get_running_loop()
            user = _username(body) if per_user else None
            if user is None:
                result = await loop.run_in_executor(workers, operation, body)
            else:
                async with self._user_lock(user):
                    result = await loop.run_in_executor(workers, operation, body)
            if isinstance(result, Issued):
                self.cognito.identity_pool.sink(result.credential)
                result = result.response
            return _response(200, result)
        except CognitoError as exc:
            log.info("%s refused: %s (%s)", name, exc.code, exc.message)
            return _response(exc.status, {"__type": exc.code, "message": exc.message})
        finally:
            self.pending -= 1
