"""RS256 JSON Web Tokens, signed with a key pair kept per state dir.

Cognito signs ID and access tokens with RS256 and publishes the public key as a JWKS; the
local stack does the same with a key generated on first start, so tokens verify across
restarts and never across state dirs. Only what the pools need: sign, and verify the
signature, issuer, audience, ``token_use`` and expiry.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

KEY_FILE = "signing-key.pem"
CLOCK_SKEW = 0  # no leeway: an expired token is refused at once, as Cognito does


MALFORMED = "Not a valid OpenId Connect identity token."


class TokenError(Exception):
    """The token is malformed, forged, expired or meant for someone else."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise TokenError(MALFORMED) from exc


class TokenSigner:
    """Signs and verifies JWTs with one RSA key; ``kid`` is the key's SHA-256 thumbprint."""

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        self._key = key
        self._public = key.public_key()
        der = self._public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.kid = _b64url(hashlib.sha256(der).digest()[:16])

    @classmethod
    def load_or_create(cls, directory: Path) -> TokenSigner:
        """The state dir's key, generated (RSA 2048, mode 0600) the first time."""
        path = directory / KEY_FILE
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            assert isinstance(key, rsa.RSAPrivateKey)
            return cls(key)
        directory.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        return cls(key)

    def jwks(self) -> dict[str, Any]:
        """The public key as Cognito publishes it at ``.well-known/jwks.json``."""
        numbers = self._public.public_numbers()

        def encode(value: int) -> str:
            return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))

        key = {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid}
        return {"keys": [{**key, "n": encode(numbers.n), "e": encode(numbers.e)}]}

    def sign(self, claims: dict[str, Any]) -> str:
        header = {"kid": self.kid, "alg": "RS256"}
        signing_input = ".".join(
            _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        )
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    def verify(
        self,
        token: str,
        *,
        issuer: str,
        audience: str | None = None,
        token_use: str | None = None,
        now: float | None = None,
    ) -> dict[str, Any]:
        """The token's claims, after checking signature, ``iss``, ``aud``, use and ``exp``."""
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenError(MALFORMED)
        try:
            header = json.loads(_b64url_decode(parts[0]))
            claims = json.loads(_b64url_decode(parts[1]))
        except ValueError as exc:
            raise TokenError(MALFORMED) from exc
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise TokenError(MALFORMED)
        if header.get("alg") != "RS256" or header.get("kid") != self.kid:
            raise TokenError("Couldn't verify signed token.")
        try:
            self._public.verify(
                _b64url_decode(parts[2]),
                f"{parts[0]}.{parts[1]}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature as exc:
            raise TokenError("Couldn't verify signed token.") from exc
        if claims.get("iss") != issuer:
            raise TokenError("Issuer doesn't match providerName")
        if audience is not None and audience != claims.get("aud", claims.get("client_id")):
            raise TokenError("Incorrect token audience.")
        if token_use is not None and claims.get("token_use") != token_use:
            raise TokenError(f"Not an {token_use} token.")
        exp = claims.get("exp")
        now = time.time() if now is None else now
        if not isinstance(exp, int | float) or now >= exp + CLOCK_SKEW:
            raise TokenError(f"Token expired: {exp}")
        return claims
