"""SigV4 signatures, verified the way AWS does, in both of the forms the local stack receives.

* **Presigned query** (:func:`verify_presigned_request`, :func:`presign_url`): WebSocket
  handshakes to the gateway's ``wss://<endpoint>/mqtt`` carry the signature in the query
  string, not in an ``Authorization`` header (browsers cannot set headers on a WebSocket
  upgrade). Two IoT quirks shape this form:

  - ``X-Amz-Security-Token`` is appended *after* signing, so it is not part of the signed
    query. Some older clients signed it anyway; a signature computed either way is accepted.
  - The AWS IoT device SDK (awscrt) signs every handshake header it does not skip, which in
    practice is ``connection;host`` (not just ``host``), sends ``Host`` without the port and
    sends no ``X-Amz-Expires``. Pass the request's headers as ``headers=`` to verify those.

* **Authorization header** (:func:`verify_authorization_headers`, then
  :meth:`PendingSignature.check_body`; :func:`verify_authorization_header` does both): HTTP
  APIs on the edge API (iot-data publish, DynamoDB, Kinesis) carry the signature in a header::

      Authorization: AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/<service>/aws4_request,
                     SignedHeaders=host;x-amz-date, Signature=<hex>

  Its canonical request differs from the presigned one in three ways: the method is the
  request's own, the path is normalised and percent-encoded once more (non-S3 services), and
  the payload hash is the body's SHA-256, which ``X-Amz-Content-SHA256`` may declare (it
  must then match the body; ``UNSIGNED-PAYLOAD``, which only S3 accepts, is refused). The
  headers are checked before the body is read, so an unknown key, a temporary key without
  its session token or (with a declared hash) a bad signature costs no body read.

Both share the credential scope, the signing key, header canonicalisation, the credential and
session-token checks and the error codes. Everything here is pure computation (no I/O) and
cheap enough for hundreds of connects/s.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import time
from collections.abc import Callable, Container, Iterable, Mapping
from typing import NamedTuple
from urllib.parse import parse_qsl, quote, unquote

from infra.local.identity import Credential, CredentialStore

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICES = frozenset({"iotdevicegateway", "iotdata"})  # iotdata: legacy scope still accepted
MAX_EXPIRES = 604_800  # a week, as for every SigV4 presigned URL
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_QUERY_FIELDS = 100

_P_ALGORITHM = "X-Amz-Algorithm"
_P_CREDENTIAL = "X-Amz-Credential"
_P_DATE = "X-Amz-Date"
_P_EXPIRES = "X-Amz-Expires"
_P_SIGNED_HEADERS = "X-Amz-SignedHeaders"
_P_SIGNATURE = "X-Amz-Signature"
_P_TOKEN = "X-Amz-Security-Token"  # noqa: S105 - a parameter name, not a secret
_AUTH_PARAMS = frozenset(
    {_P_ALGORITHM, _P_CREDENTIAL, _P_DATE, _P_EXPIRES, _P_SIGNED_HEADERS, _P_SIGNATURE, _P_TOKEN}
)
_CONTENT_SHA256 = "x-amz-content-sha256"

HeaderSource = Mapping[str, str] | Iterable[tuple[str, str]]


class SigV4Error(Exception):
    """A request that must be refused; ``reason`` is a short machine-readable code.

    Codes: MissingParameter, InvalidParameter, InvalidDate, InvalidCredentialScope,
    Expired, NotYetValid, UnknownAccessKey, CredentialExpired, TokenMismatch,
    MissingSignedHeader, SignatureMismatch. Messages never contain secrets.
    """

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason


class _Scope(NamedTuple):
    """``<key>/<date>/<region>/<service>/aws4_request``, split."""

    access_key_id: str
    date: str
    region: str
    service: str

    @property
    def signing_parts(self) -> tuple[str, str, str]:
        return (self.date, self.region, self.service)


# ---------------------------------------------------------------------- shared pieces


def _uri_encode(value: str) -> str:
    """SigV4 encoding: RFC 3986 unreserved characters kept, everything else %XX (even '/')."""
    return quote(value, safe="")


def _canonical_query(params: Iterable[tuple[str, str]]) -> str:
    encoded = sorted((_uri_encode(key), _uri_encode(value)) for key, value in params)
    return "&".join(f"{key}={value}" for key, value in encoded)


def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _signature(
    secret: str,
    amz_date: str,
    scope_parts: tuple[str, str, str],
    canonical_request: str,
) -> str:
    date, region, service = scope_parts
    string_to_sign = "\n".join(
        (
            ALGORITHM,
            amz_date,
            f"{date}/{region}/{service}/aws4_request",
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        )
    )
    key = _signing_key(secret, date, region, service)
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def _parse_amz_date(value: str) -> float:
    """``yyyymmddTHHMMSSZ`` to epoch seconds; strict, since it is part of what is signed."""
    if len(value) != 16 or value[8] != "T" or value[15] != "Z":
        raise SigV4Error("InvalidDate", "X-Amz-Date must look like 20240101T000000Z")
    digits = value[:8] + value[9:15]
    if not digits.isascii() or not digits.isdigit():
        raise SigV4Error("InvalidDate", "X-Amz-Date must look like 20240101T000000Z")
    year, month, day = int(value[0:4]), int(value[4:6]), int(value[6:8])
    hour, minute, second = int(value[9:11]), int(value[11:13]), int(value[13:15])
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]):
        raise SigV4Error("InvalidDate", "X-Amz-Date is not a calendar date")
    if hour > 23 or minute > 59 or second > 59:
        raise SigV4Error("InvalidDate", "X-Amz-Date is not a time of day")
    return float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))


def _format_amz_date(epoch: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(epoch))


def _parse_scope(value: str, services: Container[str], expected: str, region: str | None) -> _Scope:
    """The credential scope, checked against the accepted ``services`` (named ``expected``
    in the error) and, when given, the stack's ``region``."""
    parts = value.split("/")
    if len(parts) != 5 or not parts[0] or parts[4] != "aws4_request":
        raise SigV4Error("InvalidCredentialScope", "expected <key>/<date>/<region>/<service>/...")
    scope = _Scope(parts[0], parts[1], parts[2], parts[3])
    if scope.service not in services:
        raise SigV4Error("InvalidCredentialScope", f"service {scope.service!r} is not {expected}")
    if region is not None and scope.region != region:
        raise SigV4Error("InvalidCredentialScope", f"region {scope.region!r} is not {region!r}")
    return scope


