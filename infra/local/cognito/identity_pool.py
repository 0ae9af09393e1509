"""A Cognito identity pool: identity ids for guests and signed-in users, and their keys.

Why our own: moto's Cognito Identity hands every identity the same keys, so nothing could
tell two users apart. Here each ``GetCredentialsForIdentity`` issues fresh random temporary
credentials and hands them to a sink (the gateway's credential store), so a SigV4 signature
maps back to exactly one identity. A user pool login is verified (signature, issuer,
audience, ``token_use``, expiry) before it names an identity.
"""

from __future__ import annotations

import base64
import logging
import secrets
import sqlite3
import string
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..identity import Credential, Principal
from .attachments import PolicyAttachments
from .errors import invalid_parameter, not_authorized, not_found
from .store import Database
from .tokens import TokenError, TokenSigner

log = logging.getLogger("iotchat.cognito")

IDENTITIES_FILE = "identities.json"  # an earlier version's store, imported once
USER_POLICY_NAME = "iotchat-user"  # the IoT policy attached to a signed-in identity
CREDENTIAL_LIFETIME = 3600.0  # GetCredentialsForIdentity's default: one hour
OPENID_TOKEN_LIFETIME = 600  # GetOpenIdToken: ten minutes
OPENID_ISSUER = "https://cognito-identity.amazonaws.com"
SUB_ATTRIBUTE = "cognito-identity.amazonaws.com:sub"
AMR_ATTRIBUTE = "cognito-identity.amazonaws.com:amr"
AUD_ATTRIBUTE = "cognito-identity.amazonaws.com:aud"
PRUNE_EVERY = 500  # expired credential rows are deleted every this many issues
LOGINS_DONT_MATCH = (
    "Logins don't match. Please include at least one valid login for this identity "
    "or identity pool."
)

CredentialSink = Callable[[Credential], None]


def new_identity_pool_id(region: str) -> str:
    return f"{region}:{uuid.uuid4()}"


def _access_key_id() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "ASIA" + "".join(secrets.choice(alphabet) for _ in range(16))


@dataclass(frozen=True)
class LoginProvider:
    """A user pool the identity pool trusts: its ``Logins`` key, issuer and app clients."""

    name: str
    issuer: str
    client_ids: frozenset[str]


@dataclass(frozen=True)
class Issued:
    """What ``GetCredentialsForIdentity`` answers, and the key to register before it does."""

    response: dict[str, Any]
    credential: Credential


