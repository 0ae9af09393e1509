"""MQTT packets for the gateway's tests: the specification's property table written out
independently of the codec's, hypothesis strategies that build every packet type valid for a
protocol version, helpers that decode exactly one packet or expect a refusal, and the fuzz
tests' mutations and chunkings.

``test_codec.py``, ``test_topics.py`` and ``test_fuzz_*.py`` share them.
"""

from __future__ import annotations

import functools

import pytest
from hypothesis import HealthCheck, settings
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
    Pingreq,
    Pingresp,
    Prop,
    Publish,
    Suback,
    Subscribe,
    SubscriptionOptions,
    Unsuback,
    Unsubscribe,
    Will,
    encode,
)

# --------------------------------------------------------------------------- the spec's table

WILL = "will"
_ACKS = (PUBACK, PUBREC, PUBREL, PUBCOMP)
# Every packet kind that carries properties ("will" for the CONNECT will block).
EVERY_KIND = frozenset(
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
    0x26: ("pair", EVERY_KIND),
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


def unhex(text: str) -> bytes:
    """Bytes written as spaced hex, the way the specification's examples show them."""
    return bytes.fromhex(text.replace(" ", ""))


def decode_one(data: bytes, version: int = MQTT_311, **kwargs: int) -> Packet:
    packets_out = PacketReader(version=version, **kwargs).feed(data)
    assert len(packets_out) == 1, packets_out
    return packets_out[0]


def malformed(data: bytes, version: int = MQTT_311) -> MalformedPacket:
    with pytest.raises(MalformedPacket) as info:
        PacketReader(version=version).feed(data)
    return info.value


# --------------------------------------------------------------------------- fuzzing

# Every hypothesis run is derandomized and database-free, so CI sees the same cases every time.
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

versions = st.sampled_from([MQTT_311, MQTT_5])

# (operation, position, byte); positions are taken modulo the data length when applied.
mutations = st.lists(
    st.tuples(
        st.sampled_from(["flip", "set", "insert", "delete", "truncate", "duplicate"]),
        st.integers(0, 1 << 16),
        st.integers(0, 255),
    ),
    max_size=4,
)
chunkings = st.lists(st.integers(1, 48), max_size=12)


def mutate(data: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    buf = bytearray(data)
    for op, position, value in ops:
        if not buf:
            buf.append(value)
            continue
        at = position % len(buf)
        if op == "flip":
            buf[at] ^= 1 << (value % 8)
        elif op == "set":
            buf[at] = value
        elif op == "insert":
            buf.insert(at, value)
        elif op == "delete":
            del buf[at]
        elif op == "truncate":
            del buf[at:]
        else:  # duplicate a slice, as a retransmitting client might
            buf[at:at] = buf[at : at + 1 + value % 16]
    return bytes(buf)


def chunk(data: bytes, sizes: list[int]) -> list[bytes]:
    out, pos = [], 0
    for size in sizes:
        if pos >= len(data):
            break
        out.append(data[pos : pos + size])
        pos += size
    if pos < len(data):
        out.append(data[pos:])
    return out


def encode_stream(version: int, items: list[Packet]) -> bytes:
    # A CONNECT is always encoded in its own protocol level, everything else in ``version``.
    return b"".join(encode(p, version) for p in items)
