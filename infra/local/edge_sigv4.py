"""SigV4 ``Authorization`` headers on edge API requests, verified as AWS's HTTP endpoints do.

The gateway's :mod:`~infra.local.sigv4` verifies presigned WebSocket URLs (signature in
the query string); HTTP APIs such as iot-data publish carry it in a header instead::

    Authorization: AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/<service>/aws4_request,
                   SignedHeaders=host;x-amz-date, Signature=<hex>

The canonical request differs from the presigned form in three ways: the method is the
request's own, the path is normalised and percent-encoded once more (non-S3 services), and
the payload hash is the body's SHA-256 unless ``X-Amz-Content-SHA256`` says otherwise. The
scope, signing key, header canonicalisation and error codes are shared with the gateway.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from urllib.parse import quote, unquote

from infra.local.identity import Credential, CredentialStore
from infra.local.sigv4 import (
    ALGORITHM,
    SigV4Error,
    _canonical_headers,
    _canonical_query,
    _parse_amz_date,
    _parse_signed_headers,
    _signature,
    _token_matches,
)

MAX_QUERY_FIELDS = 100
_CONTENT_SHA256 = "x-amz-content-sha256"


def _auth_fields(header: str) -> dict[str, str]:
    """``AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`` to a dict."""
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise SigV4Error("InvalidParameter", f"Authorization must use {ALGORITHM}")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or key in fields:
            raise SigV4Error("InvalidParameter", "malformed Authorization header")
        fields[key] = value
    for required in ("Credential", "SignedHeaders", "Signature"):
        if required not in fields:
            raise SigV4Error("MissingParameter", required)
    return fields


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4 as the SDKs apply it: '.', '..' and empty segments go."""
    segments: list[str] = []
    for segment in path.split("/"):
        if not segment or segment == ".":
            continue
        if segment == "..":
            if segments:
                segments.pop()
        else:
            segments.append(segment)
    trailing = "/" if path.endswith("/") and segments else ""
    return "/" + "/".join(segments) + trailing


def canonical_path(raw_path: str) -> str:
    """The canonical URI of a non-S3 request: the path as sent, normalised, encoded again."""
    return quote(_remove_dot_segments(raw_path or "/"), safe="/~")


def _query_pairs(raw_query: str) -> list[tuple[str, str]]:
    """Decode ``a=1&b=%2F`` without turning '+' into a space (SigV4 encodes '+' as %2B)."""
    if not raw_query:
        return []
    parts = raw_query.split("&")
    if len(parts) > MAX_QUERY_FIELDS:
        raise SigV4Error("InvalidParameter", "too many query parameters")
    pairs = []
    for part in parts:
        key, _, value = part.partition("=")
        pairs.append((unquote(key), unquote(value)))
    return pairs


def _first(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def verify_authorization_header(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    body: bytes,
    store: CredentialStore,
    *,
    service: str,
    region: str | None = None,
    now: float | None = None,
    max_skew: int = 900,
) -> Credential:
    """Check a header-signed request and return the signing credential.

    ``raw_path`` and ``raw_query`` are exactly as received (still percent-encoded); ``headers``
    the received headers (a multidict keeps repeated ones). Raises :class:`SigV4Error`.
    """
    now = time.time() if now is None else now
    header = _first(headers, "authorization")
    if header is None:
        raise SigV4Error("MissingParameter", "Authorization")
    fields = _auth_fields(header)

    scope = fields["Credential"].split("/")
    if len(scope) != 5 or not scope[0] or scope[4] != "aws4_request":
        raise SigV4Error("InvalidCredentialScope", "expected <key>/<date>/<region>/<service>/...")
    access_key_id, scope_date, scope_region, scope_service, _ = scope
    if scope_service != service:
        raise SigV4Error("InvalidCredentialScope", f"service {scope_service!r} is not {service!r}")
    if region is not None and scope_region != region:
        raise SigV4Error("InvalidCredentialScope", f"region {scope_region!r} is not {region!r}")

    amz_date = _first(headers, "x-amz-date")
    if amz_date is None:
        raise SigV4Error("MissingParameter", "X-Amz-Date")
    signed_at = _parse_amz_date(amz_date.strip())
    if scope_date != amz_date.strip()[:8]:
        raise SigV4Error("InvalidCredentialScope", "scope date differs from X-Amz-Date")
    if signed_at - now > max_skew:
        raise SigV4Error("NotYetValid", "X-Amz-Date is too far in the future")
    if now - signed_at > max_skew:
        raise SigV4Error("Expired", "X-Amz-Date is too old")

    signed_headers = _parse_signed_headers(fields["SignedHeaders"])
    if "x-amz-date" not in signed_headers:
        raise SigV4Error("MissingSignedHeader", "x-amz-date must be signed")

    credential = store.lookup_access_key(access_key_id)
    if credential is None:
        raise SigV4Error("UnknownAccessKey", f"no credential for {access_key_id!r}")
    if credential.expired(now):
        raise SigV4Error("CredentialExpired", f"credential {access_key_id!r} has expired")
    token = _first(headers, "x-amz-security-token")
    if credential.session_token is not None:
        if token is None or not _token_matches(token, credential.session_token):
            raise SigV4Error("TokenMismatch", "session token missing or wrong")
    elif token is not None:
        raise SigV4Error("TokenMismatch", "a session token was sent for a long-term key")

    host = _first(headers, "host") or ""
    canonical_headers = _canonical_headers(signed_headers, host, headers)
    payload_hash = _first(headers, _CONTENT_SHA256)
    if payload_hash is None:
        payload_hash = hashlib.sha256(body).hexdigest()
    elif payload_hash != "UNSIGNED-PAYLOAD" and not hmac.compare_digest(
        payload_hash.encode(), hashlib.sha256(body).hexdigest().encode()
    ):
        raise SigV4Error("SignatureMismatch", "X-Amz-Content-SHA256 does not match the body")
    request = "\n".join(
        (
            method.upper(),
            canonical_path(raw_path),
            _canonical_query(_query_pairs(raw_query)),
            canonical_headers,
            ";".join(signed_headers),
            payload_hash,
        )
    )
    expected = _signature(
        credential.secret_access_key,
        amz_date.strip(),
        (scope_date, scope_region, scope_service),
        request,
    )
    if not hmac.compare_digest(expected.encode(), fields["Signature"].lower().encode()):
        raise SigV4Error("SignatureMismatch", "signature does not match")
    return credential
