"""Attempts to get past the local stack's access control, each refused the way AWS refuses it.

Every test runs the legitimate action next to the refused one, with the same client, so that a
refusal cannot pass just because nothing works. Clients are real: raw MQTT 3.1.1/5 packets over
a SigV4-presigned WebSocket (``websockets``), awsiotsdk, and mutual-TLS sockets.

| #  | attempt (param id)                        | refusal                                  |
|----|-------------------------------------------|------------------------------------------|
| 1  | connect-v5[other-identity-id]             | CONNACK 0x87, then closed                |
| 2  | connect-v5[client-id-plus] (`+`)          | CONNACK 0x87                             |
| 3  | connect-v5[client-id-hash] (`#`)          | CONNACK 0x87                             |
| 4  | connect-v5[arbitrary-client-id]           | CONNACK 0x87                             |
| 5  | connect-v5[own-id-with-suffix]            | CONNACK 0x87                             |
| 6  | connect-v5[own-id-truncated]              | CONNACK 0x87                             |
| 7  | connect-v311[other-identity-id]           | closed without CONNACK                   |
| 8  | connect-v311[client-id-plus]              | closed without CONNACK                   |
| 9  | connect-v311[client-id-hash]              | closed without CONNACK                   |
| 10 | awsiotsdk MQTT 3 with another identity id | connect fails                            |
| 11 | subscribe-v5[inbox-plus] `chat/in/+`      | SUBACK 0x87                              |
| 12 | subscribe-v5[inbox-hash] `chat/in/#`      | SUBACK 0x87                              |
| 13 | subscribe-v5[other-inbox]                 | SUBACK 0x87                              |
| 14 | subscribe-v5[everything] `#`              | SUBACK 0x87                              |
| 15 | subscribe-v5[chat-hash] `chat/#`          | SUBACK 0x87                              |
| 16 | subscribe-v5[rooms-plus] `chat/pub/+`     | SUBACK 0x87                              |
| 17 | subscribe-v5[rooms-hash] `chat/pub/#`     | SUBACK 0x87                              |
| 18 | subscribe-v5[lifecycle] `$aws/events/#`   | SUBACK 0x87                              |
| 19 | subscribe-v5[rule-input] `chat/out`       | SUBACK 0x87                              |
| 20 | subscribe-v311[inbox-plus]                | SUBACK 0x80                              |
| 21 | subscribe-v311[inbox-hash]                | SUBACK 0x80                              |
| 22 | subscribe-v311[other-inbox]               | SUBACK 0x80                              |
| 23 | publish-v5[room] `chat/pub/x`             | PUBACK 0x87                              |
| 24 | publish-v5[inbox] `chat/in/x`             | PUBACK 0x87                              |
| 25 | publish-v5[own-inbox]                     | PUBACK 0x87                              |
| 26 | publish-v5[shadow] `$aws/things/.../shadow/update` | PUBACK 0x87                     |
| 27 | publish-v5[lifecycle] `$aws/events/presence/connected/...` | PUBACK 0x87            |
| 28 | publish-v5[other-topic]                   | PUBACK 0x87                              |
| 29 | publish-v5[retained-rule-input]           | PUBACK 0x87 (no iot:RetainPublish)       |
| 30 | publish-v311[room] `chat/pub/x`           | connection closed                        |
| 31 | publish-v311[inbox] `chat/in/x`           | connection closed                        |
| 32 | publish-v311[aws] `$aws/things/.../shadow/update` | connection closed                |
| 33 | signed-in identity, no IoT policy, MQTT 5 | CONNACK 0x87                             |
| 34 | signed-in identity, no IoT policy, 3.1.1  | closed without CONNACK                   |
| 35 | signed-in identity, another client id     | CONNACK 0x87                             |
| 36 | handshake[forged-signature]               | HTTP 403                                 |
| 37 | handshake[wrong-secret]                   | HTTP 403                                 |
| 38 | handshake[other-host]                     | HTTP 403                                 |
| 39 | handshake[other-region]                   | HTTP 403                                 |
| 40 | handshake[other-service]                  | HTTP 403                                 |
| 41 | handshake[replayed-after-expiry]          | HTTP 403                                 |
| 42 | handshake[signed-an-hour-ago]             | HTTP 403                                 |
| 43 | handshake[signed-an-hour-ahead]           | HTTP 403                                 |
| 44 | handshake[unknown-access-key]             | HTTP 403                                 |
| 45 | handshake[another-identitys-token]        | HTTP 403                                 |
| 46 | handshake[no-session-token]               | HTTP 403                                 |
| 47 | handshake[unsigned]                       | HTTP 403                                 |
| 48 | guest credentials after expiry            | HTTP 403 CredentialExpired               |
| 49 | certificate[unregistered]                 | closed after TLS, no CONNACK             |
| 50 | certificate[revoked]                      | closed after TLS, no CONNACK             |
| 51 | certificate[inactive]                     | closed after TLS, no CONNACK             |
| 52 | foreign-CA certificate                    | TLS failure or closed, no CONNACK        |
| 53 | no client certificate                     | TLS failure or closed, no CONNACK        |
| 54 | device-v5[other-things-client-id]         | CONNACK 0x87                             |
| 55 | device-v5[client-id-plus]                 | CONNACK 0x87                             |
| 56 | device-v311[other-things-client-id]       | closed without CONNACK                   |
| 57 | device-beyond-policy[other-device-inbox]  | SUBACK 0x87                              |
| 58 | device-beyond-policy[inbox-plus]          | SUBACK 0x87                              |
| 59 | device-beyond-policy[publish-room]        | PUBACK 0x87                              |
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from infra.local.ca import LocalCA
from infra.local.registry import INACTIVE, DeviceFiles, create_device, revoke_device
from tests.e2e.security.helpers import (
    TIMEOUT,
    Session,
    open_ws,
    refused_before_connack,
    signed_url,
    tls_session,
    wss_host,
    wss_session,
)
from tests.support.cognito import guest_credentials, signed_in_credentials, wss_connection
from tests.support.raw_mqtt import V5, V311
from tests.support.stack import InProcessStack, fresh_stack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(30)

ACCEPTED = 0x00
GRANTED_QOS1 = 0x01
NOT_AUTHORIZED = 0x87  # MQTT 5 CONNACK / SUBACK / PUBACK
SUBACK_FAILURE = 0x80  # MQTT 3.1.1
SHORT_LIFETIME = 2.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessStack]:
    with fresh_stack(tmp_path_factory, "security") as s:
        yield s


Sessions = Callable[[Session], Session]


@pytest.fixture
def sessions() -> Iterator[Sessions]:
    made: list[Session] = []

    def keep(session: Session) -> Session:
        made.append(session)
        return session

    yield keep
    for session in made:
        session.close()


def guest(stack: InProcessStack) -> tuple[str, dict[str, Any]]:
    return guest_credentials(stack)


def connected_guest(stack: InProcessStack, sessions: Sessions, version: int) -> tuple[str, Session]:
    """A new guest's raw MQTT session over SigV4 WebSocket, its CONNECT accepted."""
    me, creds = guest(stack)
    client = sessions(wss_session(stack, creds, version))
    assert client.connect(me) == ACCEPTED
    return me, client


