"""The policy engine as the gateway's authorizer: real MQTT 5 clients, per-identity credentials.

Every refused attempt stands next to the legitimate action that succeeds, so a refusal cannot
pass just because nothing works. Identities connect over the plain TCP listener with their
access key id and secret as MQTT username and password; the decisions are the same ones the
SigV4 WebSocket listener gets (the principal comes from the same credential store).
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from infra.local.gateway import Credential, Principal
from infra.local.gateway.policy_authorizer import AMR, SUB, PolicyAuthorizer
from policies.evaluator import Request, evaluate
from policies.model import Policy
from tests.support.stack import GatewayHandle
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(60)


class Attachments:
    def __init__(self) -> None:
        self.by_target: dict[str, list[str]] = {}

    def __call__(self, target: str) -> list[str]:
        return self.by_target.get(target, [])


@pytest.fixture
def attachments() -> Attachments:
    return Attachments()


@pytest.fixture
def gw(start_gateway, attachments) -> GatewayHandle:
    authorizer = PolicyAuthorizer(
        region="us-east-1", account="000000000000", attached_policies=attachments
    )
    return start_gateway(authorizer=authorizer)


def identity(gw: GatewayHandle, signed_in: bool = False) -> tuple[str, str, str]:
    """A new Cognito-style identity with its own credentials: (identity id, key, secret)."""
    identity_id = f"us-east-1:{uuid.uuid4()}"
    key, secret = "ASIA" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30)
    amr = "authenticated" if signed_in else "unauthenticated"
    principal = Principal("cognito", identity_id, ((SUB, identity_id), (AMR, amr)))
    gw.credentials.add(Credential(key, secret, principal))
    return identity_id, key, secret


class Client:
    def __init__(self, gw: GatewayHandle, client_id: str, key: str, secret: str) -> None:
        self.connack: list[int] = []
        self.subacks: dict[int, list[int]] = {}
        self.pubacks: dict[int, int] = {}
        self.messages: list[tuple[str, bytes]] = []
        self.gone = False
        self.mqtt = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self.mqtt.username_pw_set(key, secret)
        self.mqtt.on_connect = lambda c, u, f, rc, p: self.connack.append(rc.value)
        self.mqtt.on_subscribe = lambda c, u, mid, codes, p: self.subacks.__setitem__(
            mid, [code.value for code in codes]
        )
        self.mqtt.on_publish = lambda c, u, mid, rc, p: self.pubacks.__setitem__(mid, rc.value)
        self.mqtt.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload))
        self.mqtt.on_disconnect = lambda *a: setattr(self, "gone", True)
        self.mqtt.connect(gw.host, gw.mqtt_port)
        self.mqtt.loop_start()
        wait_for(lambda: self.connack or self.gone)

    @property
    def accepted(self) -> bool:
        return self.connack == [0]

    def subscribe(self, topic_filter: str) -> int:
        _, mid = self.mqtt.subscribe(topic_filter, qos=1)
        return wait_for(lambda: self.subacks.get(mid))[0]

    def publish(self, topic: str, payload: bytes = b"{}", retain: bool = False) -> int:
        info = self.mqtt.publish(topic, payload, qos=1, retain=retain)
        wait_for(lambda: info.mid in self.pubacks)
        return self.pubacks[info.mid]

    def close(self) -> None:
        self.mqtt.disconnect()
        self.mqtt.loop_stop()


@pytest.fixture
def clients():
    made: list[Client] = []

    def make(*args: Any) -> Client:
        client = Client(*args)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


NOT_AUTHORIZED = 0x87
TOPICFILTER = "arn:aws:iot:us-east-1:000000000000:topicfilter"
TOPIC = "arn:aws:iot:us-east-1:000000000000:topic"


def test_guest_connects_only_with_its_own_identity_id(gw, clients):
    me, key, secret = identity(gw)
    other, _, _ = identity(gw)
    for client_id in (other, "+", "#", "someone-else", me + "x"):
        assert clients(gw, client_id, key, secret).connack == [NOT_AUTHORIZED], client_id
    assert clients(gw, me, key, secret).accepted


def test_guest_subscribes_only_to_its_inbox_and_named_rooms(gw, clients):
    me, key, secret = identity(gw)
    other, _, _ = identity(gw)
    client = clients(gw, me, key, secret)
    assert client.accepted
    assert client.subscribe(f"chat/in/{me}") == 1
    assert client.subscribe("chat/pub/lobby") == 1
    for refused in (
        f"chat/in/{other}",
        "chat/in/+",
        "chat/in/#",
        "chat/#",
        "#",
        "chat/pub/+",
        "chat/pub/#",
        "$aws/events/#",
        "chat/out",
    ):
        assert client.subscribe(refused) == NOT_AUTHORIZED, refused


def test_a_shared_subscription_needs_its_own_topicfilter_resource(gw, clients):
    """``$share/g/chat/pub/lobby`` is authorised as ``topicfilter/$share/g/chat/pub/lobby``,
    which the guest role's ``topicfilter/chat/pub/*`` does not cover, though the plain room
    filter beside it still works."""
    me, key, secret = identity(gw)
    client = clients(gw, me, key, secret)
    assert client.subscribe("chat/pub/lobby") == 1
    assert client.subscribe("$share/g/chat/pub/lobby") == NOT_AUTHORIZED
    assert client.subscribe(f"$share/g/chat/in/{me}") == NOT_AUTHORIZED


def test_a_policy_grants_shared_subscriptions_by_their_share_form() -> None:
    """The evaluator reads ``topicfilter/$share/<name>/<filter>`` like any resource: ``*``
    may stand for the share name, and ``$share`` is no policy variable."""
    policy = Policy.parse(
        "workers",
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "iot:Subscribe",
                    "Resource": f"{TOPICFILTER}/$share/*/jobs/${{iot:ClientId}}",
                },
                {"Effect": "Allow", "Action": "iot:Receive", "Resource": f"{TOPIC}/jobs/*"},
            ],
        },
    )

    def decide(action: str, resource: str) -> bool:
        context = {"iot:ClientId": "w1"}
        return evaluate([policy], Request(action, resource, context)).allowed

    assert decide("iot:Subscribe", f"{TOPICFILTER}/$share/pool/jobs/w1")
    assert not decide("iot:Subscribe", f"{TOPICFILTER}/jobs/w1")  # the plain filter is not
    assert not decide("iot:Subscribe", f"{TOPICFILTER}/$share/pool/jobs/w2")
    assert decide("iot:Receive", f"{TOPIC}/jobs/w1")


def test_guest_publishes_only_to_the_rule_topics(gw, clients):
    me, key, secret = identity(gw)
    client = clients(gw, me, key, secret)
    assert client.publish("chat/out") == 0
    assert client.publish("chat/stream") == 0
    for refused in ("chat/pub/lobby", f"chat/in/{me}", "chat/in/x", "other/topic"):
        assert client.publish(refused) == NOT_AUTHORIZED, refused
    # Retaining needs iot:RetainPublish, which no chat policy grants.
    assert client.publish("chat/out", retain=True) == NOT_AUTHORIZED


def test_guest_receives_its_inbox_but_not_anothers(gw, clients):
    me, key, secret = identity(gw)
    client = clients(gw, me, key, secret)
    assert client.subscribe(f"chat/in/{me}") == 1
    gw.call(lambda: gw.gateway.publish(f"chat/in/{me}", b"for me", qos=1))
    wait_for(lambda: (f"chat/in/{me}", b"for me") in client.messages)


def test_signed_in_identity_needs_an_attached_iot_policy(gw, clients, attachments):
    me, key, secret = identity(gw, signed_in=True)
    assert clients(gw, me, key, secret).connack == [NOT_AUTHORIZED]
    attachments.by_target[me] = ["iotchat-user"]
    gw.authorizer.invalidate()
    client = clients(gw, me, key, secret)
    assert client.accepted
    assert client.subscribe(f"chat/in/{me}") == 1
    assert client.publish("chat/pub/x") == NOT_AUTHORIZED


def test_an_attachment_on_another_identity_does_not_help(gw, clients, attachments):
    me, key, secret = identity(gw, signed_in=True)
    other, _, _ = identity(gw, signed_in=True)
    attachments.by_target[other] = ["iotchat-user"]
    gw.authorizer.invalidate()
    assert clients(gw, me, key, secret).connack == [NOT_AUTHORIZED]
    assert clients(gw, "admin-client", "test", "test").accepted


def test_cached_decisions_are_dropped_when_attachments_change(gw, clients, attachments):
    me, key, secret = identity(gw, signed_in=True)
    attachments.by_target[me] = ["iotchat-user"]
    gw.authorizer.invalidate()
    first = clients(gw, me, key, secret)
    assert first.accepted
    first.close()
    attachments.by_target[me] = []
    gw.authorizer.invalidate()
    assert clients(gw, me, key, secret).connack == [NOT_AUTHORIZED]


def test_a_role_session_publishes_where_its_role_allows_and_nowhere_else() -> None:
    """A Lambda's execution role (iot-data Publish) and a rule's role are held to their IAM
    policy: the backend may write to inboxes, only the republish rule to room topics."""
    authorizer = PolicyAuthorizer(region="us-east-1", account="000000000000")
    backend = Principal(
        "role", authorizer.roles.by_file("backend-lambda").arn, (("session", "commands"),)
    )
    republish = Principal(
        "role", authorizer.roles.by_file("rule-republish").arn, (("session", "rule"),)
    )
    stray = Principal("role", "arn:aws:iam::000000000000:role/nobody", (("session", "x"),))
    assert authorizer.can_publish(backend, "n/a", "chat/in/us-east-1:abc", retain=False)
    assert not authorizer.can_publish(backend, "n/a", "chat/pub/lobby", retain=False)
    assert authorizer.can_publish(republish, "n/a", "chat/pub/lobby", retain=False)
    assert not authorizer.can_publish(republish, "n/a", "chat/out", retain=False)
    assert not authorizer.can_publish(stray, "n/a", "chat/in/us-east-1:abc", retain=False)
