"""A Cognito user pool: sign-up with an emailed code, confirm, sign-in and refresh.

Why our own and not moto's: moto signs every pool's tokens with one RSA key shipped inside
the package (anyone can forge a token any moto install accepts) and keeps users in memory
only. This pool signs with the state dir's own key and persists users as JSON.

No mail leaves the machine: a verification code is appended to ``outbox.jsonl`` next to the
pool's state and logged, and nowhere else.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import string
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import CognitoError, invalid_parameter, not_authorized, not_found
from .store import append_line, load_json, save_json
from .tokens import TokenSigner

log = logging.getLogger("iotchat.cognito")

USERS_FILE = "users.json"
OUTBOX_FILE = "outbox.jsonl"
CODE_LIFETIME = 24 * 3600  # Cognito's sign-up codes are valid for 24 hours
TOKEN_LIFETIME = 3600  # ID and access tokens: Cognito's default of one hour
REFRESH_LIFETIME = 30 * 24 * 3600  # refresh tokens: Cognito's default of 30 days
_SYMBOLS = "^$*.[]{}()?\"!@#%&/\\,><':;|_~`=+- "
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def new_user_pool_id(region: str) -> str:
    alphabet = string.ascii_letters + string.digits
    return f"{region}_" + "".join(secrets.choice(alphabet) for _ in range(9))


def new_client_id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(26))


def _hash_password(password: str, salt: bytes) -> str:
    return hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT).hex()


def check_password_policy(password: str) -> None:
    """Cognito's default policy: 8+ characters with upper, lower, digit and symbol."""
    problems = []
    if len(password) < 8:
        problems.append("Password not long enough")
    if not any(c.isupper() for c in password):
        problems.append("Password must have uppercase characters")
    if not any(c.islower() for c in password):
        problems.append("Password must have lowercase characters")
    if not any(c.isdigit() for c in password):
        problems.append("Password must have numeric characters")
    if not any(c in _SYMBOLS for c in password):
        problems.append("Password must have symbol characters")
    if problems:
        raise CognitoError(
            "InvalidPasswordException", "Password did not conform with policy: " + problems[0]
        )


