"""The sans-I/O MQTT codec and the topic rules, without any socket.

Every listener, the fuzz tests and the benchmarks sit on this codec, so it is checked three
ways: round trips of every packet type (hypothesis builds them), byte-exact comparisons with
packets assembled by hand from the MQTT 3.1.1 and 5.0 specifications, and the refusals a
broker must make (each malformation has its own test and reason code).

The hypothesis strategies defined here are reused by ``test_fuzz.py``.
"""

from __future__ import annotations

import functools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra.local.gateway.codec import (
    AUTH,
    CONNACK,
    CONNECT,
    DISCONNECT,
    MQTT_5,
    MQTT_311,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
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
from infra.local.gateway.topics import (
    InvalidTopic,
    SubscriptionIndex,
    filter_matches,
    validate_topic_filter,
    validate_topic_name,
)

# --------------------------------------------------------------------------- the spec's table

WILL = "will"
_ACKS = (PUBACK, PUBREC, PUBREL, PUBCOMP)
_EVERY = frozenset(
    {CONNECT, CONNACK, PUBLISH, WILL, *_ACKS, SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK}
    | {DISCONNECT, AUTH}
)

# MQTT 5.0 section 2.2.2.2, written out independently of the codec's own table:
# property id -> (wire type, packets that may carry it).
SPEC_PROPERTIES: dict[int, tuple[str, frozenset[object]]] = {
    0x01: ("byte", frozenset({PUBLISH, WILL})),
    0x02: ("u32", frozenset({PUBLISH, WILL})),
    0x03: ("str", frozenset({PUBLISH, WILL})),
    0x08: ("str", frozenset({PUBLISH, WILL})),
    0x09: ("bin", frozenset({PUBLISH, WILL})),
    0x0B: ("varint", frozenset({PUBLISH, SUBSCRIBE})),
    0x11: ("u32", frozenset({CONNECT, CONNACK, DISCONNECT})),
    0x12: ("str", frozenset({CONNACK})),
    0x13: ("u16", frozenset({CONNACK})),
    0x15: ("str", frozenset({CONNECT, CONNACK, AUTH})),
    0x16: ("bin", frozenset({CONNECT, CONNACK, AUTH})),
    0x17: ("byte", frozenset({CONNECT})),
    0x18: ("u32", frozenset({WILL})),
    0x19: ("byte", frozenset({CONNECT})),
    0x1A: ("str", frozenset({CONNACK})),
    0x1C: ("str", frozenset({CONNACK, DISCONNECT})),
    0x1F: ("str", frozenset({CONNACK, *_ACKS, SUBACK, UNSUBACK, DISCONNECT, AUTH})),
    0x21: ("u16", frozenset({CONNECT, CONNACK})),
    0x22: ("u16", frozenset({CONNECT, CONNACK})),
    0x23: ("u16", frozenset({PUBLISH})),
    0x24: ("byte", frozenset({CONNACK})),
    0x25: ("byte", frozenset({CONNACK})),
    0x26: ("pair", _EVERY),
    0x27: ("u32", frozenset({CONNECT, CONNACK})),
    0x28: ("byte", frozenset({CONNACK})),
    0x29: ("byte", frozenset({CONNACK})),
    0x2A: ("byte", frozenset({CONNACK})),
}

# --------------------------------------------------------------------------- strategies

# MQTT strings: any Unicode scalar value except U+0000 (surrogates cannot be UTF-8 encoded).
mqtt_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=12,
)
topic_text = st.text(alphabet="ab/+#$é", min_size=1, max_size=12)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFF_FFFF)
packet_ids = st.integers(1, 0xFFFF)
small_bytes = st.binary(max_size=24)


def _property_value(pid: int) -> st.SearchStrategy[object]:
    kind = SPEC_PROPERTIES[pid][0]
    if pid == Prop.USER_PROPERTY:
        return st.lists(st.tuples(mqtt_text, mqtt_text), min_size=1, max_size=3)
    if pid == Prop.SUBSCRIPTION_IDENTIFIER:
        return st.lists(st.integers(1, 268_435_455), min_size=1, max_size=2)
    if kind == "byte":
        return st.integers(0, 1)  # every byte property is a 0/1 flag
    if pid in (Prop.RECEIVE_MAXIMUM, Prop.TOPIC_ALIAS):
        return st.integers(1, 0xFFFF)
    if pid == Prop.MAXIMUM_PACKET_SIZE:
        return st.integers(1, 0xFFFF_FFFF)
    return {"u16": u16, "u32": u32, "str": mqtt_text, "bin": small_bytes}[kind]


