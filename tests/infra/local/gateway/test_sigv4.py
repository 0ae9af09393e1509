"""The gateway's SigV4 handshake check, against our signer and independent ones.

botocore and awscrt are the signers real clients use, so agreeing with them (not just with
our own ``presign_url``) is what makes the check trustworthy.
"""

from __future__ import annotations

import calendar
import datetime
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import pytest

from infra.local.identity import Credential, Principal, StaticCredentialStore
from infra.local.sigv4 import SigV4Error, presign_url, verify_presigned_request

HOST = "abc123-ats.iot.us-east-1.amazonaws.com"
REGION = "us-east-1"
NOW = float(calendar.timegm((2024, 5, 6, 7, 8, 9, 0, 0, 0)))
KEY = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TEMP_KEY = "ASIATEMPORARY"
TEMP_SECRET = "temporary/secret+value"
TOKEN = "IQoJb3JpZ2luX2VjEPz//////////wEaCXVzLWVhc3QtMSJH+token/with=chars"


@pytest.fixture
def store() -> StaticCredentialStore:
    store = StaticCredentialStore()
    store.add(Credential(KEY, SECRET, Principal("iam", KEY)))
    store.add(Credential(TEMP_KEY, TEMP_SECRET, Principal("cognito", "us-east-1:abc"), TOKEN))
    return store


def split(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    return parts.path, parts.query, parts.netloc


def verify(url: str, store: StaticCredentialStore, **kwargs: object) -> Credential:
    path, query, host = split(url)
    kwargs.setdefault("now", NOW)
    return verify_presigned_request(path, query, host, store, **kwargs)  # type: ignore[arg-type]


def reason(url: str, store: StaticCredentialStore, **kwargs: object) -> str:
    with pytest.raises(SigV4Error) as info:
        verify(url, store, **kwargs)
    return info.value.reason


def botocore_url(
    monkeypatch: pytest.MonkeyPatch,
    host: str,
    key: str,
    secret: str,
    *,
    token: str | None = None,
    sign_token: bool = False,
    service: str = "iotdevicegateway",
    expires: int = 300,
) -> str:
    """Presign with botocore, then append the token unsigned the way IoT expects."""
    from botocore.auth import SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    fixed = datetime.datetime.fromtimestamp(NOW, datetime.UTC).replace(tzinfo=None)
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: fixed)
    request = AWSRequest(method="GET", url=f"https://{host}/mqtt")
    credentials = Credentials(key, secret, token if sign_token else None)
    SigV4QueryAuth(credentials, service, REGION, expires=expires).add_auth(request)
    url = request.prepare().url
    if token is not None and not sign_token:
        url += "&" + urlencode({"X-Amz-Security-Token": token})
    return url.replace("https://", "wss://", 1)


def with_param(url: str, name: str, value: str) -> str:
    """Replace one query parameter, keeping the rest byte for byte."""
    path, query, host = split(url)
    pairs = [(k, value if k == name else v) for k, v in parse_qsl(query, keep_blank_values=True)]
    return f"wss://{host}{path}?{urlencode(pairs)}"


def test_own_signer_round_trip(store: StaticCredentialStore) -> None:
    url = presign_url(HOST, KEY, SECRET, region=REGION, now=NOW)
    assert verify(url, store).access_key_id == KEY
    assert verify(url, store, region=REGION).principal == Principal("iam", KEY)


def test_own_signer_with_token_and_expires(store: StaticCredentialStore) -> None:
    url = presign_url(
        HOST, TEMP_KEY, TEMP_SECRET, region=REGION, session_token=TOKEN, now=NOW, expires=60
    )
    assert "X-Amz-Expires=60" in url
    assert url.endswith("&X-Amz-Security-Token=" + quote(TOKEN, safe=""))
    assert verify(url, store).access_key_id == TEMP_KEY


