"""The codec's refusals: each malformation of the MQTT 3.1.1 and 5.0 specifications raises
MalformedPacket with the reason code a broker must answer with, and every property is
accepted exactly where the specification allows it."""

from __future__ import annotations

import pytest

from infra.local.gateway.codec import (
    AUTH,
    CONNACK,
    CONNECT,
    DISCONNECT,
    MQTT_5,
    MQTT_311,
    PUBLISH,
    SUBACK,
    SUBSCRIBE,
    UNSUBACK,
    UNSUBSCRIBE,
    Ack,
    Auth,
    Connack,
    Connect,
    Disconnect,
    MalformedPacket,
    Packet,
    PacketReader,
    Prop,
    Publish,
    ReasonCode,
    Suback,
    Subscribe,
    SubscriptionOptions,
    Unsuback,
    Unsubscribe,
    Will,
    encode,
)
from tests.infra.local.gateway.mqtt_packets import (
    EVERY_KIND,
    SPEC_PROPERTIES,
    WILL,
    decode_one,
    malformed,
    unhex,
)

# --------------------------------------------------------------------------- malformations

MALFORMED = ReasonCode.MALFORMED_PACKET
PROTOCOL = ReasonCode.PROTOCOL_ERROR

MALFORMATIONS: list[tuple[str, int, bytes, int]] = [
    ("topic is not UTF-8", MQTT_311, unhex("30 04 0002 ff61"), MALFORMED),
    ("topic holds a surrogate", MQTT_311, unhex("30 05 0003 eda080"), MALFORMED),
    ("U+0000 in the topic", MQTT_311, unhex("30 05 0003 610062"), MALFORMED),
    (
        "U+0000 in the client id",
        MQTT_311,
        unhex("10 0e 0004 4d515454 04 02 003c 0002 6100"),
        MALFORMED,
    ),
    ("PUBLISH QoS 3", MQTT_311, unhex("36 05 0001 61 0001"), MALFORMED),
    ("DUP on a QoS 0 PUBLISH", MQTT_311, unhex("38 03 0001 61"), MALFORMED),
    ("SUBSCRIBE with flags 0", MQTT_311, unhex("80 06 0001 0001 61 00"), MALFORMED),
    ("PUBREL with flags 0", MQTT_311, unhex("60 02 0001"), MALFORMED),
    ("PUBACK with flags 2", MQTT_311, unhex("42 02 0001"), MALFORMED),
    ("PINGREQ with flags 1", MQTT_311, unhex("c1 00"), MALFORMED),
    ("PINGREQ with a body", MQTT_311, unhex("c0 01 00"), MALFORMED),
    (
        "CONNECT reserved flag",
        MQTT_311,
        unhex("10 0d 0004 4d515454 04 03 003c 0001 61"),
        MALFORMED,
    ),
    (
        "will QoS 3",
        MQTT_311,
        unhex("10 12 0004 4d515454 04 1e 003c 0001 61 0001 77 0000"),
        MALFORMED,
    ),
    (
        "will retain without a will",
        MQTT_311,
        unhex("10 0d 0004 4d515454 04 22 003c 0001 61"),
        MALFORMED,
    ),
    ("subscription QoS 3", MQTT_311, unhex("82 06 0001 0001 61 03"), MALFORMED),
    ("subscription reserved bits", MQTT_5, unhex("82 07 0001 00 0001 61 c0"), MALFORMED),
    ("PUBLISH QoS 1 packet id 0", MQTT_311, unhex("32 05 0001 61 0000"), MALFORMED),
    ("SUBSCRIBE packet id 0", MQTT_311, unhex("82 06 0000 0001 61 00"), MALFORMED),
    ("UNSUBSCRIBE packet id 0", MQTT_311, unhex("a2 05 0000 0001 61"), MALFORMED),
    ("SUBSCRIBE without filters", MQTT_311, unhex("82 02 0001"), PROTOCOL),
    ("string longer than the packet", MQTT_311, unhex("30 03 0009 61"), MALFORMED),
    (
        "trailing bytes after CONNECT",
        MQTT_311,
        unhex("10 0e 0004 4d515454 04 02 003c 0001 61 00"),
        MALFORMED,
    ),
    (
        "duplicate payload format indicator",
        MQTT_5,
        unhex("30 08 0001 61 04 0101 0101"),
        PROTOCOL,
    ),
    (
        "session expiry (a CONNECT property) in a PUBLISH",
        MQTT_5,
        unhex("30 09 0001 61 05 11 0000003c"),
        MALFORMED,
    ),
    ("unknown property 0x7f", MQTT_5, unhex("30 06 0001 61 02 7f00"), MALFORMED),
    ("payload format indicator 2", MQTT_5, unhex("30 06 0001 61 02 0102"), PROTOCOL),
    ("property length beyond the packet", MQTT_5, unhex("30 05 0001 61 09 01"), MALFORMED),
    ("remaining length of 5 bytes", MQTT_311, unhex("30 ff ff ff ff 7f"), MALFORMED),
    ("reserved packet type 0", MQTT_311, unhex("00 00"), MALFORMED),
    ("AUTH in MQTT 3.1.1", MQTT_311, unhex("f0 00"), MALFORMED),
    ("reason codes in an MQTT 3.1.1 UNSUBACK", MQTT_311, unhex("b0 03 0001 00"), MALFORMED),
    (
        "protocol level 3 (MQTT 3.1)",
        MQTT_311,
        unhex("10 0f 0006 4d5149736470 03 02 003c 0001 61"),
        ReasonCode.UNSUPPORTED_PROTOCOL_VERSION,
    ),
    (
        "protocol name MQTX",
        MQTT_311,
        unhex("10 0d 0004 4d515458 04 02 003c 0001 61"),
        ReasonCode.UNSUPPORTED_PROTOCOL_VERSION,
    ),
]