@functools.cache
def properties(kind: object) -> st.SearchStrategy[dict[int, object]]:
    """Any valid property set for ``kind`` (a packet type or ``"will"``)."""
    allowed = {pid: _property_value(pid) for pid, (_, kinds) in SPEC_PROPERTIES.items()}
    optional = {pid: value for pid, value in allowed.items() if kind in SPEC_PROPERTIES[pid][1]}

    def fix(props: dict[int, object]) -> dict[int, object]:
        # Authentication data is only valid next to an authentication method.
        if Prop.AUTHENTICATION_DATA in props and Prop.AUTHENTICATION_METHOD not in props:
            props[Prop.AUTHENTICATION_METHOD] = "SCRAM-SHA-1"
        return props

    return st.fixed_dictionaries({}, optional=optional).map(fix)  # type: ignore[arg-type]


@functools.cache
def _props(version: int, kind: object) -> st.SearchStrategy[dict[int, object]]:
    return properties(kind) if version == MQTT_5 else st.just({})


@st.composite
def connects(draw: st.DrawFn, version: int) -> Connect:
    will = None
    if draw(st.booleans()):
        will = Will(
            draw(topic_text),
            draw(small_bytes),
            draw(st.integers(0, 2)),
            draw(st.booleans()),
            draw(_props(version, WILL)),
        )
    username = draw(st.none() | mqtt_text)
    # MQTT 3.1.1 forbids a password without a user name; MQTT 5 allows it.
    password = draw(st.none() | small_bytes) if username is not None or version == MQTT_5 else None
    return Connect(
        client_id=draw(mqtt_text),
        protocol_level=version,
        clean_start=draw(st.booleans()),
        keep_alive=draw(u16),
        will=will,
        username=username,
        password=password,
        properties=draw(_props(version, CONNECT)),
    )


@st.composite
def publishes(draw: st.DrawFn, version: int) -> Publish:
    qos = draw(st.integers(0, 2))
    return Publish(
        topic=draw(topic_text),
        payload=draw(st.binary(max_size=64)),
        qos=qos,
        retain=draw(st.booleans()),
        dup=draw(st.booleans()) if qos else False,
        packet_id=draw(packet_ids) if qos else None,
        properties=draw(_props(version, PUBLISH)),
    )


@st.composite
def acks(draw: st.DrawFn, version: int) -> Ack:
    ptype = draw(st.sampled_from(_ACKS))
    if version == MQTT_5:
        return Ack(ptype, draw(packet_ids), draw(st.integers(0, 255)), draw(properties(ptype)))
    return Ack(ptype, draw(packet_ids))


@st.composite
def subscribes(draw: st.DrawFn, version: int) -> Subscribe:
    if version == MQTT_5:
        options = st.builds(
            SubscriptionOptions,
            st.integers(0, 2),
            st.booleans(),
            st.booleans(),
            st.integers(0, 2),
        )
    else:
        options = st.builds(SubscriptionOptions, st.integers(0, 2))
    subs = draw(st.lists(st.tuples(topic_text, options), min_size=1, max_size=4))
    props = draw(_props(version, SUBSCRIBE))
    if Prop.SUBSCRIPTION_IDENTIFIER in props:  # at most one in a SUBSCRIBE
        props[Prop.SUBSCRIPTION_IDENTIFIER] = props[Prop.SUBSCRIPTION_IDENTIFIER][:1]  # type: ignore[index]
    return Subscribe(draw(packet_ids), subs, props)


@functools.cache
def packets(version: int) -> st.SearchStrategy[Packet]:
    """Every packet type either side may send, valid for ``version``."""
    reason = st.integers(0, 255)
    codes = st.lists(reason, max_size=4)
    v5 = version == MQTT_5
    options: list[st.SearchStrategy[Packet]] = [
        connects(version),
        st.builds(Connack, st.booleans(), reason, _props(version, CONNACK)),
        publishes(version),
        acks(version),
        subscribes(version),
        st.builds(Suback, packet_ids, codes, _props(version, SUBACK)),
        st.builds(
            Unsubscribe,
            packet_ids,
            st.lists(topic_text, min_size=1, max_size=4),
            _props(version, UNSUBSCRIBE),
        ),
        # MQTT 3.1.1's UNSUBACK carries no reason codes.
        st.builds(Unsuback, packet_ids, codes if v5 else st.just([]), _props(version, UNSUBACK)),
        st.just(Pingreq()),
        st.just(Pingresp()),
        st.builds(Disconnect, reason if v5 else st.just(0), _props(version, DISCONNECT)),
    ]
    if v5:
        options.append(st.builds(Auth, reason, properties(AUTH)))
    return st.one_of(options)


