"""Temporary credentials for role sessions: what ``sts:AssumeRole`` hands a Lambda or a rule.

On AWS a Lambda function's code runs with temporary credentials of its execution role (in
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and ``AWS_SESSION_TOKEN``), and a rule action
acts as its ``roleArn``. Locally each session gets its own key, secret and session token,
registered with the stack's credential store so that every door maps the key back to the
role session (``Principal(kind="role", identifier=<role ARN>)``) and authorizes it against
that role's policy, never the admin's.
"""

from __future__ import annotations

import base64
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from infra.local.identity import Credential, Principal

from .roles import Role

DEFAULT_LIFETIME = 3600.0  # seconds; AssumeRole's default DurationSeconds
# Whoever keeps a session's credentials renews them this long before they expire, so no call
# is ever signed with a key about to lapse.
DEFAULT_RENEW_MARGIN = 300.0
SESSION_ATTRIBUTE = "session"
_KEY_ALPHABET = string.ascii_uppercase + "234567"


def temporary_access_key_id() -> str:
    """``ASIA`` + 16 characters: the shape AWS gives temporary (STS) access key ids."""
    return "ASIA" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))


class Expiring(Protocol):
    """Credentials that may expire (``identity.Credential`` fits)."""

    @property
    def expires_at(self) -> float | None: ...  # epoch seconds; None: never expires


def usable_until(credentials: Expiring, margin: float) -> float:
    """When to stop using ``credentials``: ``margin`` seconds before they expire."""
    if credentials.expires_at is None:
        return float("inf")
    return credentials.expires_at - margin


@dataclass(frozen=True)
class Renewal:
    """When whoever holds a session's credentials must renew them: ``margin`` seconds before
    they expire, by ``clock`` (one rule for the Lambda pollers' clients and the rules engine)."""

    margin: float = DEFAULT_RENEW_MARGIN
    clock: Callable[[], float] = time.time

    def until(self, credentials: Expiring) -> float:
        return usable_until(credentials, self.margin)

    def due(self, credentials: Expiring) -> bool:
        """Are ``credentials`` within ``margin`` of expiry (or past it)?"""
        return self.clock() >= self.until(credentials)


DEFAULT_RENEWAL = Renewal()


def role_principal(role: Role, session_name: str) -> Principal:
    return Principal("role", role.arn, ((SESSION_ATTRIBUTE, session_name),))


class RoleSessions:
    """Issues credentials for role sessions and registers each with the stack's store."""

    def __init__(
        self,
        register: Callable[[Credential], None],
        *,
        lifetime: float = DEFAULT_LIFETIME,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._register = register
        self.lifetime = lifetime
        self._clock = clock

    def issue(self, role: Role, session_name: str, lifetime: float | None = None) -> Credential:
        """New credentials for ``role`` as session ``session_name``, valid for ``lifetime`` s."""
        credential = Credential(
            access_key_id=temporary_access_key_id(),
            secret_access_key=base64.b64encode(secrets.token_bytes(30)).decode(),
            principal=role_principal(role, session_name),
            session_token=base64.b64encode(secrets.token_bytes(96)).decode(),
            expires_at=self._clock() + (self.lifetime if lifetime is None else lifetime),
        )
        self._register(credential)
        return credential
