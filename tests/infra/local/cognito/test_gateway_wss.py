"""Cognito credentials at the device gateway: a SigV4-signed WSS handshake maps back to the
identity that the credentials were issued to, and expired credentials are refused with 403
before any MQTT byte.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Iterator
from datetime import datetime

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from infra.local.sigv4 import presign_url
from tests.support.cognito import guest_credentials, signed_in_credentials, wss_connection
from tests.support.raw_mqtt import connect_packet as mqtt5_connect
from tests.support.stack import InProcessStack, fresh_stack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(60)

TIMEOUT = 10.0
SHORT_LIFETIME = 3.0  # seconds: long enough for one legitimate connect, short to wait out
NOT_AUTHORIZED = 0x87


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessStack]:
    lifetime = SHORT_LIFETIME
    with fresh_stack(tmp_path_factory, "cognito-wss", cognito_credential_lifetime=lifetime) as s:
        yield s


def tls(stack: InProcessStack) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=stack.info["iot"]["caFile"])


def signed_url(stack: InProcessStack, creds: dict[str, object]) -> str:
    # websockets sends ``Host: 127.0.0.1:<port>``; sign exactly that.
    return presign_url(
        f"127.0.0.1:{stack.info['iot']['wssPort']}",
        str(creds["AccessKeyId"]),
        str(creds["SecretKey"]),
        region=stack.info["region"],
        session_token=str(creds["SessionToken"]),
    )


@pytest.mark.parametrize("who", ["guest", "signed-in"])
def test_cognito_credentials_sign_a_wss_connect_as_the_identity(
    stack: InProcessStack, who: str
) -> None:
    obtain = guest_credentials if who == "guest" else signed_in_credentials
    identity_id, creds = obtain(stack)
    connection = wss_connection(stack, identity_id, creds)
    connection.connect().result(TIMEOUT)
    try:
        topic = f"$aws/events/presence/connected/{identity_id}"
        (event,) = wait_for(lambda: stack.taps_on(topic), TIMEOUT)
        body = json.loads(event.payload)
        assert body["principalIdentifier"] == identity_id
        assert body["clientId"] == identity_id
    finally:
        connection.disconnect().result(TIMEOUT)


def test_identity_passes_sigv4_but_another_client_id_is_refused_at_connect(
    stack: InProcessStack,
) -> None:
    _, creds = guest_credentials(stack)
    other_id, _ = guest_credentials(stack)
    with ws_connect(
        signed_url(stack, creds), ssl=tls(stack), subprotocols=["mqtt"], open_timeout=TIMEOUT
    ) as ws:
        assert ws.response.status_code == 101  # the signature is good
        ws.send(mqtt5_connect(other_id))
        connack = ws.recv(timeout=TIMEOUT)
        assert connack[0] == 0x20 and connack[3] == NOT_AUTHORIZED  # authorization says no
    assert not stack.taps_on(f"$aws/events/presence/connected/{other_id}")


def test_expired_cognito_credentials_are_refused_at_the_handshake(stack: InProcessStack) -> None:
    _, creds = guest_credentials(stack)
    expiration = creds["Expiration"]
    assert isinstance(expiration, datetime)
    # While valid, the credentials open the WebSocket...
    with ws_connect(
        signed_url(stack, creds), ssl=tls(stack), subprotocols=["mqtt"], open_timeout=TIMEOUT
    ) as ws:
        assert ws.response.status_code == 101
    # ...and once expired, a freshly signed URL with them is refused with 403.
    wait_for(lambda: time.time() > expiration.timestamp(), SHORT_LIFETIME + 2, interval=0.05)
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(
            signed_url(stack, creds), ssl=tls(stack), subprotocols=["mqtt"], open_timeout=TIMEOUT
        )
    assert refused.value.response.status_code == 403
    assert b"CredentialExpired" in refused.value.response.body