def mask_email(email: str) -> str:
    """How Cognito shows a destination: ``a***@e***``."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain[:1]}***"


@dataclass
class UserPool:
    """One pool with one app client (no secret), persisted under ``directory``."""

    directory: Path
    region: str
    pool_id: str
    client_id: str
    signer: TokenSigner
    token_lifetime: int = TOKEN_LIFETIME

    def __post_init__(self) -> None:
        doc = load_json(self.directory / USERS_FILE, {"users": {}, "refresh": {}})
        self.users: dict[str, dict[str, Any]] = doc["users"]
        self.refresh: dict[str, dict[str, Any]] = doc["refresh"]  # sha256(token) -> record

    @property
    def issuer(self) -> str:
        return f"https://cognito-idp.{self.region}.amazonaws.com/{self.pool_id}"

    @property
    def provider_name(self) -> str:
        """The key of this pool in an identity pool's ``Logins`` map."""
        return f"cognito-idp.{self.region}.amazonaws.com/{self.pool_id}"

    @property
    def outbox(self) -> Path:
        return self.directory / OUTBOX_FILE

    def _save(self) -> None:
        save_json(self.directory / USERS_FILE, {"users": self.users, "refresh": self.refresh})

    def _check_client(self, client_id: Any) -> None:
        if client_id != self.client_id:
            raise not_found(f"User pool client {client_id} does not exist.")

    # ------------------------------------------------------------------ sign-up

    def sign_up(
        self, client_id: Any, username: Any, password: Any, attributes: list[dict[str, Any]]
    ) -> dict[str, Any]:
        self._check_client(client_id)
        if not isinstance(username, str) or not 1 <= len(username) <= 128 or username.isspace():
            raise invalid_parameter("1 validation error detected: Value at 'username' failed")
        if not isinstance(password, str):
            raise invalid_parameter("1 validation error detected: Value at 'password' failed")
        attrs = {a.get("Name"): a.get("Value") for a in attributes if isinstance(a, dict)}
        email = attrs.get("email")
        if not isinstance(email, str) or not _EMAIL.match(email):
            raise invalid_parameter("Attributes did not conform to the schema: email is required")
        key = username.lower()  # usernames are case-insensitive, as in new Cognito pools
        if key in self.users:
            raise CognitoError("UsernameExistsException", "User already exists")
        check_password_policy(password)
        salt = secrets.token_bytes(16)
        sub = str(uuid.uuid4())
        self.users[key] = {
            "username": username,
            "sub": sub,
            "email": email,
            "email_verified": False,
            "confirmed": False,
            "salt": salt.hex(),
            "password": _hash_password(password, salt),
            "created": time.time(),
        }
        self._send_code(key)
        return {
            "UserConfirmed": False,
            "UserSub": sub,
            "CodeDeliveryDetails": self._delivery(key),
        }

    def _delivery(self, key: str) -> dict[str, str]:
        email = self.users[key]["email"]
        return {
            "Destination": mask_email(email),
            "DeliveryMedium": "EMAIL",
            "AttributeName": "email",
        }

    def _send_code(self, key: str) -> None:
        user = self.users[key]
        code = f"{secrets.randbelow(10**6):06d}"
        user["code"] = code
        user["code_expires"] = time.time() + CODE_LIFETIME
        self._save()
        record = {
            "time": time.time(),
            "userPoolId": self.pool_id,
            "username": user["username"],
            "to": user["email"],
            "subject": "Your verification code",
            "code": code,
        }
        append_line(self.outbox, record)
        log.info("verification code for %s <%s>: %s", user["username"], user["email"], code)

    def _user(self, username: Any) -> dict[str, Any]:
        user = self.users.get(username.lower()) if isinstance(username, str) else None
        if user is None:
            raise CognitoError("UserNotFoundException", "Username/client id combination not found.")
        return user

    def confirm_sign_up(self, client_id: Any, username: Any, code: Any) -> dict[str, Any]:
        self._check_client(client_id)
        user = self._user(username)
        if user["confirmed"]:
            raise not_authorized("User cannot be confirmed. Current status is CONFIRMED")
        expected = user.get("code")
        if not isinstance(code, str) or not expected or not hmac.compare_digest(code, expected):
            raise CognitoError(
                "CodeMismatchException", "Invalid verification code provided, please try again."
            )
        if time.time() > user["code_expires"]:
            raise CognitoError(
                "ExpiredCodeException", "Invalid code provided, please request a code again."
            )
        user.update(confirmed=True, email_verified=True, code=None, code_expires=None)
        self._save()
        return {}

    def resend_confirmation_code(self, client_id: Any, username: Any) -> dict[str, Any]:
        self._check_client(client_id)
        user = self._user(username)
        if user["confirmed"]:
            raise invalid_parameter("User is already confirmed.")
        self._send_code(username.lower())
        return {"CodeDeliveryDetails": self._delivery(username.lower())}

    # ------------------------------------------------------------------ sign-in

    def initiate_auth(
        self, client_id: Any, flow: Any, parameters: dict[str, Any]
    ) -> dict[str, Any]:
        self._check_client(client_id)
        if flow == "USER_PASSWORD_AUTH":
            return self._password_auth(parameters)
        if flow in ("REFRESH_TOKEN_AUTH", "REFRESH_TOKEN"):
            return self._refresh_auth(parameters)
        raise invalid_parameter(f"Unsupported or invalid AuthFlow: {flow}")

    def _password_auth(self, parameters: dict[str, Any]) -> dict[str, Any]:
        username = parameters.get("USERNAME")
        password = parameters.get("PASSWORD")
        if not isinstance(username, str) or not isinstance(password, str):
            raise invalid_parameter("Missing required parameter USERNAME or PASSWORD")
        key = username.lower()
        user = self.users.get(key)
        # Unknown user and wrong password look alike (prevent user existence errors).
        if user is None or not hmac.compare_digest(
            _hash_password(password, bytes.fromhex(user["salt"])), user["password"]
        ):
            raise not_authorized("Incorrect username or password.")
        if not user["confirmed"]:
            raise CognitoError("UserNotConfirmedException", "User is not confirmed.")
        refresh_token = secrets.token_urlsafe(64)
        self.refresh[hashlib.sha256(refresh_token.encode()).hexdigest()] = {
            "username": key,
            "expires": time.time() + REFRESH_LIFETIME,
            "auth_time": int(time.time()),
        }
        self._save()
        result = self._tokens(key, auth_time=int(time.time()))
        result["RefreshToken"] = refresh_token
        return {"ChallengeParameters": {}, "AuthenticationResult": result}

    def _refresh_auth(self, parameters: dict[str, Any]) -> dict[str, Any]:
        token = parameters.get("REFRESH_TOKEN")
        if not isinstance(token, str):
            raise invalid_parameter("Missing required parameter REFRESH_TOKEN")
        record = self.refresh.get(hashlib.sha256(token.encode()).hexdigest())
        if record is None or time.time() >= record["expires"]:
            raise not_authorized("Invalid Refresh Token")
        if record["username"] not in self.users:
            raise not_authorized("Invalid Refresh Token")
        # Cognito keeps auth_time at the original sign-in and issues no new refresh token.
        result = self._tokens(record["username"], auth_time=record["auth_time"])
        return {"ChallengeParameters": {}, "AuthenticationResult": result}

    def _tokens(self, key: str, auth_time: int) -> dict[str, Any]:
        user = self.users[key]
        now = int(time.time())
        common = {
            "sub": user["sub"],
            "iss": self.issuer,
            "auth_time": auth_time,
            "iat": now,
            "exp": now + self.token_lifetime,
            "origin_jti": str(uuid.uuid4()),
        }
        id_token = self.signer.sign(
            {
                **common,
                "aud": self.client_id,
                "token_use": "id",
                "cognito:username": user["username"],
                "email": user["email"],
                "email_verified": user["email_verified"],
                "event_id": str(uuid.uuid4()),
                "jti": str(uuid.uuid4()),
            }
        )
        access_token = self.signer.sign(
            {
                **common,
                "client_id": self.client_id,
                "token_use": "access",
                "scope": "aws.cognito.signin.user.admin",
                "username": user["username"],
                "event_id": str(uuid.uuid4()),
                "jti": str(uuid.uuid4()),
            }
        )
        return {
            "AccessToken": access_token,
            "ExpiresIn": self.token_lifetime,
            "TokenType": "Bearer",
            "IdToken": id_token,
        }