# ---------------------------------------------------------------------- connect


CLIENT_IDS: dict[str, Callable[[str, str], str]] = {
    "other-identity-id": lambda me, other: other,
    "client-id-plus": lambda me, other: "+",
    "client-id-hash": lambda me, other: "#",
    "arbitrary-client-id": lambda me, other: "someone-else",
    "own-id-with-suffix": lambda me, other: me + "x",
    "own-id-truncated": lambda me, other: me[:-1],
}


# MQTT 5 refuses with a CONNACK's reason code; MQTT 3.1.1 has none for it: closed, no CONNACK.
CONNECT_REFUSAL = {V5: NOT_AUTHORIZED, V311: None}
CLIENT_ID_ATTEMPTS = [
    *(pytest.param(V5, attempt, id=f"v5-{attempt}") for attempt in CLIENT_IDS),
    *(
        pytest.param(V311, attempt, id=f"v311-{attempt}")
        for attempt in ("other-identity-id", "client-id-plus", "client-id-hash")
    ),
]


@pytest.mark.parametrize(("version", "attempt"), CLIENT_ID_ATTEMPTS)
def test_connect_with_a_client_id_other_than_ones_identity_id(
    stack: InProcessStack, sessions: Sessions, version: int, attempt: str
) -> None:
    me, creds = guest(stack)
    other, _ = guest(stack)
    refused = sessions(wss_session(stack, creds, version))
    assert refused.connect(CLIENT_IDS[attempt](me, other)) == CONNECT_REFUSAL[version]
    assert refused.read() is None  # AWS closes (after MQTT 5's refusing CONNACK)
    assert sessions(wss_session(stack, creds, version)).connect(me) == ACCEPTED


def _sdk_connection(stack: InProcessStack, creds: dict[str, Any], client_id: str) -> Any:
    return wss_connection(stack, client_id, creds, endpoint="localhost")


