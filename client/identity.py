"""Who the client is: a Cognito identity (guest or signed-in user) and its expiring credentials.

The CLI keeps the identity between runs in a session file (mode 0600), the way the browser keeps
it in local storage: a guest stays the same guest, a signed-in user stays signed in through the
refresh token. Credentials are refreshed a few minutes before they expire.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .stack_file import StackInfo

# Refresh credentials when less than this is left of their hour.
REFRESH_MARGIN = 300.0
ENV_SESSION_FILE = "IOTCHAT_SESSION_FILE"


class ClientIdentity(Protocol):
    """Whoever a chat client connects as: a Cognito :class:`Identity`, or a device's
    certificate identity (client/edge/device.py). ``identity_id`` becomes the MQTT client id."""

    @property
    def identity_id(self) -> str: ...


class AuthError(RuntimeError):
    """Sign-up, sign-in or credentials refused; the message is the service's reason."""


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_key: str
    session_token: str
    expiration: float  # epoch seconds


def _unsigned(stack: StackInfo, service: str) -> Any:
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    return boto3.session.Session(region_name=stack.region).client(
        service, endpoint_url=stack.api_endpoint, config=Config(signature_version=UNSIGNED)
    )


class StackUnreachable(AuthError):
    """The identity service did not answer at all (the stack is down or the address wrong)."""


def _auth_error(exc: Exception) -> AuthError:
    """The service's own words first, its error code after them for searching."""
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if isinstance(exc, BotoConnectionError):
        return StackUnreachable(f"{exc} (is the stack running?)")
    response = getattr(exc, "response", None) or {}
    error = response.get("Error", {})
    message = str(error.get("Message") or exc).strip()
    return AuthError(f"{message} ({error.get('Code', type(exc).__name__)})")


class SessionFile:
    """Per identity pool: the guest identity id, or a user's identity id and refresh token."""

    def __init__(self, path: Path | None = None) -> None:
        default = Path.home() / ".iotchat" / "sessions.json"
        self.path = path or Path(os.environ.get(ENV_SESSION_FILE) or default)

    def load(self, pool: str) -> dict[str, Any]:
        try:
            return dict(json.loads(self.path.read_text()).get(pool, {}))
        except (FileNotFoundError, json.JSONDecodeError, AttributeError):
            return {}

    def save(self, pool: str, entry: dict[str, Any] | None) -> None:
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            data = {}
        if entry is None:
            data.pop(pool, None)
        else:
            data[pool] = entry
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2)
        os.replace(tmp, self.path)


class Identity:
    """A Cognito identity whose credentials stay fresh; thread-safe (the MQTT client asks for
    credentials from its own thread on every connect)."""

    def __init__(
        self,
        stack: StackInfo,
        identity_id: str,
        *,
        id_token: str | None = None,
        refresh_token: str | None = None,
        username: str | None = None,
    ) -> None:
        self.stack = stack
        self.identity_id = identity_id
        self.username = username
        self._id_token = id_token
        self._refresh_token = refresh_token
        self._credentials: Credentials | None = None
        self._lock = threading.Lock()

    @property
    def signed_in(self) -> bool:
        return self._refresh_token is not None

    @property
    def _provider(self) -> str:
        return f"cognito-idp.{self.stack.region}.amazonaws.com/{self.stack.user_pool_id}"

    def _logins(self) -> dict[str, str] | None:
        if not self.signed_in:
            return None
        if self._id_token is None or _expired(self._id_token):
            self._id_token = _refresh(self.stack, self._refresh_token or "")["IdToken"]
        return {self._provider: self._id_token}

    def id_token(self) -> str | None:
        """A current Cognito ID token of the signed-in user (refreshed when near expiry), for
        the chat's ``hello``; None for a guest. Never logged."""
        if not self.signed_in:
            return None
        with self._lock:
            logins = self._logins() or {}
        return logins.get(self._provider)

    def credentials(self) -> Credentials:
        with self._lock:
            held = self._credentials
            if held is None or held.expiration - time.time() < REFRESH_MARGIN:
                held = self._credentials = self._fetch()
            return held

    def _fetch(self) -> Credentials:
        client = _unsigned(self.stack, "cognito-identity")
        request: dict[str, Any] = {"IdentityId": self.identity_id}
        logins = self._logins()
        if logins:
            request["Logins"] = logins
        try:
            creds = client.get_credentials_for_identity(**request)["Credentials"]
        except Exception as exc:
            raise _auth_error(exc) from exc
        return Credentials(
            creds["AccessKeyId"],
            creds["SecretKey"],
            creds["SessionToken"],
            creds["Expiration"].timestamp(),
        )

    # ------------------------------------------------------------------ construction

    @classmethod
    def guest(cls, stack: StackInfo, sessions: SessionFile | None = None) -> Identity:
        """The guest identity this machine used before on this stack, or a new one."""
        entry = sessions.load(stack.identity_pool_id) if sessions else {}
        identity_id = entry.get("guestIdentityId")
        if not identity_id:
            identity_id = _get_id(stack, None)
            if sessions:
                sessions.save(stack.identity_pool_id, {**entry, "guestIdentityId": identity_id})
        return cls(stack, identity_id)

    @classmethod
    def sign_in(
        cls, stack: StackInfo, username: str, password: str, sessions: SessionFile | None = None
    ) -> Identity:
        if not stack.user_pool_id or not stack.user_pool_client_id:
            raise AuthError("this stack has no user pool")
        try:
            result = _unsigned(stack, "cognito-idp").initiate_auth(
                ClientId=stack.user_pool_client_id,
                AuthFlow="USER_PASSWORD_AUTH",
                AuthParameters={"USERNAME": username, "PASSWORD": password},
            )["AuthenticationResult"]
        except Exception as exc:
            raise _auth_error(exc) from exc
        provider = f"cognito-idp.{stack.region}.amazonaws.com/{stack.user_pool_id}"
        identity_id = _get_id(stack, {provider: result["IdToken"]})
        identity = cls(
            stack,
            identity_id,
            id_token=result["IdToken"],
            refresh_token=result["RefreshToken"],
            username=username,
        )
        function = (stack.raw.get("cognito") or {}).get("signInFunction")
        if stack.kind == "aws" and function:
            # On AWS the IoT policy is attached by the stack's sign-in step (docs/deploy.md);
            # the local Cognito attaches it by itself on the first credentials.
            _attach_user_policy(stack, function, result["IdToken"], identity.credentials())
        if sessions:
            entry = sessions.load(stack.identity_pool_id)
            entry["user"] = {
                "identityId": identity_id,
                "refreshToken": result["RefreshToken"],
                "username": username,
            }
            sessions.save(stack.identity_pool_id, entry)
        return identity

    @classmethod
    def current(cls, stack: StackInfo, sessions: SessionFile) -> Identity:
        """The signed-in user if there is one (``iotchat login``), else the guest."""
        user = sessions.load(stack.identity_pool_id).get("user")
        if user:
            return cls(
                stack,
                user["identityId"],
                refresh_token=user["refreshToken"],
                username=user.get("username"),
            )
        return cls.guest(stack, sessions)