@pytest.mark.parametrize(
    ("version", "wire", "reason_code"),
    [case[1:] for case in MALFORMATIONS],
    ids=[case[0] for case in MALFORMATIONS],
)
def test_malformations_raise_with_a_reason_code(
    version: int, wire: bytes, reason_code: int
) -> None:
    assert malformed(wire, version).reason_code == reason_code


def test_five_byte_remaining_length_fails_before_the_fifth_byte() -> None:
    """The fourth continuation bit already proves the length invalid; don't wait for more."""
    with pytest.raises(MalformedPacket):
        PacketReader().feed(b"\x30\xff\xff\xff\xff")


def _with_property(kind: object, pid: int) -> tuple[bytes, int]:
    """A minimal MQTT 5 packet of ``kind`` carrying only property ``pid``."""
    wire_type = SPEC_PROPERTIES[pid][0]
    value: object = {
        "byte": 1,
        "u16": 5,
        "u32": 5,
        "varint": [5],
        "str": "s",
        "bin": b"b",
        "pair": [("k", "v")],
    }[wire_type]
    props = {pid: value}
    if pid == Prop.AUTHENTICATION_DATA:
        props[Prop.AUTHENTICATION_METHOD] = "m"
    if kind == WILL:
        packet: Packet = Connect("c", MQTT_5, will=Will("w", b"", properties=props))
    else:
        packet = {
            CONNECT: lambda: Connect("c", MQTT_5, properties=props),
            CONNACK: lambda: Connack(False, 0, props),
            PUBLISH: lambda: Publish("t", b"", properties=props),
            SUBSCRIBE: lambda: Subscribe(1, [("t", SubscriptionOptions())], props),
            SUBACK: lambda: Suback(1, [0], props),
            UNSUBSCRIBE: lambda: Unsubscribe(1, ["t"], props),
            UNSUBACK: lambda: Unsuback(1, [0], props),
            DISCONNECT: lambda: Disconnect(0, props),
            AUTH: lambda: Auth(0, props),
        }.get(kind, lambda: Ack(kind, 1, 0, props))()  # type: ignore[arg-type]
    return encode(packet, MQTT_5), MQTT_5


@pytest.mark.parametrize("pid", sorted(SPEC_PROPERTIES), ids=lambda pid: f"0x{pid:02x}")
def test_property_accepted_exactly_where_the_spec_allows(pid: int) -> None:
    """Each property decodes in the packets MQTT 5 lists for it and is malformed elsewhere."""
    for kind in sorted(EVERY_KIND, key=str):
        wire, version = _with_property(kind, pid)
        if kind in SPEC_PROPERTIES[pid][1]:
            decode_one(wire, version)
        else:
            # MQTT 5 2.2.2.2: an identifier not valid for its packet type is a Malformed Packet.
            assert malformed(wire, version).reason_code == MALFORMED, (kind, hex(pid))


def test_auth_data_without_method_is_a_protocol_error() -> None:
    wire = encode(Connect("c", MQTT_5, properties={Prop.AUTHENTICATION_DATA: b"x"}))
    assert malformed(wire).reason_code == PROTOCOL