def test_awsiotsdk_connect_with_another_identity_id(stack: InProcessStack) -> None:
    me, creds = guest(stack)
    other, _ = guest(stack)
    with pytest.raises(Exception):  # noqa: B017 - awscrt raises its own error types
        _sdk_connection(stack, creds, other).connect().result(TIMEOUT)
    legit = _sdk_connection(stack, creds, me)
    legit.connect().result(TIMEOUT)
    legit.disconnect().result(TIMEOUT)


# ---------------------------------------------------------------------- subscribe


FILTERS: dict[str, Callable[[str, str], str]] = {
    "inbox-plus": lambda me, other: "chat/in/+",
    "inbox-hash": lambda me, other: "chat/in/#",
    "other-inbox": lambda me, other: f"chat/in/{other}",
    "everything": lambda me, other: "#",
    "chat-hash": lambda me, other: "chat/#",
    "rooms-plus": lambda me, other: "chat/pub/+",
    "rooms-hash": lambda me, other: "chat/pub/#",
    "lifecycle": lambda me, other: "$aws/events/#",
    "rule-input": lambda me, other: "chat/out",
}
SUBSCRIBE_ATTEMPTS = [(V5, name) for name in FILTERS] + [
    (V311, name) for name in ("inbox-plus", "inbox-hash", "other-inbox")
]


@pytest.mark.parametrize(
    ("version", "attempt"),
    SUBSCRIBE_ATTEMPTS,
    ids=[f"{'v5' if v == V5 else 'v311'}-{name}" for v, name in SUBSCRIBE_ATTEMPTS],
)
def test_subscribe_beyond_ones_inbox_and_named_rooms(
    stack: InProcessStack, sessions: Sessions, version: int, attempt: str
) -> None:
    me, client = connected_guest(stack, sessions, version)
    other, _ = guest(stack)
    assert client.subscribe(f"chat/in/{me}") == GRANTED_QOS1
    assert client.subscribe("chat/pub/lobby") == GRANTED_QOS1
    refusal = NOT_AUTHORIZED if version == V5 else SUBACK_FAILURE
    assert client.subscribe(FILTERS[attempt](me, other)) == refusal
    assert client.alive()  # a refused subscription does not end the connection


# ---------------------------------------------------------------------- publish


TOPICS: dict[str, Callable[[str], tuple[str, bool]]] = {
    "room": lambda me: ("chat/pub/x", False),
    "inbox": lambda me: ("chat/in/x", False),
    "own-inbox": lambda me: (f"chat/in/{me}", False),
    "shadow": lambda me: ("$aws/things/x/shadow/update", False),
    "lifecycle": lambda me: (f"$aws/events/presence/connected/{me}", False),
    "other-topic": lambda me: ("other/topic", False),
    "retained-rule-input": lambda me: ("chat/out", True),
}


@pytest.mark.parametrize("attempt", list(TOPICS))
def test_publish_v5_outside_the_rule_topics(
    stack: InProcessStack, sessions: Sessions, attempt: str
) -> None:
    me, client = connected_guest(stack, sessions, V5)
    assert client.publish("chat/out") == ACCEPTED
    topic, retain = TOPICS[attempt](me)
    assert client.publish(topic, retain=retain) == NOT_AUTHORIZED
    assert client.publish("chat/stream") == ACCEPTED  # the connection goes on


@pytest.mark.parametrize("attempt", ["room", "inbox", "shadow"])
def test_publish_v311_outside_the_rule_topics(
    stack: InProcessStack, sessions: Sessions, attempt: str
) -> None:
    me, client = connected_guest(stack, sessions, V311)
    assert client.publish("chat/out") == ACCEPTED
    topic, _ = TOPICS[attempt](me)
    assert client.publish(topic) is None  # MQTT 3.1.1 has no refusal code: AWS disconnects


# ---------------------------------------------------------------------- signed-in identities


@pytest.mark.parametrize("version", [V5, V311], ids=["v5", "v311"])
def test_signed_in_identity_without_an_iot_policy(
    stack: InProcessStack, sessions: Sessions, version: int
) -> None:
    me, creds = signed_in_credentials(stack)
    legit = sessions(wss_session(stack, creds, version))
    assert legit.connect(me) == ACCEPTED
    assert legit.subscribe(f"chat/in/{me}") == GRANTED_QOS1
    legit.close()
    assert stack.cognito.attachments.detach_policy("iotchat-user", me)
    # No explicit invalidate: the attachment store's change hook drops cached decisions.
    refused = sessions(wss_session(stack, creds, version))  # the role alone passes SigV4...
    expected = NOT_AUTHORIZED if version == V5 else None
    assert refused.connect(me) == expected  # ...but IoT needs the attached policy too