def _attach_user_policy(stack: StackInfo, function: str, id_token: str, creds: Credentials) -> None:
    """Invoke the stack's sign-in step (infra/aws/sign_in.py) as the signed-in identity."""
    import boto3

    client = boto3.session.Session(
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_key,
        aws_session_token=creds.session_token,
        region_name=stack.region,
    ).client("lambda")
    try:
        response = client.invoke(
            FunctionName=function, Payload=json.dumps({"idToken": id_token}).encode()
        )
        body = json.loads(response["Payload"].read() or b"{}")
    except Exception as exc:
        raise _auth_error(exc) from exc
    if response.get("FunctionError") or "error" in body or "identityId" not in body:
        raise AuthError(f"sign-in step failed: {body.get('message') or body}")


def sign_up(stack: StackInfo, email: str, password: str, handle: str | None = None) -> None:
    """Register ``email`` (also the user name) with the chat ``handle`` others address them
    by (the ``custom:handle`` attribute, docs/protocol.md); Cognito mails a confirmation code."""
    attributes = [{"Name": "email", "Value": email}]
    if handle:
        attributes.append({"Name": "custom:handle", "Value": handle})
    try:
        _unsigned(stack, "cognito-idp").sign_up(
            ClientId=stack.user_pool_client_id,
            Username=email,
            Password=password,
            UserAttributes=attributes,
        )
    except Exception as exc:
        raise _auth_error(exc) from exc


def confirm_sign_up(stack: StackInfo, email: str, code: str) -> None:
    try:
        _unsigned(stack, "cognito-idp").confirm_sign_up(
            ClientId=stack.user_pool_client_id, Username=email, ConfirmationCode=code
        )
    except Exception as exc:
        raise _auth_error(exc) from exc


def _get_id(stack: StackInfo, logins: dict[str, str] | None) -> str:
    request: dict[str, Any] = {"IdentityPoolId": stack.identity_pool_id}
    if logins:
        request["Logins"] = logins
    try:
        return _unsigned(stack, "cognito-identity").get_id(**request)["IdentityId"]
    except Exception as exc:
        raise _auth_error(exc) from exc


def _refresh(stack: StackInfo, refresh_token: str) -> dict[str, Any]:
    try:
        return _unsigned(stack, "cognito-idp").initiate_auth(
            ClientId=stack.user_pool_client_id,
            AuthFlow="REFRESH_TOKEN_AUTH",
            AuthParameters={"REFRESH_TOKEN": refresh_token},
        )["AuthenticationResult"]
    except Exception as exc:
        raise _auth_error(exc) from exc


def _expired(jwt: str, margin: float = 60.0) -> bool:
    """Whether a JWT's ``exp`` is (nearly) past; the token itself is verified by Cognito."""
    import base64

    try:
        claims = json.loads(base64.urlsafe_b64decode(jwt.split(".")[1] + "=="))
        return float(claims["exp"]) - time.time() < margin
    except (IndexError, ValueError, KeyError, TypeError):
        return True
