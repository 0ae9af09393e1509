"""The sans-I/O MQTT codec, without any socket.

Every listener, the fuzz tests and the benchmarks sit on this codec, so it is checked four
ways: round trips of every packet type (hypothesis builds them, see ``mqtt_packets.py``),
byte-exact comparisons with packets assembled by hand from the MQTT 3.1.1 and 5.0
specifications, framing in any chunking, and the refusals a broker must make (each
malformation has its own test and reason code). Topic names and filters: ``test_topics.py``.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from infra.local.gateway.codec import (
    AUTH,
    CONNACK,
    CONNECT,
    DISCONNECT,
    MQTT_5,
    MQTT_311,
    PUBACK,
    PUBLISH,
    PUBREL,
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
    PacketTooLarge,
    Pingreq,
    Pingresp,
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
    encode_varint,
)
from tests.infra.local.gateway.mqtt_packets import (
    EVERY_KIND,
    SPEC_PROPERTIES,
    WILL,
    decode_one,
    malformed,
    unhex,
    versioned_packets,
)

# --------------------------------------------------------------------------- round trips


@settings(max_examples=600, derandomize=True, database=None, deadline=None)
@given(versioned_packets)
def test_every_packet_type_round_trips(case: tuple[int, Packet]) -> None:
    version, packet = case
    assert decode_one(encode(packet, version), version) == packet


@pytest.mark.parametrize("version", [MQTT_311, MQTT_5])
def test_connect_with_will_round_trips(version: int) -> None:
    v5 = version == MQTT_5
    will_props = (
        {
            Prop.WILL_DELAY_INTERVAL: 10,
            Prop.PAYLOAD_FORMAT_INDICATOR: 1,
            Prop.MESSAGE_EXPIRY_INTERVAL: 60,
            Prop.CONTENT_TYPE: "application/json",
            Prop.RESPONSE_TOPIC: "reply/here",
            Prop.CORRELATION_DATA: b"\x00\x01",
            Prop.USER_PROPERTY: [("a", "1"), ("a", "2"), ("ü", "✓")],
        }
        if v5
        else {}
    )
    packet = Connect(
        client_id="device-1",
        protocol_level=version,
        clean_start=False,
        keep_alive=1200,
        will=Will("status/device-1", b'{"online":false}', 1, True, will_props),
        username="test",
        password=b"test",
        properties={Prop.SESSION_EXPIRY_INTERVAL: 3600, Prop.RECEIVE_MAXIMUM: 10} if v5 else {},
    )
    decoded = decode_one(encode(packet), version)
    assert decoded == packet
    assert isinstance(decoded, Connect) and decoded.will is not None
    # User properties keep order and duplicates (MQTT 5 3.3.2.3.7).
    if v5:
        assert decoded.will.properties[Prop.USER_PROPERTY][:2] == [("a", "1"), ("a", "2")]


@pytest.mark.parametrize("kind", ["byte", "u16", "u32", "varint", "str", "bin", "pair"])
def test_each_property_wire_type_round_trips(kind: str) -> None:
    """One property of each of the seven MQTT 5 data types, at its extreme values."""
    samples = {
        "byte": (PUBLISH, Prop.PAYLOAD_FORMAT_INDICATOR, 1),
        "u16": (PUBLISH, Prop.TOPIC_ALIAS, 0xFFFF),
        "u32": (PUBLISH, Prop.MESSAGE_EXPIRY_INTERVAL, 0xFFFF_FFFF),
        "varint": (PUBLISH, Prop.SUBSCRIPTION_IDENTIFIER, [1, 127, 128, 268_435_455]),
        "str": (PUBLISH, Prop.CONTENT_TYPE, "x" * 300 + "ö"),
        "bin": (PUBLISH, Prop.CORRELATION_DATA, bytes(range(256)) * 3),
        "pair": (PUBLISH, Prop.USER_PROPERTY, [("", ""), ("k", "v" * 1000)]),
    }
    _, pid, value = samples[kind]
    assert SPEC_PROPERTIES[pid][0] == kind
    packet = Publish("t", b"x", 1, packet_id=7, properties={pid: value})
    assert decode_one(encode(packet, MQTT_5), MQTT_5) == packet


# --------------------------------------------------------------------------- byte-exact packets


SPEC_PACKETS: list[tuple[str, int, bytes, Packet]] = [
    (
        "CONNECT 3.1.1, clean session, user name and password",
        MQTT_311,
        unhex("10 1b 0004 4d515454 04 c2 003c 0003 616263 0004 74657374 0004 74657374"),
        Connect(
            "abc", MQTT_311, clean_start=True, keep_alive=60, username="test", password=b"test"
        ),
    ),
    (
        "CONNECT 5 with session expiry and a QoS 1 will with a delay",
        MQTT_5,
        # flags 0x0e: clean start, will, will QoS 1; will properties: delay 5 s
        unhex(
            "10 22 0004 4d515454 05 0e 001e 05 11 00000e10"  # header, flags, keep-alive, props
            "0002 6331 05 18 00000005 0001 77 0003 627965"  # client id, will props, topic, payload
        ),
        Connect(
            "c1",
            MQTT_5,
            clean_start=True,
            keep_alive=30,
            will=Will("w", b"bye", 1, False, {Prop.WILL_DELAY_INTERVAL: 5}),
            properties={Prop.SESSION_EXPIRY_INTERVAL: 3600},
        ),
    ),
    (
        "PUBLISH 5 QoS 1 with payload format, expiry and a user property",
        MQTT_5,
        unhex("32 18 0003 612f62 000a 0e 01 01 02 0000001e 26 0001 6b 0001 76 6869"),
        Publish(
            "a/b",
            b"hi",
            qos=1,
            packet_id=10,
            properties={
                Prop.PAYLOAD_FORMAT_INDICATOR: 1,
                Prop.MESSAGE_EXPIRY_INTERVAL: 30,
                Prop.USER_PROPERTY: [("k", "v")],
            },
        ),
    ),
    (
        "PUBLISH 3.1.1 QoS 0 retained",
        MQTT_311,
        unhex("31 07 0003 612f62 6869"),
        Publish("a/b", b"hi", retain=True),
    ),
    (
        "SUBACK 3.1.1 granting QoS 1 and refusing one filter",
        MQTT_311,
        unhex("90 04 0102 01 80"),
        Suback(0x0102, [1, 0x80]),
    ),
    (
        "SUBACK 5 with quota exceeded",
        MQTT_5,
        unhex("90 05 0102 00 00 97"),
        Suback(0x0102, [0, 0x97]),
    ),
    (
        "CONNACK 5 with a server keep-alive",
        MQTT_5,
        unhex("20 06 00 00 03 13 001e"),
        Connack(False, 0, {Prop.SERVER_KEEP_ALIVE: 30}),
    ),
    ("CONNACK 3.1.1 identifier rejected", MQTT_311, unhex("20 02 00 02"), Connack(False, 2)),
    ("PUBACK 5 quota exceeded", MQTT_5, unhex("40 03 000a 97"), Ack(PUBACK, 10, 0x97)),
    ("PUBACK 3.1.1", MQTT_311, unhex("40 02 000a"), Ack(PUBACK, 10)),
    ("PUBREL (flags 0x2)", MQTT_311, unhex("62 02 0001"), Ack(PUBREL, 1)),
    (
        "SUBSCRIBE 3.1.1 two filters",
        MQTT_311,
        unhex("82 0c 0001 0003 612f2b 01 0001 23 00"),
        Subscribe(1, [("a/+", SubscriptionOptions(1)), ("#", SubscriptionOptions(0))]),
    ),
    (
        "SUBSCRIBE 5 no-local, retain-as-published, retain handling 2",
        MQTT_5,
        unhex("82 07 0001 00 0001 61 2d"),
        Subscribe(1, [("a", SubscriptionOptions(1, True, True, 2))]),
    ),
    ("UNSUBSCRIBE 3.1.1", MQTT_311, unhex("a2 05 0002 0001 61"), Unsubscribe(2, ["a"])),
    ("UNSUBACK 5", MQTT_5, unhex("b0 04 0002 00 11"), Unsuback(2, [0x11])),
    ("PINGREQ", MQTT_311, unhex("c0 00"), Pingreq()),
    ("PINGRESP", MQTT_311, unhex("d0 00"), Pingresp()),
    ("DISCONNECT 3.1.1", MQTT_311, unhex("e0 00"), Disconnect()),
    ("DISCONNECT 5 session taken over", MQTT_5, unhex("e0 01 8e"), Disconnect(0x8E)),
]


@pytest.mark.parametrize(
    ("version", "wire", "packet"),
    [case[1:] for case in SPEC_PACKETS],
    ids=[case[0] for case in SPEC_PACKETS],
)
def test_hand_assembled_packets(version: int, wire: bytes, packet: Packet) -> None:
    assert encode(packet, version) == wire
    assert decode_one(wire, version) == packet


# --------------------------------------------------------------------------- framing


def _stream() -> tuple[bytes, list[Packet]]:
    packets_in: list[Packet] = [
        Connect("incremental", MQTT_5, username="test", password=b"test"),
        Subscribe(1, [("a/#", SubscriptionOptions(1))]),
        Publish("a/b", b"x" * 300, qos=1, packet_id=2, properties={Prop.CONTENT_TYPE: "t"}),
        Pingreq(),
        Disconnect(0x04),
    ]
    # The CONNECT switches the reader to MQTT 5 for everything after it.
    data = encode(packets_in[0]) + b"".join(encode(p, MQTT_5) for p in packets_in[1:])
    return data, packets_in


def test_one_byte_at_a_time() -> None:
    data, expected = _stream()
    reader = PacketReader()
    got: list[Packet] = []
    boundaries = []
    for index in range(len(data)):
        out = reader.feed(data[index : index + 1])
        if out:
            boundaries.append(index + 1)
        got.extend(out)
    assert got == expected
    assert reader.buffered == 0
    # A packet is returned exactly when its last byte arrives, never earlier.
    ends, total = [], 0
    for packet in expected:
        total += len(encode(packet, MQTT_5))
        ends.append(total)
    assert boundaries == ends


def test_several_packets_in_one_chunk_and_a_split_header() -> None:
    data, expected = _stream()
    reader = PacketReader()
    assert reader.feed(data) == expected
    # Split inside the 2-byte remaining length of the 300-byte PUBLISH.
    publish = encode(expected[2], MQTT_5)
    assert publish[1] & 0x80
    reader = PacketReader(version=MQTT_5)
    assert reader.feed(publish[:2]) == []
    assert reader.buffered == 2
    assert reader.feed(publish[2:] + b"\xc0") == [expected[2]]
    assert reader.buffered == 1
    assert reader.feed(b"\x00") == [Pingreq()]


@pytest.mark.parametrize(
    ("remaining", "header"),
    [
        (0, "00"),
        (127, "7f"),
        (128, "8001"),
        (16_383, "ff7f"),
        (16_384, "808001"),
        (2_097_151, "ffff7f"),
        (2_097_152, "80808001"),
    ],
)
def test_remaining_length_boundaries(remaining: int, header: str) -> None:
    if remaining == 0:
        packet: Packet = Pingreq()
    else:
        packet = Publish("t", b"p" * (remaining - 3))  # 2-byte length + "t"
    wire = encode(packet)
    assert wire[1 : 1 + len(header) // 2] == bytes.fromhex(header)
    assert len(wire) == 1 + len(header) // 2 + remaining
    assert decode_one(wire) == packet


def test_varint_extremes() -> None:
    assert encode_varint(268_435_455) == b"\xff\xff\xff\x7f"
    with pytest.raises(ValueError):
        encode_varint(268_435_456)


def test_max_packet_size_refused_from_the_header_alone() -> None:
    """A client announcing a 64 KiB packet is refused before it sends (or we buffer) the body."""
    reader = PacketReader(max_packet_size=1000)
    with pytest.raises(PacketTooLarge) as info:
        reader.feed(b"\x30\x80\x80\x04")  # PUBLISH, remaining length 65536, no body yet
    assert info.value.reason_code == ReasonCode.PACKET_TOO_LARGE
    assert reader.buffered == 4
    # The limit counts the whole packet (header included): exactly at the limit is fine.
    fits = encode(Publish("t", b"x" * 994))  # 3-byte fixed header + 3-byte topic + payload
    assert len(fits) == 1000
    assert PacketReader(max_packet_size=1000).feed(fits) == [Publish("t", b"x" * 994)]
    with pytest.raises(PacketTooLarge):
        PacketReader(max_packet_size=999).feed(fits[:3])


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


def test_packets_before_garbage_are_still_returned_with_the_error() -> None:
    """A good PUBLISH and garbage in one read: the PUBLISH must not be lost with the garbage."""
    reader = PacketReader()
    reader.feed(encode(Connect("c1"), MQTT_311))
    good = encode(Publish("a/b", b"kept", 1, packet_id=7), MQTT_311)
    with pytest.raises(MalformedPacket) as info:
        reader.feed(good + b"\x00\x00")
    [packet] = info.value.decoded
    assert isinstance(packet, Publish)
    assert (packet.topic, packet.payload, packet.packet_id) == ("a/b", b"kept", 7)