def test_signed_in_identity_with_another_client_id(
    stack: InProcessStack, sessions: Sessions
) -> None:
    me, creds = signed_in_credentials(stack)
    other, _ = signed_in_credentials(stack)
    assert sessions(wss_session(stack, creds)).connect(other) == NOT_AUTHORIZED
    assert sessions(wss_session(stack, creds)).connect(me) == ACCEPTED


# ---------------------------------------------------------------------- SigV4 handshakes


def _swap_signature(url: str) -> str:
    head, _, rest = url.partition("X-Amz-Signature=")
    signature, sep, tail = rest.partition("&")
    forged = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    return f"{head}X-Amz-Signature={forged}{sep}{tail}"


def _other_host(stack: InProcessStack, creds: dict[str, Any]) -> str:
    port = stack.info["iot"]["wssPort"]
    url = signed_url(stack, creds, host=f"iot.example.com:{port}")
    return url.replace("iot.example.com", "127.0.0.1", 1)


Handshake = Callable[[InProcessStack, dict[str, Any], dict[str, Any]], str]

# attempt -> (URL for the handshake, the gateway's reason in the 403 body)
HANDSHAKES: dict[str, tuple[Handshake, str]] = {
    "forged-signature": (lambda s, c, o: _swap_signature(signed_url(s, c)), "SignatureMismatch"),
    "wrong-secret": (
        lambda s, c, o: signed_url(s, {**c, "SecretKey": o["SecretKey"]}),
        "SignatureMismatch",
    ),
    "other-host": (lambda s, c, o: _other_host(s, c), "SignatureMismatch"),
    "other-region": (
        lambda s, c, o: signed_url(s, c, region="eu-west-3"),
        "InvalidCredentialScope",
    ),
    "other-service": (
        lambda s, c, o: signed_url(s, c, service="execute-api"),
        "InvalidCredentialScope",
    ),
    "replayed-after-expiry": (
        lambda s, c, o: signed_url(s, c, expires=1, now=time.time() - 100),
        "Expired",
    ),
    "signed-an-hour-ago": (lambda s, c, o: signed_url(s, c, now=time.time() - 3600), "Expired"),
    "signed-an-hour-ahead": (
        lambda s, c, o: signed_url(s, c, now=time.time() + 3600),
        "NotYetValid",
    ),
    "unknown-access-key": (
        lambda s, c, o: signed_url(s, {**c, "AccessKeyId": "ASIA" + uuid.uuid4().hex[:16].upper()}),
        "UnknownAccessKey",
    ),
    "another-identitys-token": (
        lambda s, c, o: signed_url(s, c, session_token=o["SessionToken"]),
        "TokenMismatch",
    ),
    "no-session-token": (lambda s, c, o: signed_url(s, c, session_token=None), "TokenMismatch"),
    "unsigned": (lambda s, c, o: f"wss://{wss_host(s)}/mqtt", "MissingParameter"),
}


@pytest.mark.parametrize("attempt", list(HANDSHAKES))
def test_websocket_handshake_with_a_bad_signature(stack: InProcessStack, attempt: str) -> None:
    _, creds = guest(stack)
    _, other = guest(stack)
    url, reason = HANDSHAKES[attempt]
    with pytest.raises(InvalidStatus) as refused:
        open_ws(stack, url(stack, creds, other)).close()
    assert refused.value.response.status_code == 403  # before any MQTT byte
    assert reason.encode() in refused.value.response.body  # refused for the intended reason
    with open_ws(stack, signed_url(stack, creds)) as ws:
        assert ws.response is not None and ws.response.status_code == 101


@pytest.fixture(scope="module")
def short_lived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessStack]:
    """A second stack whose Cognito credentials last ``SHORT_LIFETIME`` seconds."""
    lifetime = SHORT_LIFETIME
    with fresh_stack(tmp_path_factory, "security-short", cognito_credential_lifetime=lifetime) as s:
        yield s


def test_guest_credentials_after_their_expiry(short_lived: InProcessStack) -> None:
    me, creds = guest(short_lived)
    expiration = creds["Expiration"]
    assert isinstance(expiration, datetime)
    legit = wss_session(short_lived, creds)
    assert legit.connect(me) == ACCEPTED
    legit.close()
    wait_for(lambda: time.time() > expiration.timestamp(), SHORT_LIFETIME + 2, interval=0.05)
    with pytest.raises(InvalidStatus) as refused:
        open_ws(short_lived, signed_url(short_lived, creds)).close()  # freshly signed
    assert refused.value.response.status_code == 403
    assert b"CredentialExpired" in refused.value.response.body


