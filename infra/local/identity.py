"""Who is calling: principals, their credentials, and the local account's constants.

Every listener of the local stack authenticates a caller to a :class:`Principal` through a
:class:`CredentialStore` (access keys for SigV4 and username/password, certificates for
mutual TLS). What a principal may then do is the gateway's :mod:`infra.local.gateway.authorizer`
and the policy evaluator's business, not this module's.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass, field
from typing import Protocol

ADMIN_ACCESS_KEY_ID = "test"
ADMIN_SECRET_ACCESS_KEY = "test"  # noqa: S105 - the documented local admin, as in LocalStack
LOCAL_ACCOUNT_ID = "000000000000"
LOCAL_REGION = "us-east-1"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    ``kind`` is one of ``admin``, ``iam``, ``cognito`` or ``certificate``; ``identifier`` is
    what AWS puts in a lifecycle event's ``principalIdentifier`` (an access key id, a Cognito
    identity id, or a certificate id); ``attributes`` carries values for policy variables.
    """

    kind: str
    identifier: str
    attributes: tuple[tuple[str, str], ...] = ()

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"

    def attribute(self, name: str) -> str | None:
        for key, value in self.attributes:
            if key == name:
                return value
        return None


ADMIN_PRINCIPAL = Principal("admin", ADMIN_ACCESS_KEY_ID)


@dataclass(frozen=True, slots=True)
class Credential:
    """A signing key the gateway can verify: an access key pair, maybe temporary."""

    access_key_id: str
    secret_access_key: str
    principal: Principal
    session_token: str | None = None
    expires_at: float | None = None  # epoch seconds; None never expires

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (now or time.time()) >= self.expires_at


class CredentialStore(Protocol):
    """Maps what a client presents back to a principal."""

    def lookup_access_key(self, access_key_id: str) -> Credential | None: ...

    def lookup_certificate(self, certificate_id: str) -> Principal | None: ...


@dataclass
class StaticCredentialStore:
    """An in-memory store holding the local admin plus whatever is added at run time."""

    credentials: dict[str, Credential] = field(default_factory=dict)
    certificates: dict[str, Principal] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.credentials.setdefault(
            ADMIN_ACCESS_KEY_ID,
            Credential(ADMIN_ACCESS_KEY_ID, ADMIN_SECRET_ACCESS_KEY, ADMIN_PRINCIPAL),
        )

    def add(self, credential: Credential) -> None:
        self.credentials[credential.access_key_id] = credential

    def add_certificate(self, certificate_id: str, principal: Principal | None = None) -> Principal:
        principal = principal or Principal("certificate", certificate_id)
        self.certificates[certificate_id] = principal
        return principal

    def lookup_access_key(self, access_key_id: str) -> Credential | None:
        return self.credentials.get(access_key_id)

    def lookup_certificate(self, certificate_id: str) -> Principal | None:
        return self.certificates.get(certificate_id)


def check_password(
    store: CredentialStore, username: str | None, password: bytes | None
) -> Principal | None:
    """Plain-TCP authentication: username is an access key id, password its secret."""
    if not username or password is None:
        return None
    credential = store.lookup_access_key(username)
    if credential is None or credential.expired():
        return None
    if not hmac.compare_digest(credential.secret_access_key.encode(), password):
        return None
    return credential.principal