def _signed_at(amz_date: str, scope: _Scope, now: float, max_skew: int) -> float:
    """``X-Amz-Date`` as epoch seconds, once it matches the scope and is not in the future."""
    signed_at = _parse_amz_date(amz_date)
    if scope.date != amz_date[:8]:
        raise SigV4Error("InvalidCredentialScope", "scope date differs from X-Amz-Date")
    if signed_at - now > max_skew:
        raise SigV4Error("NotYetValid", "X-Amz-Date is too far in the future")
    return signed_at


def _header_values(headers: HeaderSource | None, name: str) -> list[str]:
    """All values of one header, case-insensitively, from a mapping or (name, value) pairs."""
    if headers is None:
        return []
    raw_items = getattr(headers, "raw_items", None)  # websockets' Headers keeps duplicates here
    if callable(raw_items):
        pairs: Iterable[tuple[str, str]] = raw_items()
    elif isinstance(headers, Mapping):
        pairs = headers.items()  # multidict (aiohttp) yields every duplicate from items()
    else:
        pairs = headers
    return [value for key, value in pairs if key.lower() == name]


def _first_header(headers: HeaderSource, name: str) -> str | None:
    values = _header_values(headers, name)
    return values[0] if values else None


def _canonical_header_value(value: str) -> str:
    return " ".join(value.split())


