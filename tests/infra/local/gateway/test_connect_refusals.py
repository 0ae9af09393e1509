"""CONNECT's limits and refusals as AWS IoT Core answers them: client ids, credentials,
permission to connect, and the keep-alive range; the gateway keeps serving a bystander.

Where an exact byte matters (an MQTT 3.1.1 CONNACK return code, or no CONNACK at all) a raw
socket reads the gateway's answer.

AWS behaviour: shared/reference/aws-iot-core.md sections 4 ("Refusals") and 6 ("Limits").
"""

from __future__ import annotations

import uuid

import pytest

from infra.local.gateway import Credential, Principal
from infra.local.gateway.codec import (
    Connect,
)
from tests.infra.local.gateway.peers import (
    presence,
    raw_connect,
    uid,
)
from tests.support.stack import GatewayHandle
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(60)


# --------------------------------------------------------------------------- client id


@pytest.mark.parametrize("version", [3, 5])
def test_client_id_limits(gateway, bystander, peers, version):
    # 128 bytes of UTF-8 (64 two-byte characters) is the most AWS accepts.
    assert peers(gateway, "é" * 64, version=version).connected
    assert peers(gateway, "c" * 128, version=version).connected
    for refused in ("é" * 65, "c" * 129, "$reserved"):
        peer = peers(gateway, refused, version=version)
        # MQTT 3.1.1: return code 2 (identifier rejected), which paho reports as 0x85.
        assert peer.connack_code == 0x85, refused
        peer.wait_gone()
    bystander.roundtrip()


def test_client_id_refusal_bytes_mqtt311(gateway, bystander):
    """The exact MQTT 3.1.1 CONNACK: return code 2, then the gateway closes."""
    for client_id in ("c" * 129, "$aws"):
        reply = raw_connect(gateway, Connect(client_id, username="test", password=b"test"))
        assert reply == b"\x20\x02\x00\x02"
    bystander.roundtrip()


# --------------------------------------------------------------------------- credentials


@pytest.mark.parametrize(
    ("username", "password"), [("nobody", "x"), ("test", "wrong"), (None, None)]
)
@pytest.mark.parametrize("version", [3, 5])
def test_unknown_credentials_refused(gateway, bystander, peers, version, username, password):
    peer = peers(gateway, uid("anon"), version=version, username=username, password=password)
    assert peer.connack_code == 0x86  # MQTT 3.1.1 return code 4, reported by paho as 0x86
    peer.wait_gone()
    bystander.roundtrip()


def test_unknown_credentials_refusal_bytes_mqtt311(gateway, bystander):
    reply = raw_connect(gateway, Connect(uid("anon"), username="nobody", password=b"x"))
    assert reply == b"\x20\x02\x00\x04"
    bystander.roundtrip()


@pytest.fixture
def iam_user(gateway: GatewayHandle) -> tuple[str, str]:
    key = "AKIA" + uuid.uuid4().hex[:16].upper()
    gateway.credentials.add(Credential(key, "s3cret", Principal("iam", key)))
    return key, "s3cret"


def test_principal_without_permission_mqtt5_connack_0x87(gateway, bystander, peers, iam_user):
    key, secret = iam_user
    peer = peers(gateway, uid("iam5"), username=key, password=secret)
    assert peer.connack_code == 0x87
    peer.wait_gone()
    failed = wait_for(lambda: presence(gateway, "connect_failed", peer.client_id))
    assert failed[0]["connectFailureReason"] == "AUTHORIZATION_FAILED"
    assert failed[0]["principalIdentifier"] == key
    bystander.roundtrip()


def test_principal_without_permission_mqtt311_closed_without_connack(
    gateway, bystander, peers, iam_user
):
    key, secret = iam_user
    client_id = uid("iam311")
    assert raw_connect(gateway, Connect(client_id, username=key, password=secret.encode())) == b""
    peer = peers(gateway, uid("iam311"), version=3, username=key, password=secret)
    peer.wait_gone()
    assert peer.connack is None
    assert wait_for(lambda: presence(gateway, "connect_failed", client_id))
    bystander.roundtrip()


# --------------------------------------------------------------------------- keep-alive


@pytest.mark.parametrize(("requested", "granted"), [(5, 30), (0, 1200), (5000, 1200), (29, 30)])
def test_keepalive_is_clamped_mqtt5(gateway, bystander, peers, requested, granted):
    peer = peers(gateway, uid("ka"), keepalive=requested)
    assert peer.connected
    props = peer.connack[1]  # type: ignore[index]
    assert props.ServerKeepAlive == granted
    bystander.roundtrip()


def test_keepalive_within_range_is_not_overridden(gateway, bystander, peers):
    peer = peers(gateway, uid("ka"), keepalive=60)
    assert peer.connected
    assert not hasattr(peer.connack[1], "ServerKeepAlive")  # type: ignore[index]
    bystander.roundtrip()


def test_keepalive_is_clamped_mqtt311(gateway, bystander, peers):
    """MQTT 3.1.1 cannot tell the client; the gateway still times out at 1.5 x 30 s, not 5 s."""
    peer = peers(gateway, uid("ka311"), version=3, keepalive=5)
    assert peer.connected
    assert gateway.call(lambda: gateway.gateway.broker.connections[peer.client_id].keep_alive) == 30
    bystander.roundtrip()
