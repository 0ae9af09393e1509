"""A Cognito user pool: sign-up with an emailed code, confirm, sign-in and refresh.

Why our own and not moto's: moto signs every pool's tokens with one RSA key shipped inside
the package (anyone can forge a token any moto install accepts) and keeps users in memory
only. This pool signs with the state dir's own key and keeps users in the Cognito database
(one row per user).

No mail leaves the machine: a verification code is appended to ``outbox.jsonl`` next to the
pool's state (mode 0600), and nowhere else: never to the log.

Brute force meets AWS's limits (:mod:`.limits`): sign-in locks a user out after five wrong
passwords with a doubling back-off
(https://docs.aws.amazon.com/cognito/latest/developerguide/authentication.html#authentication-flow-lockout),
answering ``NotAuthorizedException`` "Password attempts exceeded" as ``InitiateAuth`` does
(https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_InitiateAuth.html);
a confirmation code is invalidated after a few wrong guesses and codes are sent at a bounded
rate, with ``ConfirmSignUp``'s exception names
(https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_ConfirmSignUp.html).
Unconfirmed users are deleted after ``unconfirmed_lifetime``.

The methods block (scrypt, SQLite): the API runs them on worker threads, one at a time per
user, so two guesses at one user's password never race past its failure counter.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import sqlite3
import string
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CognitoError, invalid_parameter, not_authorized, not_found
from .limits import CognitoLimits
from .store import Database, append_line
from .tokens import TokenError, TokenSigner

log = logging.getLogger("iotchat.cognito")

USERS_FILE = "users.json"  # an earlier version's store, imported once
OUTBOX_FILE = "outbox.jsonl"
TOKEN_LIFETIME = 3600  # ID and access tokens: Cognito's default of one hour
REFRESH_LIFETIME = 30 * 24 * 3600  # refresh tokens: Cognito's default of 30 days
_SYMBOLS = "^$*.[]{}()?\"!@#%&/\\,><':;|_~`=+- "
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# The pool's custom attributes, as the AWS template declares them (infra/aws/template/
# cognito.py, HANDLE_SCHEMA): name -> (min, max) length of the string. Immutable: set at sign-up
# only. In tokens a custom attribute is always a string
# (https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_SchemaAttributeType.html).
CUSTOM_ATTRIBUTES = {"custom:handle": (3, 32)}
ACCESS = "access"  # the token_use of an access token
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
# Hashed for an unknown username, so that it costs as long as a wrong password.
_DUMMY_SALT = secrets.token_bytes(16)

INCORRECT = "Incorrect username or password."
ATTEMPTS_EXCEEDED = "Password attempts exceeded"
CODE_MISMATCH = "Invalid verification code provided, please try again."
CODE_EXPIRED = "Invalid code provided, please request a code again."
CODE_ATTEMPTS = "Too many failed attempts; request a new code with ResendConfirmationCode."
LIMIT_EXCEEDED = "Attempt limit exceeded, please try after some time."


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
    """One pool with one app client (no secret), its users in ``database``."""

    database: Database
    region: str
    pool_id: str
    client_id: str
    signer: TokenSigner
    token_lifetime: int = TOKEN_LIFETIME
    limits: CognitoLimits = field(default_factory=CognitoLimits)
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self.directory = self.database.path.parent
        self.database.import_legacy(self.directory / USERS_FILE, _import)
        self.purge()

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

    def _check_client(self, client_id: Any) -> None:
        if client_id != self.client_id:
            raise not_found(f"User pool client {client_id} does not exist.")

    # ------------------------------------------------------------------ the store

    def purge(self) -> int:
        """Delete unconfirmed users past their lifetime and expired refresh tokens; the
        number of users deleted."""
        now = self.clock()
        self.database.execute("DELETE FROM refresh_tokens WHERE expires <= ?", (now,))
        return self.database.execute(
            "DELETE FROM users WHERE confirmed = 0 AND created < ?",
            (now - self.limits.unconfirmed_lifetime,),
        )

    def _load(self, conn: sqlite3.Connection, key: str) -> dict[str, Any] | None:
        row = conn.execute("SELECT record FROM users WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        user: dict[str, Any] = json.loads(row[0])
        if not user["confirmed"] and self._expired(user):
            conn.execute("DELETE FROM users WHERE key = ?", (key,))
            return None
        return user

    def _expired(self, user: dict[str, Any]) -> bool:
        return bool(self.clock() - user["created"] > self.limits.unconfirmed_lifetime)

    @staticmethod
    def _store(conn: sqlite3.Connection, key: str, user: dict[str, Any]) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO users (key, confirmed, created, record) VALUES (?, ?, ?, ?)",
            (key, int(bool(user["confirmed"])), user["created"], json.dumps(user)),
        )

    def user(self, username: str) -> dict[str, Any] | None:
        """The stored record of ``username`` (case-insensitive), or None."""
        with self.database.transaction() as conn:
            return self._load(conn, username.lower())

    def user_count(self) -> int:
        return int(self.database.query("SELECT count(*) FROM users")[0][0])

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
        custom = _custom_attributes(attrs)
        key = username.lower()  # usernames are case-insensitive, as in new Cognito pools
        self.purge()
        if self.user(key) is not None:
            raise CognitoError("UsernameExistsException", "User already exists")
        check_password_policy(password)
        salt = secrets.token_bytes(16)
        hashed = _hash_password(password, salt)  # slow: outside the database lock
        now = self.clock()
        user: dict[str, Any] = {
            "username": username,
            "sub": str(uuid.uuid4()),
            "email": email,
            "email_verified": False,
            "confirmed": False,
            "salt": salt.hex(),
            "password": hashed,
            "created": now,
            "code_sends": [],
            **custom,
        }
        with self.database.transaction() as conn:
            if self._load(conn, key) is not None:
                raise CognitoError("UsernameExistsException", "User already exists")
            mail = self._new_code(user, now)
            self._store(conn, key, user)
        self._deliver(mail)
        return {
            "UserConfirmed": False,
            "UserSub": user["sub"],
            "CodeDeliveryDetails": self._delivery(user),
        }

    @staticmethod
    def _delivery(user: dict[str, Any]) -> dict[str, str]:
        return {
            "Destination": mask_email(user["email"]),
            "DeliveryMedium": "EMAIL",
            "AttributeName": "email",
        }

    def _new_code(self, user: dict[str, Any], now: float) -> dict[str, Any]:
        """A fresh code in ``user`` (the old one and its failures forgotten); the outbox
        record that delivers it."""
        code = f"{secrets.randbelow(10**6):06d}"
        window = now - self.limits.code_send_window
        user.update(
            code=code,
            code_expires=now + self.limits.code_lifetime,
            code_failures=0,
            code_sends=[t for t in user.get("code_sends", []) if t > window] + [now],
        )
        return {
            "time": now,
            "userPoolId": self.pool_id,
            "username": user["username"],
            "to": user["email"],
            "subject": "Your verification code",
            "code": code,
        }

    def _deliver(self, mail: dict[str, Any]) -> None:
        """Append to the outbox; the log says a code was sent, never which."""
        append_line(self.outbox, mail)
        log.info("verification code for %s written to %s", mail["username"], self.outbox)

    def _existing(self, conn: sqlite3.Connection, username: Any) -> tuple[str, dict[str, Any]]:
        user = self._load(conn, username.lower()) if isinstance(username, str) else None
        if user is None:
            raise CognitoError("UserNotFoundException", "Username/client id combination not found.")
        return username.lower(), user

    def confirm_sign_up(self, client_id: Any, username: Any, code: Any) -> dict[str, Any]:
        """Confirm with the mailed code. A wrong code is ``CodeMismatchException``; the
        ``code_attempts``-th wrong one invalidates the code (``TooManyFailedAttemptsException``),
        after which every code, the right one too, is ``ExpiredCodeException`` until
        ``ResendConfirmationCode`` sends a new one."""
        self._check_client(client_id)
        now = self.clock()
        with self.database.transaction() as conn:
            key, user = self._existing(conn, username)
            if user["confirmed"]:
                raise not_authorized("User cannot be confirmed. Current status is CONFIRMED")
            expected = user.get("code")
            if not expected or now > user["code_expires"]:
                raise CognitoError("ExpiredCodeException", CODE_EXPIRED)
            if isinstance(code, str) and hmac.compare_digest(code.encode(), expected.encode()):
                user.update(confirmed=True, email_verified=True, code=None, code_expires=None)
                user.update(code_failures=0, code_sends=[])
                self._store(conn, key, user)
                return {}
            user["code_failures"] = user.get("code_failures", 0) + 1
            exhausted = user["code_failures"] >= self.limits.code_attempts
            if exhausted:
                user.update(code=None, code_expires=None)
            self._store(conn, key, user)
        if exhausted:
            log.info(
                "confirmation code of %s invalidated after %d wrong codes",
                key,
                self.limits.code_attempts,
            )
            raise CognitoError("TooManyFailedAttemptsException", CODE_ATTEMPTS)
        raise CognitoError("CodeMismatchException", CODE_MISMATCH)

    def resend_confirmation_code(self, client_id: Any, username: Any) -> dict[str, Any]:
        """A new code (the old one stops working); ``LimitExceededException`` once
        ``code_sends`` codes went out within ``code_send_window``."""
        self._check_client(client_id)
        now = self.clock()
        with self.database.transaction() as conn:
            key, user = self._existing(conn, username)
            if user["confirmed"]:
                raise invalid_parameter("User is already confirmed.")
            window = now - self.limits.code_send_window
            if len([t for t in user.get("code_sends", []) if t > window]) >= self.limits.code_sends:
                raise CognitoError("LimitExceededException", LIMIT_EXCEEDED)
            mail = self._new_code(user, now)
            self._store(conn, key, user)
        self._deliver(mail)
        return {"CodeDeliveryDetails": self._delivery(user)}

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
        user = self.user(key)
        if user is None:
            # Unknown user and wrong password look alike, and take as long (prevent user
            # existence errors).
            _hash_password(password, _DUMMY_SALT)
            raise not_authorized(INCORRECT)
        now = self.clock()
        if (
            user.get("auth_failures")
            and now - user.get("last_attempt", 0) >= self.limits.lockout_reset
        ):
            user["auth_failures"] = 0  # quiet long enough: the lockout starts over
        locked = now < user.get("locked_until", 0)
        correct = not locked and hmac.compare_digest(
            _hash_password(password, bytes.fromhex(user["salt"])), user["password"]
        )
        with self.database.transaction() as conn:
            stored = self._load(conn, key)
            if stored is None or stored["password"] != user["password"]:
                raise not_authorized(INCORRECT)  # deleted or changed meanwhile
            stored.update(auth_failures=user.get("auth_failures", 0), last_attempt=now)
            if not locked and not correct:
                stored["auth_failures"] += 1
                lockout = self.limits.lockout(stored["auth_failures"])
                if lockout:
                    stored["locked_until"] = now + lockout
            elif correct:
                stored.update(auth_failures=0, locked_until=0)
            self._store(conn, key, stored)
        if locked:
            raise not_authorized(ATTEMPTS_EXCEEDED)
        if not correct:
            if self.limits.lockout(stored["auth_failures"]):
                log.info("sign-in of %s locked out after %d failures", key, stored["auth_failures"])
            raise not_authorized(INCORRECT)
        if not user["confirmed"]:
            raise CognitoError("UserNotConfirmedException", "User is not confirmed.")
        refresh_token = secrets.token_urlsafe(64)
        auth_time = int(time.time())
        self.database.execute(
            "INSERT INTO refresh_tokens (hash, username, expires, auth_time) VALUES (?, ?, ?, ?)",
            (
                hashlib.sha256(refresh_token.encode()).hexdigest(),
                key,
                time.time() + REFRESH_LIFETIME,
                auth_time,
            ),
        )
        result = self._tokens(stored, auth_time=auth_time)
        result["RefreshToken"] = refresh_token
        return {"ChallengeParameters": {}, "AuthenticationResult": result}

    def _refresh_auth(self, parameters: dict[str, Any]) -> dict[str, Any]:
        token = parameters.get("REFRESH_TOKEN")
        if not isinstance(token, str):
            raise invalid_parameter("Missing required parameter REFRESH_TOKEN")
        rows = self.database.query(
            "SELECT username, expires, auth_time FROM refresh_tokens WHERE hash = ?",
            (hashlib.sha256(token.encode()).hexdigest(),),
        )
        if not rows or time.time() >= rows[0]["expires"]:
            raise not_authorized("Invalid Refresh Token")
        user = self.user(rows[0]["username"])
        if user is None:
            raise not_authorized("Invalid Refresh Token")
        # Cognito keeps auth_time at the original sign-in and issues no new refresh token.
        result = self._tokens(user, auth_time=rows[0]["auth_time"])
        return {"ChallengeParameters": {}, "AuthenticationResult": result}

    def get_user(self, access_token: Any) -> dict[str, Any]:
        """``GetUser``: the signed-in user's own attributes, for their access token
        (https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_GetUser.html)."""
        if not isinstance(access_token, str):
            raise invalid_parameter("Missing required parameter AccessToken")
        try:
            claims = self.signer.verify(access_token, issuer=self.issuer, token_use=ACCESS)
        except TokenError as exc:
            raise not_authorized("Invalid Access Token") from exc
        if claims.get("client_id") != self.client_id:
            raise not_authorized("Invalid Access Token")
        user = self.user(str(claims.get("username", "")))
        if user is None or user["sub"] != claims.get("sub"):
            raise not_authorized("User does not exist.")
        return {"Username": user["username"], "UserAttributes": user_attributes(user)}

    def _tokens(self, user: dict[str, Any], auth_time: int) -> dict[str, Any]:
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
                **{name: user[name] for name in CUSTOM_ATTRIBUTES if name in user},
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


def _custom_attributes(attrs: dict[Any, Any]) -> dict[str, str]:
    """The custom attributes of a sign-up, checked against the schema as Cognito does: an
    undeclared one is refused, a declared one must be a string within its lengths."""
    found: dict[str, str] = {}
    for name, value in attrs.items():
        if not isinstance(name, str) or not name.startswith("custom:"):
            continue
        if name not in CUSTOM_ATTRIBUTES:
            raise invalid_parameter(
                "Attributes did not conform to the schema: "
                f"Type for attribute {{{name}}} could not be determined"
            )
        low, high = CUSTOM_ATTRIBUTES[name]
        if not isinstance(value, str) or not low <= len(value) <= high:
            raise invalid_parameter(
                f"Attributes did not conform to the schema: {name}: "
                f"String must be {low} to {high} characters long"
            )
        found[name] = value
    return found


def user_attributes(user: dict[str, Any]) -> list[dict[str, str]]:
    """A user's attributes as GetUser and AdminGetUser list them (booleans as "true")."""
    found = []
    for name in ("sub", "email", "email_verified", *CUSTOM_ATTRIBUTES):
        value = user.get(name)
        if value is not None:
            text = str(value).lower() if isinstance(value, bool) else str(value)
            found.append({"Name": name, "Value": text})
    return found


def _import(conn: sqlite3.Connection, document: Any) -> None:
    """``users.json`` of an earlier version: users and refresh tokens."""
    for key, user in document.get("users", {}).items():
        user.setdefault("code_sends", [])
        conn.execute(
            "INSERT OR IGNORE INTO users (key, confirmed, created, record) VALUES (?, ?, ?, ?)",
            (
                key,
                int(bool(user.get("confirmed"))),
                user.get("created", time.time()),
                json.dumps(user),
            ),
        )
    for digest, record in document.get("refresh", {}).items():
        conn.execute(
            "INSERT OR IGNORE INTO refresh_tokens (hash, username, expires, auth_time) "
            "VALUES (?, ?, ?, ?)",
            (digest, record["username"], record["expires"], record["auth_time"]),
        )