def _canonical_headers(signed: list[str], host: str, headers: HeaderSource | None) -> str:
    lines = []
    for name in signed:
        if name == "host":
            value = host.strip().lower()
        else:
            values = _header_values(headers, name)
            if not values:
                raise SigV4Error(
                    "MissingSignedHeader",
                    f"header {name!r} is signed but was not provided to the verifier",
                )
            value = ",".join(_canonical_header_value(v) for v in values)
        lines.append(f"{name}:{value}\n")
    return "".join(lines)


def _parse_signed_headers(value: str) -> list[str]:
    names = value.split(";")
    if (
        "host" not in names
        or any(not name or name != name.lower() for name in names)
        or names != sorted(set(names))
    ):
        raise SigV4Error("InvalidParameter", "X-Amz-SignedHeaders must be sorted, include host")
    return names


def _token_matches(presented: str, expected: str) -> bool:
    if hmac.compare_digest(presented.encode(), expected.encode()):
        return True
    # A client that forgot to percent-encode '+' in a base64 token had it decoded to ' '.
    return " " in presented and hmac.compare_digest(
        presented.replace(" ", "+").encode(), expected.encode()
    )


def _signing_credential(
    store: CredentialStore, access_key_id: str, token: str | None, now: float
) -> Credential:
    """The live credential behind ``access_key_id``, with the session token it must carry."""
    credential = store.lookup_access_key(access_key_id)
    if credential is None:
        raise SigV4Error("UnknownAccessKey", f"no credential for {access_key_id!r}")
    if credential.expired(now):
        raise SigV4Error("CredentialExpired", f"credential {access_key_id!r} has expired")
    if credential.session_token is not None:
        if token is None or not _token_matches(token, credential.session_token):
            raise SigV4Error("TokenMismatch", "session token missing or wrong")
    elif token is not None:
        raise SigV4Error("TokenMismatch", "a session token was sent for a long-term key")
    return credential


# ---------------------------------------------------------------------- presigned query


def _presigned_request(path: str, query: str, canonical_headers: str, signed: str) -> str:
    return f"GET\n{path}\n{query}\n{canonical_headers}\n{signed}\n{EMPTY_SHA256}"


def verify_presigned_request(
    path: str,
    query: str,
    host: str,
    store: CredentialStore,
    *,
    headers: HeaderSource | None = None,
    region: str | None = None,
    now: float | None = None,
    max_skew: int = 900,
) -> Credential:
    """Check a presigned ``GET <path>?<query>`` handshake and return the signing credential.

    ``query`` is the raw query string as received; ``host`` the ``Host`` header as received
    (awscrt omits the port, browsers include it: never reconstruct it). ``headers`` is only
    needed when the client signed more than ``host`` (awscrt signs ``connection`` too).
    Raises :class:`SigV4Error` with a ``reason`` code on any failure.
    """
    now = time.time() if now is None else now
    try:
        pairs = parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS)
    except ValueError as exc:
        raise SigV4Error("InvalidParameter", "malformed query string") from exc
    auth: dict[str, str] = {}
    for key, value in pairs:
        if key in _AUTH_PARAMS:
            if key in auth:
                raise SigV4Error("InvalidParameter", f"{key} given more than once")
            auth[key] = value
    for required in (_P_ALGORITHM, _P_CREDENTIAL, _P_DATE, _P_SIGNED_HEADERS, _P_SIGNATURE):
        if required not in auth:
            raise SigV4Error("MissingParameter", required)
    if auth[_P_ALGORITHM] != ALGORITHM:
        raise SigV4Error("InvalidParameter", f"X-Amz-Algorithm must be {ALGORITHM}")

    scope = _parse_scope(auth[_P_CREDENTIAL], SERVICES, "IoT's", region)
    amz_date = auth[_P_DATE]
    signed_at = _signed_at(amz_date, scope, now, max_skew)
    expires = auth.get(_P_EXPIRES)
    if expires is not None:
        if not expires.isascii() or not expires.isdigit() or int(expires) > MAX_EXPIRES:
            raise SigV4Error("InvalidParameter", f"X-Amz-Expires must be 0..{MAX_EXPIRES}")
        if now > signed_at + int(expires):
            raise SigV4Error("Expired", "presigned URL has expired")
    elif now - signed_at > max_skew:
        raise SigV4Error("Expired", "X-Amz-Date is too old")

    signed_headers = _parse_signed_headers(auth[_P_SIGNED_HEADERS])
    token = auth.get(_P_TOKEN)
    credential = _signing_credential(store, scope.access_key_id, token, now)

    canonical_headers = _canonical_headers(signed_headers, host, headers)
    canonical_path = path.split("?", 1)[0] or "/"
    signed = ";".join(signed_headers)
    presented = auth[_P_SIGNATURE].lower().encode()

    # Primary: the token was appended after signing. Legacy: it was signed with the rest.
    variants: list[tuple[str, ...]] = [(_P_SIGNATURE, _P_TOKEN)]
    if token is not None:
        variants.append((_P_SIGNATURE,))
    for unsigned in variants:
        query_string = _canonical_query(kv for kv in pairs if kv[0] not in unsigned)
        request = _presigned_request(canonical_path, query_string, canonical_headers, signed)
        expected = _signature(credential.secret_access_key, amz_date, scope.signing_parts, request)
        if hmac.compare_digest(expected.encode(), presented):
            return credential
    raise SigV4Error("SignatureMismatch", "signature does not match")