@dataclass
class IdentityPool:
    """The pool over the Cognito database. Its methods block (SQLite, RSA): the API runs them
    on worker threads and registers issued keys (:attr:`sink`) back on the event loop."""

    database: Database
    region: str
    pool_id: str
    signer: TokenSigner
    attachments: PolicyAttachments
    providers: list[LoginProvider] = field(default_factory=list)
    sink: CredentialSink = lambda credential: None
    credential_lifetime: float = CREDENTIAL_LIFETIME

    def __post_init__(self) -> None:
        self.database.import_legacy(self.database.path.parent / IDENTITIES_FILE, _import)
        self._issued = 0
        self._issued_lock = threading.Lock()
        for credential in self.live_credentials():
            self.sink(credential)

    def live_credentials(self) -> list[Credential]:
        """Every issued, unexpired key (registered again after a restart); expired ones are
        deleted."""
        now = time.time()
        self.database.execute("DELETE FROM credentials WHERE expires <= ?", (now,))
        rows = self.database.query("SELECT * FROM credentials WHERE expires > ?", (now,))
        return [self._credential(dict(row)) for row in rows]

    def identity_count(self) -> int:
        return int(self.database.query("SELECT count(*) FROM identities")[0][0])

    # ------------------------------------------------------------------ logins

    def _verify_logins(self, logins: Any) -> list[str]:
        """The ``<provider>|<sub>`` keys of valid logins; any invalid one refuses the call."""
        if logins is None:
            return []
        if not isinstance(logins, dict) or len(logins) > 10:
            raise invalid_parameter("Logins must be a map of at most 10 entries")
        keys = []
        for name, token in logins.items():
            provider = next((p for p in self.providers if p.name == name), None)
            if provider is None:
                raise not_authorized(
                    "Token is not from a supported provider of this identity pool."
                )
            if not isinstance(token, str):
                raise not_authorized(
                    "Invalid login token. Not a valid OpenId Connect identity token."
                )
            try:
                claims = self.signer.verify(token, issuer=provider.issuer, token_use="id")  # noqa: S106
            except TokenError as exc:
                raise not_authorized(f"Invalid login token. {exc}") from exc
            if claims.get("aud") not in provider.client_ids:
                raise not_authorized(
                    "Token is not from a supported provider of this identity pool."
                )
            keys.append(f"{name}|{claims['sub']}")
        return keys

    def _check_pool(self, pool_id: Any) -> None:
        if pool_id != self.pool_id:
            raise not_found(f"IdentityPool '{pool_id}' not found.")

    @staticmethod
    def _owners(conn: sqlite3.Connection, keys: list[str]) -> dict[str, str]:
        """login key -> the identity it is linked to, for the keys that are linked."""
        owners = {}
        for key in keys:
            row = conn.execute("SELECT identity_id FROM logins WHERE login = ?", (key,)).fetchone()
            if row is not None:
                owners[key] = row[0]
        return owners

    # ------------------------------------------------------------------ operations

    def get_id(self, pool_id: Any, logins: Any) -> dict[str, Any]:
        """The identity linked to the logins, or a new one (a new guest without logins)."""
        self._check_pool(pool_id)
        keys = self._verify_logins(logins)
        with self.database.transaction() as conn:
            linked = set(self._owners(conn, keys).values())
            if len(linked) > 1:
                raise not_authorized("Logins belong to different identities.")
            identity_id = linked.pop() if linked else f"{self.region}:{uuid.uuid4()}"
            conn.execute(
                "INSERT OR IGNORE INTO identities (id, created) VALUES (?, ?)",
                (identity_id, time.time()),
            )
            for key in keys:
                conn.execute(
                    "INSERT OR REPLACE INTO logins (login, identity_id) VALUES (?, ?)",
                    (key, identity_id),
                )
        return {"IdentityId": identity_id}

    def _authorize(self, identity_id: Any, logins: Any) -> tuple[str, bool, list[str]]:
        """Check the caller may act as ``identity_id``; returns whether the IoT policy is
        attached to it and its valid login keys."""
        keys = self._verify_logins(logins)
        with self.database.transaction() as conn:
            row = None
            if isinstance(identity_id, str):
                row = conn.execute(
                    "SELECT policy_attached FROM identities WHERE id = ?", (identity_id,)
                ).fetchone()
            if row is None:
                raise not_found(f"Identity '{identity_id}' not found.")
            has_logins = conn.execute(
                "SELECT 1 FROM logins WHERE identity_id = ? LIMIT 1", (identity_id,)
            ).fetchone()
            if has_logins and not keys:
                raise not_authorized(LOGINS_DONT_MATCH)
            owners = self._owners(conn, keys)
            if any(owner != identity_id for owner in owners.values()):
                raise not_authorized(LOGINS_DONT_MATCH)
            for key in keys:  # a guest that signs in keeps its identity id, as in Cognito
                if key not in owners:
                    conn.execute(
                        "INSERT INTO logins (login, identity_id) VALUES (?, ?)",
                        (key, identity_id),
                    )
        return identity_id, bool(row[0]), keys

    def issue_credentials(self, identity_id: Any, logins: Any) -> Issued:
        """New temporary credentials for the identity, stored; the caller registers them."""
        identity_id, policy_attached, keys = self._authorize(identity_id, logins)
        authenticated = bool(keys)
        if authenticated and not policy_attached:
            # What the AWS deployment does on a user's first sign-in.
            self.attachments.attach_policy(USER_POLICY_NAME, identity_id)
            self.database.execute(
                "UPDATE identities SET policy_attached = 1 WHERE id = ?", (identity_id,)
            )
        record = {
            "access_key_id": _access_key_id(),
            "secret_key": base64.b64encode(secrets.token_bytes(30)).decode(),
            "session_token": base64.b64encode(secrets.token_bytes(96)).decode(),
            "expires": time.time() + self.credential_lifetime,
            "identity_id": identity_id,
            "authenticated": int(authenticated),
        }
        self.database.execute(
            "INSERT INTO credentials (access_key_id, secret_key, session_token, expires, "
            "identity_id, authenticated) VALUES (:access_key_id, :secret_key, :session_token, "
            ":expires, :identity_id, :authenticated)",
            record,
        )
        with self._issued_lock:
            self._issued += 1
            prune = self._issued % PRUNE_EVERY == 0
        if prune:
            self.database.execute("DELETE FROM credentials WHERE expires <= ?", (time.time(),))
        log.info(
            "issued %s credentials %s for %s",
            "authenticated" if authenticated else "guest",
            record["access_key_id"],
            identity_id,
        )
        response = {
            "IdentityId": identity_id,
            "Credentials": {
                "AccessKeyId": record["access_key_id"],
                "SecretKey": record["secret_key"],
                "SessionToken": record["session_token"],
                "Expiration": record["expires"],
            },
        }
        return Issued(response, self._credential(record))

    def get_credentials_for_identity(self, identity_id: Any, logins: Any) -> dict[str, Any]:
        """Issue and register at once (for callers on one thread)."""
        issued = self.issue_credentials(identity_id, logins)
        self.sink(issued.credential)
        return issued.response

    def get_open_id_token(self, identity_id: Any, logins: Any) -> dict[str, Any]:
        identity_id, _, keys = self._authorize(identity_id, logins)
        now = int(time.time())
        amr = (
            ["authenticated", *sorted({k.split("|", 1)[0] for k in keys})]
            if keys
            else ["unauthenticated"]
        )
        token = self.signer.sign(
            {
                "iss": OPENID_ISSUER,
                "sub": identity_id,
                "aud": self.pool_id,
                "amr": amr,
                "iat": now,
                "exp": now + OPENID_TOKEN_LIFETIME,
            }
        )
        return {"IdentityId": identity_id, "Token": token}

    def _credential(self, record: dict[str, Any]) -> Credential:
        amr = "authenticated" if record["authenticated"] else "unauthenticated"
        principal = Principal(
            "cognito",
            record["identity_id"],
            attributes=(
                (SUB_ATTRIBUTE, record["identity_id"]),
                (AMR_ATTRIBUTE, amr),
                (AUD_ATTRIBUTE, self.pool_id),
            ),
        )
        return Credential(
            record["access_key_id"],
            record["secret_key"],
            principal,
            session_token=record["session_token"],
            expires_at=record["expires"],
        )


def _import(conn: sqlite3.Connection, document: Any) -> None:
    """``identities.json`` of an earlier version: identities, logins, issued credentials."""
    for identity_id, identity in document.get("identities", {}).items():
        conn.execute(
            "INSERT OR IGNORE INTO identities (id, created, policy_attached) VALUES (?, ?, ?)",
            (
                identity_id,
                identity.get("created", time.time()),
                int(bool(identity.get("policyAttached"))),
            ),
        )
    for key, identity_id in document.get("logins", {}).items():
        conn.execute(
            "INSERT OR IGNORE INTO logins (login, identity_id) VALUES (?, ?)", (key, identity_id)
        )
    for c in document.get("credentials", []):
        conn.execute(
            "INSERT OR IGNORE INTO credentials (access_key_id, secret_key, session_token, "
            "expires, identity_id, authenticated) VALUES (?, ?, ?, ?, ?, ?)",
            (
                c["accessKeyId"],
                c["secretKey"],
                c["sessionToken"],
                c["expires"],
                c["identityId"],
                int(bool(c.get("authenticated"))),
            ),
        )
