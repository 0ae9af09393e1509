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
import string
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..identity import Credential, Principal
from .attachments import PolicyAttachments
from .errors import invalid_parameter, not_authorized, not_found
from .store import load_json, save_json
from .tokens import TokenError, TokenSigner

log = logging.getLogger("iotchat.cognito")

IDENTITIES_FILE = "identities.json"
USER_POLICY_NAME = "iotchat-user"  # the IoT policy attached to a signed-in identity
CREDENTIAL_LIFETIME = 3600.0  # GetCredentialsForIdentity's default: one hour
OPENID_TOKEN_LIFETIME = 600  # GetOpenIdToken: ten minutes
OPENID_ISSUER = "https://cognito-identity.amazonaws.com"
SUB_ATTRIBUTE = "cognito-identity.amazonaws.com:sub"
AMR_ATTRIBUTE = "cognito-identity.amazonaws.com:amr"
AUD_ATTRIBUTE = "cognito-identity.amazonaws.com:aud"

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


@dataclass
class IdentityPool:
    directory: Path
    region: str
    pool_id: str
    signer: TokenSigner
    attachments: PolicyAttachments
    providers: list[LoginProvider] = field(default_factory=list)
    sink: CredentialSink = lambda credential: None
    credential_lifetime: float = CREDENTIAL_LIFETIME

    def __post_init__(self) -> None:
        doc = load_json(
            self.directory / IDENTITIES_FILE, {"identities": {}, "logins": {}, "credentials": []}
        )
        self.identities: dict[str, dict[str, Any]] = doc["identities"]
        self.logins: dict[str, str] = doc["logins"]  # "<provider>|<sub>" -> identity id
        now = time.time()
        self.issued: list[dict[str, Any]] = [c for c in doc["credentials"] if c["expires"] > now]
        for record in self.issued:
            self.sink(self._credential(record))

    def _save(self) -> None:
        now = time.time()
        self.issued = [c for c in self.issued if c["expires"] > now]
        doc = {"identities": self.identities, "logins": self.logins, "credentials": self.issued}
        save_json(self.directory / IDENTITIES_FILE, doc)

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

    def _identity(self, identity_id: Any) -> dict[str, Any]:
        identity = self.identities.get(identity_id) if isinstance(identity_id, str) else None
        if identity is None:
            raise not_found(f"Identity '{identity_id}' not found.")
        return identity

    def _check_pool(self, pool_id: Any) -> None:
        if pool_id != self.pool_id:
            raise not_found(f"IdentityPool '{pool_id}' not found.")

    # ------------------------------------------------------------------ operations

    def get_id(self, pool_id: Any, logins: Any) -> dict[str, Any]:
        """The identity linked to the logins, or a new one (a new guest without logins)."""
        self._check_pool(pool_id)
        keys = self._verify_logins(logins)
        linked = {self.logins[k] for k in keys if k in self.logins}
        if len(linked) > 1:
            raise not_authorized("Logins belong to different identities.")
        identity_id = linked.pop() if linked else f"{self.region}:{uuid.uuid4()}"
        identity = self.identities.setdefault(
            identity_id, {"logins": [], "created": time.time(), "policyAttached": False}
        )
        for key in keys:
            if key not in identity["logins"]:
                identity["logins"].append(key)
            self.logins[key] = identity_id
        self._save()
        return {"IdentityId": identity_id}

    def _authorize(self, identity_id: Any, logins: Any) -> tuple[str, dict[str, Any], list[str]]:
        """Check the caller may act as ``identity_id``; returns its valid login keys."""
        identity = self._identity(identity_id)
        keys = self._verify_logins(logins)
        if identity["logins"] and not keys:
            raise not_authorized(
                "Logins don't match. Please include at least one valid login for this identity "
                "or identity pool."
            )
        for key in keys:
            owner = self.logins.get(key)
            if owner is not None and owner != identity_id:
                raise not_authorized(
                    "Logins don't match. Please include at least one valid login for this identity "
                    "or identity pool."
                )
        for key in keys:  # a guest that signs in keeps its identity id, as in Cognito
            if key not in identity["logins"]:
                identity["logins"].append(key)
            self.logins[key] = identity_id
        return identity_id, identity, keys

    def get_credentials_for_identity(self, identity_id: Any, logins: Any) -> dict[str, Any]:
        identity_id, identity, keys = self._authorize(identity_id, logins)
        authenticated = bool(keys)
        if authenticated and not identity.get("policyAttached"):
            # What the AWS deployment does on a user's first sign-in.
            self.attachments.attach_policy(USER_POLICY_NAME, identity_id)
            identity["policyAttached"] = True
        record = {
            "accessKeyId": _access_key_id(),
            "secretKey": base64.b64encode(secrets.token_bytes(30)).decode(),
            "sessionToken": base64.b64encode(secrets.token_bytes(96)).decode(),
            "expires": time.time() + self.credential_lifetime,
            "identityId": identity_id,
            "authenticated": authenticated,
        }
        self.issued.append(record)
        self._save()
        self.sink(self._credential(record))
        log.info(
            "issued %s credentials %s for %s",
            "authenticated" if authenticated else "guest",
            record["accessKeyId"],
            identity_id,
        )
        return {
            "IdentityId": identity_id,
            "Credentials": {
                "AccessKeyId": record["accessKeyId"],
                "SecretKey": record["secretKey"],
                "SessionToken": record["sessionToken"],
                "Expiration": record["expires"],
            },
        }

    def get_open_id_token(self, identity_id: Any, logins: Any) -> dict[str, Any]:
        identity_id, _, keys = self._authorize(identity_id, logins)
        self._save()
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
            record["identityId"],
            attributes=(
                (SUB_ATTRIBUTE, record["identityId"]),
                (AMR_ATTRIBUTE, amr),
                (AUD_ATTRIBUTE, self.pool_id),
            ),
        )
        return Credential(
            record["accessKeyId"],
            record["secretKey"],
            principal,
            session_token=record["sessionToken"],
            expires_at=record["expires"],
        )