def presign_url(
    host: str,
    credential_access_key: str,
    secret: str,
    *,
    region: str,
    session_token: str | None = None,
    service: str = "iotdevicegateway",
    path: str = "/mqtt",
    now: float | None = None,
    expires: int | None = None,
    scheme: str = "wss",
) -> str:
    """Build a presigned ``<scheme>://<host><path>?...`` URL the way IoT clients do.

    ``host`` is signed exactly as given, so include ``:port`` only if the client will send
    it in its ``Host`` header. The session token is appended after signing, like awscrt.
    """
    now = time.time() if now is None else now
    amz_date = _format_amz_date(now)
    date = amz_date[:8]
    params = [
        (_P_ALGORITHM, ALGORITHM),
        (_P_CREDENTIAL, f"{credential_access_key}/{date}/{region}/{service}/aws4_request"),
        (_P_DATE, amz_date),
        (_P_SIGNED_HEADERS, "host"),
    ]
    if expires is not None:
        if not 0 <= expires <= MAX_EXPIRES:
            raise ValueError(f"expires must be between 0 and {MAX_EXPIRES}")
        params.append((_P_EXPIRES, str(expires)))
    query = _canonical_query(params)
    canonical_headers = f"host:{host.strip().lower()}\n"
    request = _presigned_request(path, query, canonical_headers, "host")
    signature = _signature(secret, amz_date, (date, region, service), request)
    url = f"{scheme}://{host}{path}?{query}&{_P_SIGNATURE}={signature}"
    if session_token is not None:
        url += f"&{_P_TOKEN}={_uri_encode(session_token)}"
    return url


# ---------------------------------------------------------------------- Authorization header


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


UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


def _declared_payload_hash(headers: Mapping[str, str]) -> str | None:
    """What ``X-Amz-Content-SHA256`` declares (lower-case hex), or None when it is absent.

    ``UNSIGNED-PAYLOAD`` is refused: only S3-style APIs accept it
    (https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html), and every
    API this stack serves signs the payload
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html),
    so one signature never covers any body. Anything but 64 hex digits cannot be a SHA-256.
    """
    declared = _first_header(headers, _CONTENT_SHA256)
    if declared is None:
        return None
    if declared == UNSIGNED_PAYLOAD:
        raise SigV4Error("SignatureMismatch", "the payload must be signed (UNSIGNED-PAYLOAD)")
    value = declared.strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise SigV4Error("SignatureMismatch", "X-Amz-Content-SHA256 is not a SHA-256")
    return value