# ---------------------------------------------------------------------- device certificates


def _device(stack: InProcessStack, tmp_path: Path, label: str) -> DeviceFiles:
    name = f"{label}-{uuid.uuid4().hex[:8]}"
    return create_device(stack.stack.registry, stack.ca, name, tmp_path / name)


def _unregistered(stack: InProcessStack, tmp_path: Path) -> tuple[Path, Path]:
    issued = stack.ca.issue_client_certificate("ghost", tmp_path / "ghost")
    return issued.cert_path, issued.key_path


def _revoked(stack: InProcessStack, tmp_path: Path) -> tuple[Path, Path]:
    files = _device(stack, tmp_path, "revoked")
    revoke_device(stack.stack.registry, files.thing_name)
    return files.cert_path, files.key_path


def _inactive(stack: InProcessStack, tmp_path: Path) -> tuple[Path, Path]:
    files = _device(stack, tmp_path, "inactive")
    stack.stack.registry.update_certificate(files.certificate_id, INACTIVE)
    return files.cert_path, files.key_path


CERTIFICATES = {"unregistered": _unregistered, "revoked": _revoked, "inactive": _inactive}


@pytest.mark.parametrize("attempt", list(CERTIFICATES))
def test_certificate_signed_by_the_ca_but_not_active(
    stack: InProcessStack, sessions: Sessions, tmp_path: Path, attempt: str
) -> None:
    cert, key = CERTIFICATES[attempt](stack, tmp_path)
    refused = sessions(tls_session(stack, cert, key))  # the CA's signature passes TLS...
    assert refused.connect("ghost") is None  # ...then AWS closes: no principal, no CONNACK
    assert refused_before_connack(stack, cert, key)
    device = _device(stack, tmp_path, "legit")
    legit = sessions(tls_session(stack, device.cert_path, device.key_path))
    assert legit.connect(device.thing_name) == ACCEPTED


@pytest.mark.parametrize("attempt", ["foreign-ca", "no-client-certificate"])
def test_certificate_the_ca_did_not_issue(
    stack: InProcessStack, sessions: Sessions, tmp_path: Path, attempt: str
) -> None:
    chain: tuple[Any, Any] = (None, None)
    if attempt == "foreign-ca":
        issued = LocalCA.load_or_create(tmp_path / "foreign").issue_client_certificate("x")
        chain = (issued.cert_path, issued.key_path)
    assert refused_before_connack(stack, *chain)
    device = _device(stack, tmp_path, "legit")
    legit = sessions(tls_session(stack, device.cert_path, device.key_path))
    assert legit.connect(device.thing_name) == ACCEPTED


DEVICE_CLIENT_IDS = [
    (V5, "other-things-client-id"),
    (V5, "client-id-plus"),
    (V311, "other-things-client-id"),
]


@pytest.mark.parametrize(
    ("version", "attempt"),
    DEVICE_CLIENT_IDS,
    ids=[f"{'v5' if v == V5 else 'v311'}-{name}" for v, name in DEVICE_CLIENT_IDS],
)
def test_device_certificate_with_another_client_id(
    stack: InProcessStack, sessions: Sessions, tmp_path: Path, version: int, attempt: str
) -> None:
    a = _device(stack, tmp_path, "device-a")
    b = _device(stack, tmp_path, "device-b")
    client_id = b.thing_name if attempt == "other-things-client-id" else "+"
    refused = sessions(tls_session(stack, a.cert_path, a.key_path, version))
    assert refused.connect(client_id) == (NOT_AUTHORIZED if version == V5 else None)
    legit = sessions(tls_session(stack, a.cert_path, a.key_path, version))
    assert legit.connect(a.thing_name) == ACCEPTED


@pytest.mark.parametrize("attempt", ["other-device-inbox", "inbox-plus", "publish-room"])
def test_device_beyond_its_policy(
    stack: InProcessStack, sessions: Sessions, tmp_path: Path, attempt: str
) -> None:
    a = _device(stack, tmp_path, "device-a")
    b = _device(stack, tmp_path, "device-b")
    client = sessions(tls_session(stack, a.cert_path, a.key_path))
    assert client.connect(a.thing_name) == ACCEPTED
    if attempt == "publish-room":
        assert client.publish("chat/out") == ACCEPTED
        assert client.publish("chat/pub/x") == NOT_AUTHORIZED
    else:
        assert client.subscribe(f"chat/in/{a.thing_name}") == GRANTED_QOS1
        refused = f"chat/in/{b.thing_name}" if attempt == "other-device-inbox" else "chat/in/+"
        assert client.subscribe(refused) == NOT_AUTHORIZED
    assert client.alive()