versioned_packets = st.sampled_from([MQTT_311, MQTT_5]).flatmap(
    lambda v: st.tuples(st.just(v), packets(v))
)


def decode_one(data: bytes, version: int = MQTT_311, **kwargs: int) -> Packet:
    packets_out = PacketReader(version=version, **kwargs).feed(data)
    assert len(packets_out) == 1, packets_out
    return packets_out[0]


def malformed(data: bytes, version: int = MQTT_311) -> MalformedPacket:
    with pytest.raises(MalformedPacket) as info:
        PacketReader(version=version).feed(data)
    return info.value


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


def _hex(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


SPEC_PACKETS: list[tuple[str, int, bytes, Packet]] = [
    (
        "CONNECT 3.1.1, clean session, user name and password",
        MQTT_311,
        _hex("10 1b 0004 4d515454 04 c2 003c 0003 616263 0004 74657374 0004 74657374"),
        Connect(
            "abc", MQTT_311, clean_start=True, keep_alive=60, username="test", password=b"test"
        ),
    ),
    (
        "CONNECT 5 with session expiry and a QoS 1 will with a delay",
        MQTT_5,
        # flags 0x0e: clean start, will, will QoS 1; will properties: delay 5 s
        _hex(
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
        _hex("32 18 0003 612f62 000a 0e 01 01 02 0000001e 26 0001 6b 0001 76 6869"),
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
        _hex("31 07 0003 612f62 6869"),
        Publish("a/b", b"hi", retain=True),
    ),
    (
        "SUBACK 3.1.1 granting QoS 1 and refusing one filter",
        MQTT_311,
        _hex("90 04 0102 01 80"),
        Suback(0x0102, [1, 0x80]),
    ),
    (
        "SUBACK 5 with quota exceeded",
        MQTT_5,
        _hex("90 05 0102 00 00 97"),
        Suback(0x0102, [0, 0x97]),
    ),
    (
        "CONNACK 5 with a server keep-alive",
        MQTT_5,
        _hex("20 06 00 00 03 13 001e"),
        Connack(False, 0, {Prop.SERVER_KEEP_ALIVE: 30}),
    ),
    ("CONNACK 3.1.1 identifier rejected", MQTT_311, _hex("20 02 00 02"), Connack(False, 2)),
    ("PUBACK 5 quota exceeded", MQTT_5, _hex("40 03 000a 97"), Ack(PUBACK, 10, 0x97)),
    ("PUBACK 3.1.1", MQTT_311, _hex("40 02 000a"), Ack(PUBACK, 10)),
    ("PUBREL (flags 0x2)", MQTT_311, _hex("62 02 0001"), Ack(PUBREL, 1)),
    (
        "SUBSCRIBE 3.1.1 two filters",
        MQTT_311,
        _hex("82 0c 0001 0003 612f2b 01 0001 23 00"),
        Subscribe(1, [("a/+", SubscriptionOptions(1)), ("#", SubscriptionOptions(0))]),
    ),
    (
        "SUBSCRIBE 5 no-local, retain-as-published, retain handling 2",
        MQTT_5,
        _hex("82 07 0001 00 0001 61 2d"),
        Subscribe(1, [("a", SubscriptionOptions(1, True, True, 2))]),
    ),
    ("UNSUBSCRIBE 3.1.1", MQTT_311, _hex("a2 05 0002 0001 61"), Unsubscribe(2, ["a"])),
    ("UNSUBACK 5", MQTT_5, _hex("b0 04 0002 00 11"), Unsuback(2, [0x11])),
    ("PINGREQ", MQTT_311, _hex("c0 00"), Pingreq()),
    ("PINGRESP", MQTT_311, _hex("d0 00"), Pingresp()),
    ("DISCONNECT 3.1.1", MQTT_311, _hex("e0 00"), Disconnect()),
    ("DISCONNECT 5 session taken over", MQTT_5, _hex("e0 01 8e"), Disconnect(0x8E)),
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
    ("topic is not UTF-8", MQTT_311, _hex("30 04 0002 ff61"), MALFORMED),
    ("topic holds a surrogate", MQTT_311, _hex("30 05 0003 eda080"), MALFORMED),
    ("U+0000 in the topic", MQTT_311, _hex("30 05 0003 610062"), MALFORMED),
    (
        "U+0000 in the client id",
        MQTT_311,
        _hex("10 0e 0004 4d515454 04 02 003c 0002 6100"),
        MALFORMED,
    ),
    ("PUBLISH QoS 3", MQTT_311, _hex("36 05 0001 61 0001"), MALFORMED),
    ("DUP on a QoS 0 PUBLISH", MQTT_311, _hex("38 03 0001 61"), MALFORMED),
    ("SUBSCRIBE with flags 0", MQTT_311, _hex("80 06 0001 0001 61 00"), MALFORMED),
    ("PUBREL with flags 0", MQTT_311, _hex("60 02 0001"), MALFORMED),
    ("PUBACK with flags 2", MQTT_311, _hex("42 02 0001"), MALFORMED),
    ("PINGREQ with flags 1", MQTT_311, _hex("c1 00"), MALFORMED),
    ("PINGREQ with a body", MQTT_311, _hex("c0 01 00"), MALFORMED),
    ("CONNECT reserved flag", MQTT_311, _hex("10 0d 0004 4d515454 04 03 003c 0001 61"), MALFORMED),
    (
        "will QoS 3",
        MQTT_311,
        _hex("10 12 0004 4d515454 04 1e 003c 0001 61 0001 77 0000"),
        MALFORMED,
    ),
    (
        "will retain without a will",
        MQTT_311,
        _hex("10 0d 0004 4d515454 04 22 003c 0001 61"),
        MALFORMED,
    ),
    ("subscription QoS 3", MQTT_311, _hex("82 06 0001 0001 61 03"), MALFORMED),
    ("subscription reserved bits", MQTT_5, _hex("82 07 0001 00 0001 61 c0"), MALFORMED),
    ("PUBLISH QoS 1 packet id 0", MQTT_311, _hex("32 05 0001 61 0000"), MALFORMED),
    ("SUBSCRIBE packet id 0", MQTT_311, _hex("82 06 0000 0001 61 00"), MALFORMED),
    ("UNSUBSCRIBE packet id 0", MQTT_311, _hex("a2 05 0000 0001 61"), MALFORMED),
    ("SUBSCRIBE without filters", MQTT_311, _hex("82 02 0001"), PROTOCOL),
    ("string longer than the packet", MQTT_311, _hex("30 03 0009 61"), MALFORMED),
    (
        "trailing bytes after CONNECT",
        MQTT_311,
        _hex("10 0e 0004 4d515454 04 02 003c 0001 61 00"),
        MALFORMED,
    ),
    (
        "duplicate payload format indicator",
        MQTT_5,
        _hex("30 08 0001 61 04 0101 0101"),
        PROTOCOL,
    ),
    (
        "session expiry (a CONNECT property) in a PUBLISH",
        MQTT_5,
        _hex("30 09 0001 61 05 11 0000003c"),
        MALFORMED,
    ),
    ("unknown property 0x7f", MQTT_5, _hex("30 06 0001 61 02 7f00"), MALFORMED),
    ("payload format indicator 2", MQTT_5, _hex("30 06 0001 61 02 0102"), PROTOCOL),
    ("property length beyond the packet", MQTT_5, _hex("30 05 0001 61 09 01"), MALFORMED),
    ("remaining length of 5 bytes", MQTT_311, _hex("30 ff ff ff ff 7f"), MALFORMED),
    ("reserved packet type 0", MQTT_311, _hex("00 00"), MALFORMED),
    ("AUTH in MQTT 3.1.1", MQTT_311, _hex("f0 00"), MALFORMED),
    ("reason codes in an MQTT 3.1.1 UNSUBACK", MQTT_311, _hex("b0 03 0001 00"), MALFORMED),
    (
        "protocol level 3 (MQTT 3.1)",
        MQTT_311,
        _hex("10 0f 0006 4d5149736470 03 02 003c 0001 61"),
        ReasonCode.UNSUPPORTED_PROTOCOL_VERSION,
    ),
    (
        "protocol name MQTX",
        MQTT_311,
        _hex("10 0d 0004 4d515458 04 02 003c 0001 61"),
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
    for kind in sorted(_EVERY, key=str):
        wire, version = _with_property(kind, pid)
        if kind in SPEC_PROPERTIES[pid][1]:
            decode_one(wire, version)
        else:
            # MQTT 5 2.2.2.2: an identifier not valid for its packet type is a Malformed Packet.
            assert malformed(wire, version).reason_code == MALFORMED, (kind, hex(pid))


def test_auth_data_without_method_is_a_protocol_error() -> None:
    wire = encode(Connect("c", MQTT_5, properties={Prop.AUTHENTICATION_DATA: b"x"}))
    assert malformed(wire).reason_code == PROTOCOL


# --------------------------------------------------------------------------- topics


@pytest.mark.parametrize(
    "topic",
    [
        "a",
        "a/b/c/d/e/f/g/h",  # 7 slashes, 8 levels
        "x" * 256,
        "é" * 128,  # 256 bytes of UTF-8
        "/",
        "$aws/rules/myrule/a/b/c/d/e/f/g/h",  # Basic Ingest prefix does not count
        "chat/out",
    ],
)
def test_valid_topic_names(topic: str) -> None:
    validate_topic_name(topic)


@pytest.mark.parametrize(
    "topic",
    [
        "",
        "a/b/c/d/e/f/g/h/i",  # 8 slashes
        "/a/b/c/d/e/f/g/",  # 8 slashes, empty levels count too
        "x" * 257,
        "é" * 128 + "x",  # 128 characters but 257 bytes
        "$aws/rules/myrule/a/b/c/d/e/f/g/h/i",
        "$aws/other/r/a/b/c/d/e/f/g/h",  # only $aws/rules/<rule>/ is exempt
        "a/+",
        "a/#",
        "a+b",
    ],
)
def test_invalid_topic_names(topic: str) -> None:
    with pytest.raises(InvalidTopic):
        validate_topic_name(topic)


@pytest.mark.parametrize(
    "topic_filter",
    ["#", "+", "a/+/c", "a/#", "+/+/+", "/+", "$aws/events/presence/+/+", "a/b/c/d/e/f/g/#"],
)
def test_valid_topic_filters(topic_filter: str) -> None:
    validate_topic_filter(topic_filter)


@pytest.mark.parametrize(
    "topic_filter",
    [
        "",
        "a#",
        "a/#/b",
        "#/a",
        "a+",
        "a/b+/c",
        "++",
        "a/b/c/d/e/f/g/h/#",  # 8 slashes
        "+" + "/+" * 8,
        "é" * 129,
    ],
)
def test_invalid_topic_filters(topic_filter: str) -> None:
    with pytest.raises(InvalidTopic):
        validate_topic_filter(topic_filter)


def test_custom_limits_are_honoured() -> None:
    validate_topic_name("a/b/c", max_slashes=2)
    with pytest.raises(InvalidTopic):
        validate_topic_name("a/b/c/d", max_slashes=2)
    with pytest.raises(InvalidTopic):
        validate_topic_filter("abcdef", max_bytes=5)


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("a/#", "a", True),  # MQTT: '#' also matches the parent level
        ("a/#", "a/b/c", True),
        ("a/+", "a", False),
        ("a/+", "a/", True),
        ("+/+", "/", True),
        ("+", "a/b", False),
        ("#", "$aws/events/presence/connected/x", False),
        ("+/events/#", "$aws/events/x", False),
        ("$aws/#", "$aws/events/x", True),
        ("$aws/events/presence/+/+", "$aws/events/presence/connected/c1", True),
        ("A", "a", False),  # case-sensitive
    ],
)
def test_filter_matching_examples(topic_filter: str, topic: str, expected: bool) -> None:
    assert filter_matches(topic_filter, topic) is expected
    index: SubscriptionIndex[int] = SubscriptionIndex()
    index.add(topic_filter, "k", 1)
    assert bool(list(index.match(topic))) is expected


level = st.sampled_from(["a", "b", "", "$x", "é"])
first_level = st.sampled_from(["a", "b", "", "$aws", "$x"])


@st.composite
def topics(draw: st.DrawFn) -> str:
    return "/".join([draw(first_level), *draw(st.lists(level, max_size=4))])


@st.composite
def filters(draw: st.DrawFn) -> str:
    levels = [draw(first_level | st.just("+"))]
    levels += draw(st.lists(level | st.just("+"), max_size=4))
    if draw(st.booleans()):
        levels.append("#")
    return "/".join(levels)


@settings(
    max_examples=400,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(filters() | st.just("#"), max_size=25), st.lists(topics(), min_size=1, max_size=8))
def test_index_agrees_with_filter_matches(topic_filters: list[str], topic_list: list[str]) -> None:
    index: SubscriptionIndex[str] = SubscriptionIndex()
    for number, topic_filter in enumerate(topic_filters):
        index.add(topic_filter, number, topic_filter)
    for topic in topic_list:
        expected = {n for n, f in enumerate(topic_filters) if filter_matches(f, topic)}
        found = [key for key, _ in index.match(topic)]
        assert len(found) == len(set(found)), "a subscription matched twice"
        assert set(found) == expected, topic
        if topic.startswith("$"):
            assert not any(topic_filters[n][:1] in ("+", "#") for n in found)
    # Removing everything leaves an empty index that matches nothing.
    for number, topic_filter in enumerate(topic_filters):
        assert index.remove(topic_filter, number)
    assert len(index) == 0
    assert all(not list(index.match(t)) for t in topic_list)


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