def test_botocore_signed_url_is_accepted(
    store: StaticCredentialStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = botocore_url(monkeypatch, HOST, KEY, SECRET)
    assert verify(url, store, region=REGION).access_key_id == KEY


def test_botocore_token_appended_after_signing(
    store: StaticCredentialStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = botocore_url(monkeypatch, HOST, TEMP_KEY, TEMP_SECRET, token=TOKEN)
    assert verify(url, store).access_key_id == TEMP_KEY


def test_legacy_token_inside_signed_query(
    store: StaticCredentialStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = botocore_url(monkeypatch, HOST, TEMP_KEY, TEMP_SECRET, token=TOKEN, sign_token=True)
    assert verify(url, store).access_key_id == TEMP_KEY


def test_legacy_iotdata_service_is_accepted(
    store: StaticCredentialStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = botocore_url(monkeypatch, HOST, KEY, SECRET, service="iotdata")
    assert verify(url, store).access_key_id == KEY


def test_awscrt_handshake_as_signed_by_the_device_sdk(store: StaticCredentialStore) -> None:
    """awscrt signs ``connection;host`` and sends no port and no X-Amz-Expires."""
    auth = pytest.importorskip("awscrt.auth")
    websocket = pytest.importorskip("awscrt.websocket")
    request = websocket.create_handshake_request(host=HOST, path="/mqtt")
    request.headers.add("Sec-WebSocket-Protocol", "mqtt")
    config = auth.AwsSigningConfig(
        algorithm=auth.AwsSigningAlgorithm.V4,
        signature_type=auth.AwsSignatureType.HTTP_REQUEST_QUERY_PARAMS,
        credentials_provider=auth.AwsCredentialsProvider.new_static(TEMP_KEY, TEMP_SECRET, TOKEN),
        region=REGION,
        service="iotdevicegateway",
        omit_session_token=True,  # exactly what awsiot's websocket builders pass
        date=datetime.datetime.fromtimestamp(NOW, datetime.UTC),
    )
    auth.aws_sign_request(request, config).result(10)
    path, _, query = request.path.partition("?")
    headers = list(request.headers)
    host = request.headers.get("Host")

    credential = verify_presigned_request(path, query, host, store, headers=headers, now=NOW)
    assert credential.access_key_id == TEMP_KEY
    # Whatever it signs besides host must be handed to the verifier.
    if "connection" in dict(parse_qsl(query))["X-Amz-SignedHeaders"].split(";"):
        with pytest.raises(SigV4Error) as info:
            verify_presigned_request(path, query, host, store, now=NOW)
        assert info.value.reason == "MissingSignedHeader"
        tampered = [(k, "keep-alive, Upgrade" if k == "Connection" else v) for k, v in headers]
        with pytest.raises(SigV4Error) as info:
            verify_presigned_request(path, query, host, store, headers=tampered, now=NOW)
        assert info.value.reason == "SignatureMismatch"


def test_host_with_port(store: StaticCredentialStore, monkeypatch: pytest.MonkeyPatch) -> None:
    url = presign_url("127.0.0.1:8443", KEY, SECRET, region=REGION, now=NOW)
    assert verify(url, store).access_key_id == KEY
    path, query, _ = split(url)
    with pytest.raises(SigV4Error) as info:
        verify_presigned_request(path, query, "127.0.0.1", store, now=NOW)
    assert info.value.reason == "SignatureMismatch"
    boto = botocore_url(monkeypatch, "127.0.0.1:8443", KEY, SECRET)
    assert verify(boto, store).access_key_id == KEY


def test_host_header_is_case_and_space_insensitive(store: StaticCredentialStore) -> None:
    url = presign_url("localhost:8443", KEY, SECRET, region=REGION, now=NOW)
    path, query, _ = split(url)
    assert verify_presigned_request(path, query, " LocalHost:8443 ", store, now=NOW)


def test_wrong_secret(store: StaticCredentialStore) -> None:
    url = presign_url(HOST, KEY, "not-the-secret", region=REGION, now=NOW)
    with pytest.raises(SigV4Error) as info:
        verify(url, store)
    assert info.value.reason == "SignatureMismatch"
    assert SECRET not in str(info.value)


def test_altered_query_parameter(store: StaticCredentialStore) -> None:
    url = presign_url(HOST, KEY, SECRET, region=REGION, now=NOW, expires=60)
    assert reason(with_param(url, "X-Amz-Expires", "600"), store) == "SignatureMismatch"
    assert reason(url + "&extra=1", store) == "SignatureMismatch"
    signature = dict(parse_qsl(split(url)[1]))["X-Amz-Signature"]
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    assert reason(with_param(url, "X-Amz-Signature", flipped), store) == "SignatureMismatch"


def test_wrong_host_and_path(store: StaticCredentialStore) -> None:
    url = presign_url(HOST, KEY, SECRET, region=REGION, now=NOW)
    path, query, _ = split(url)
    with pytest.raises(SigV4Error) as info:
        verify_presigned_request(path, query, "evil.example.com", store, now=NOW)
    assert info.value.reason == "SignatureMismatch"
    with pytest.raises(SigV4Error) as info:
        verify_presigned_request("/other", query, HOST, store, now=NOW)
    assert info.value.reason == "SignatureMismatch"


def test_wrong_service_and_region(store: StaticCredentialStore) -> None:
    url = presign_url(HOST, KEY, SECRET, region=REGION, now=NOW, service="execute-api")
    assert reason(url, store) == "InvalidCredentialScope"
    url = presign_url(HOST, KEY, SECRET, region="eu-west-1", now=NOW)
    assert reason(url, store, region=REGION) == "InvalidCredentialScope"
    assert verify(url, store).access_key_id == KEY  # any region when none is enforced


def test_expired_presigned_url(store: StaticCredentialStore) -> None:
    url = presign_url(HOST, KEY, SECRET, region=REGION, now=NOW, expires=60)
    assert verify(url, store, now=NOW + 60).access_key_id == KEY
    assert reason(url, store, now=NOW + 61) == "Expired"
    # A long X-Amz-Expires outlives the skew window.
    url = presign_url(HOST, KEY, SECRET, region=REGION, now=NOW, expires=3600)
    assert verify(url, store, now=NOW + 3000).access_key_id == KEY


def test_expires_limits(store: StaticCredentialStore) -> None:
    url = presign_url(HOST, KEY, SECRET, region=REGION, now=NOW, expires=60)
    assert reason(with_param(url, "X-Amz-Expires", "604801"), store) == "InvalidParameter"
    assert reason(with_param(url, "X-Amz-Expires", "-5"), store) == "InvalidParameter"
    with pytest.raises(ValueError):
        presign_url(HOST, KEY, SECRET, region=REGION, now=NOW, expires=604_801)


def test_date_skew_without_expires(store: StaticCredentialStore) -> None:
    url = presign_url(HOST, KEY, SECRET, region=REGION, now=NOW)
    assert verify(url, store, now=NOW + 900).access_key_id == KEY
    assert verify(url, store, now=NOW - 900).access_key_id == KEY
    assert reason(url, store, now=NOW + 901) == "Expired"
    assert reason(url, store, now=NOW - 901) == "NotYetValid"
    assert reason(url, store, now=NOW + 100, max_skew=60) == "Expired"


def test_future_date_with_expires(store: StaticCredentialStore) -> None:
    url = presign_url(HOST, KEY, SECRET, region=REGION, now=NOW + 3600, expires=60)
    assert reason(url, store) == "NotYetValid"


def test_bad_dates(store: StaticCredentialStore) -> None:
    url = presign_url(HOST, KEY, SECRET, region=REGION, now=NOW)
    assert reason(with_param(url, "X-Amz-Date", "2024-05-06T07:08:09Z"), store) == "InvalidDate"
    assert reason(with_param(url, "X-Amz-Date", "20240230T070809Z"), store) == "InvalidDate"
    assert reason(with_param(url, "X-Amz-Date", "20240506T250809Z"), store) == "InvalidDate"
    # The scope's date must be the date of X-Amz-Date.
    assert reason(with_param(url, "X-Amz-Date", "20240507T000000Z"), store) == (
        "InvalidCredentialScope"
    )


def test_unknown_access_key(store: StaticCredentialStore) -> None:
    url = presign_url(HOST, "AKIDUNKNOWN", SECRET, region=REGION, now=NOW)
    assert reason(url, store) == "UnknownAccessKey"


def test_token_mismatch_and_missing(store: StaticCredentialStore) -> None:
    wrong = presign_url(
        HOST, TEMP_KEY, TEMP_SECRET, region=REGION, session_token=TOKEN + "x", now=NOW
    )
    assert reason(wrong, store) == "TokenMismatch"
    missing = presign_url(HOST, TEMP_KEY, TEMP_SECRET, region=REGION, now=NOW)
    assert reason(missing, store) == "TokenMismatch"
    unexpected = presign_url(HOST, KEY, SECRET, region=REGION, session_token="tok", now=NOW)
    assert reason(unexpected, store) == "TokenMismatch"


def test_unencoded_plus_in_token_is_tolerated(store: StaticCredentialStore) -> None:
    url = presign_url(HOST, TEMP_KEY, TEMP_SECRET, region=REGION, session_token=TOKEN, now=NOW)
    sloppy = url.replace("%2B", "+")  # '+' only occurs inside the token here
    assert "+" in sloppy
    assert verify(sloppy, store).access_key_id == TEMP_KEY


def test_expired_credential(store: StaticCredentialStore) -> None:
    store.add(
        Credential("ASIAOLD", "old", Principal("cognito", "x"), session_token="t", expires_at=NOW)
    )
    url = presign_url(HOST, "ASIAOLD", "old", region=REGION, session_token="t", now=NOW - 10)
    assert verify(url, store, now=NOW - 1).access_key_id == "ASIAOLD"
    assert reason(url, store, now=NOW) == "CredentialExpired"


def test_missing_and_malformed_parameters(store: StaticCredentialStore) -> None:
    url = presign_url(HOST, KEY, SECRET, region=REGION, now=NOW)
    path, query, host = split(url)
    for name in (
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
    ):
        stripped = urlencode([(k, v) for k, v in parse_qsl(query) if k != name])
        with pytest.raises(SigV4Error) as info:
            verify_presigned_request(path, stripped, host, store, now=NOW)
        assert info.value.reason == "MissingParameter", name
    assert reason(with_param(url, "X-Amz-Algorithm", "AWS4-HMAC-SHA1"), store) == (
        "InvalidParameter"
    )
    assert reason(with_param(url, "X-Amz-SignedHeaders", "connection"), store) == (
        "InvalidParameter"
    )
    assert reason(url + "&X-Amz-Signature=00", store) == "InvalidParameter"
    assert reason(with_param(url, "X-Amz-Credential", "AKIDEXAMPLE/20240506"), store) == (
        "InvalidCredentialScope"
    )
    with pytest.raises(SigV4Error) as info:
        verify_presigned_request(path, "", host, store, now=NOW)
    assert info.value.reason == "MissingParameter"