class PendingSignature:
    """A header-signed request whose headers checked out, waiting for its body.

    :func:`verify_authorization_headers` does every check the headers allow before a byte of
    the body is read: the key is known and live, its session token is there, the date is
    current, the scope is this service's. When the client declared the payload's hash in
    ``X-Amz-Content-SHA256`` the signature itself is verified then too, and :meth:`check_body`
    only compares the body's hash with the declared one; otherwise (boto3 sends no such header
    for non-S3 services) the signature covers the body's hash and is verified in
    :meth:`check_body`.
    """

    def __init__(
        self,
        credential: Credential,
        signature: str,
        compute: Callable[[str], str],
        declared: str | None,
    ) -> None:
        self.credential = credential
        self._signature = signature
        self._compute = compute
        self.declared = declared
        if declared is not None:
            self._check(declared)

    @property
    def signature_verified(self) -> bool:
        """True when the signature was verified from the headers alone."""
        return self.declared is not None

    def _check(self, payload_hash: str) -> None:
        expected = self._compute(payload_hash)
        if not hmac.compare_digest(expected.encode(), self._signature.encode()):
            raise SigV4Error("SignatureMismatch", "signature does not match")

    def check_body(self, body: bytes) -> Credential:
        """The signing credential once ``body`` is the one signed; raises SigV4Error."""
        digest = hashlib.sha256(body).hexdigest()
        if self.declared is None:
            self._check(digest)
        elif not hmac.compare_digest(self.declared.encode(), digest.encode()):
            raise SigV4Error("SignatureMismatch", "X-Amz-Content-SHA256 does not match the body")
        return self.credential


def verify_authorization_headers(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    store: CredentialStore,
    *,
    service: str,
    region: str | None = None,
    now: float | None = None,
    max_skew: int = 900,
) -> PendingSignature:
    """Check everything a header-signed request's headers allow, before its body is read.

    ``raw_path`` and ``raw_query`` are exactly as received (still percent-encoded); ``headers``
    the received headers (a multidict keeps repeated ones). Raises :class:`SigV4Error` for an
    unknown or expired key, a temporary key without its session token, a stale date, another
    service's scope, ``UNSIGNED-PAYLOAD``, and (when the payload hash is declared) a signature
    that does not match; the returned :class:`PendingSignature` checks the body.
    """
    now = time.time() if now is None else now
    header = _first_header(headers, "authorization")
    if header is None:
        raise SigV4Error("MissingParameter", "Authorization")
    fields = _auth_fields(header)
    scope = _parse_scope(fields["Credential"], (service,), repr(service), region)

    raw_date = _first_header(headers, "x-amz-date")
    if raw_date is None:
        raise SigV4Error("MissingParameter", "X-Amz-Date")
    amz_date = raw_date.strip()
    signed_at = _signed_at(amz_date, scope, now, max_skew)
    if now - signed_at > max_skew:
        raise SigV4Error("Expired", "X-Amz-Date is too old")

    signed_headers = _parse_signed_headers(fields["SignedHeaders"])
    if "x-amz-date" not in signed_headers:
        raise SigV4Error("MissingSignedHeader", "x-amz-date must be signed")
    token = _first_header(headers, "x-amz-security-token")
    credential = _signing_credential(store, scope.access_key_id, token, now)

    host = _first_header(headers, "host") or ""
    canonical_headers = _canonical_headers(signed_headers, host, headers)
    declared = _declared_payload_hash(headers)
    head = "\n".join(
        (
            method.upper(),
            canonical_path(raw_path),
            _canonical_query(_query_pairs(raw_query)),
            canonical_headers,
            ";".join(signed_headers),
        )
    )

    def compute(payload_hash: str) -> str:
        request = f"{head}\n{payload_hash}"
        return _signature(credential.secret_access_key, amz_date, scope.signing_parts, request)

    return PendingSignature(credential, fields["Signature"].lower(), compute, declared)


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
    """Check a header-signed request and its body; return the signing credential.

    The one-step form of :func:`verify_authorization_headers` followed by
    :meth:`PendingSignature.check_body`. Raises :class:`SigV4Error`.
    """
    pending = verify_authorization_headers(
        method,
        raw_path,
        raw_query,
        headers,
        store,
        service=service,
        region=region,
        now=now,
        max_skew=max_skew,
    )
    return pending.check_body(body)
