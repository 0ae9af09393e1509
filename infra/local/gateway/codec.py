"""Sans-I/O MQTT 3.1.1 and 5.0 codec: bytes in, packet objects out, and back.

Nothing here touches a socket or a clock, so the same code serves TCP, TLS and WebSocket
listeners, the fuzz tests and the benchmarks. Every decoding failure surfaces as
:class:`MalformedPacket` carrying the MQTT 5 reason code the gateway should answer with.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

# Packet types (fixed header, high nibble).
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = range(8, 16)

MQTT_311 = 4
MQTT_5 = 5

PACKET_NAMES = {
    CONNECT: "CONNECT",
    CONNACK: "CONNACK",
    PUBLISH: "PUBLISH",
    PUBACK: "PUBACK",
    PUBREC: "PUBREC",
    PUBREL: "PUBREL",
    PUBCOMP: "PUBCOMP",
    SUBSCRIBE: "SUBSCRIBE",
    SUBACK: "SUBACK",
    UNSUBSCRIBE: "UNSUBSCRIBE",
    UNSUBACK: "UNSUBACK",
    PINGREQ: "PINGREQ",
    PINGRESP: "PINGRESP",
    DISCONNECT: "DISCONNECT",
    AUTH: "AUTH",
}


class ReasonCode:
    """MQTT 5 reason codes the gateway uses (names follow the specification)."""

    SUCCESS = 0x00
    GRANTED_QOS_1 = 0x01
    DISCONNECT_WITH_WILL = 0x04
    NO_MATCHING_SUBSCRIBERS = 0x10
    NO_SUBSCRIPTION_EXISTED = 0x11
    UNSPECIFIED_ERROR = 0x80
    MALFORMED_PACKET = 0x81
    PROTOCOL_ERROR = 0x82
    IMPLEMENTATION_SPECIFIC_ERROR = 0x83
    UNSUPPORTED_PROTOCOL_VERSION = 0x84
    CLIENT_IDENTIFIER_NOT_VALID = 0x85
    BAD_USER_NAME_OR_PASSWORD = 0x86
    NOT_AUTHORIZED = 0x87
    SERVER_UNAVAILABLE = 0x88
    SERVER_BUSY = 0x89
    BANNED = 0x8A
    SERVER_SHUTTING_DOWN = 0x8B
    BAD_AUTHENTICATION_METHOD = 0x8C
    KEEP_ALIVE_TIMEOUT = 0x8D
    SESSION_TAKEN_OVER = 0x8E
    TOPIC_FILTER_INVALID = 0x8F
    TOPIC_NAME_INVALID = 0x90
    PACKET_IDENTIFIER_IN_USE = 0x91
    PACKET_IDENTIFIER_NOT_FOUND = 0x92
    RECEIVE_MAXIMUM_EXCEEDED = 0x93
    TOPIC_ALIAS_INVALID = 0x94
    PACKET_TOO_LARGE = 0x95
    MESSAGE_RATE_TOO_HIGH = 0x96
    QUOTA_EXCEEDED = 0x97
    ADMINISTRATIVE_ACTION = 0x98
    PAYLOAD_FORMAT_INVALID = 0x99
    RETAIN_NOT_SUPPORTED = 0x9A
    QOS_NOT_SUPPORTED = 0x9B
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E
    CONNECTION_RATE_EXCEEDED = 0x9F
    SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1
    WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2


class ConnackCode311:
    """MQTT 3.1.1 CONNACK return codes."""

    ACCEPTED = 0
    UNACCEPTABLE_PROTOCOL_VERSION = 1
    IDENTIFIER_REJECTED = 2
    SERVER_UNAVAILABLE = 3
    BAD_USERNAME_OR_PASSWORD = 4
    NOT_AUTHORIZED = 5


SUBACK_FAILURE_311 = 0x80


class Prop:
    """MQTT 5 property identifiers."""

    PAYLOAD_FORMAT_INDICATOR = 0x01
    MESSAGE_EXPIRY_INTERVAL = 0x02
    CONTENT_TYPE = 0x03
    RESPONSE_TOPIC = 0x08
    CORRELATION_DATA = 0x09
    SUBSCRIPTION_IDENTIFIER = 0x0B
    SESSION_EXPIRY_INTERVAL = 0x11
    ASSIGNED_CLIENT_IDENTIFIER = 0x12
    SERVER_KEEP_ALIVE = 0x13
    AUTHENTICATION_METHOD = 0x15
    AUTHENTICATION_DATA = 0x16
    REQUEST_PROBLEM_INFORMATION = 0x17
    WILL_DELAY_INTERVAL = 0x18
    REQUEST_RESPONSE_INFORMATION = 0x19
    RESPONSE_INFORMATION = 0x1A
    SERVER_REFERENCE = 0x1C
    REASON_STRING = 0x1F
    RECEIVE_MAXIMUM = 0x21
    TOPIC_ALIAS_MAXIMUM = 0x22
    TOPIC_ALIAS = 0x23
    MAXIMUM_QOS = 0x24
    RETAIN_AVAILABLE = 0x25
    USER_PROPERTY = 0x26
    MAXIMUM_PACKET_SIZE = 0x27
    WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28
    SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29
    SHARED_SUBSCRIPTION_AVAILABLE = 0x2A


# Property id -> wire type. "byte", "u16", "u32", "varint", "str", "bin", "pair".
_PROPERTY_TYPES: dict[int, str] = {
    Prop.PAYLOAD_FORMAT_INDICATOR: "byte",
    Prop.MESSAGE_EXPIRY_INTERVAL: "u32",
    Prop.CONTENT_TYPE: "str",
    Prop.RESPONSE_TOPIC: "str",
    Prop.CORRELATION_DATA: "bin",
    Prop.SUBSCRIPTION_IDENTIFIER: "varint",
    Prop.SESSION_EXPIRY_INTERVAL: "u32",
    Prop.ASSIGNED_CLIENT_IDENTIFIER: "str",
    Prop.SERVER_KEEP_ALIVE: "u16",
    Prop.AUTHENTICATION_METHOD: "str",
    Prop.AUTHENTICATION_DATA: "bin",
    Prop.REQUEST_PROBLEM_INFORMATION: "byte",
    Prop.WILL_DELAY_INTERVAL: "u32",
    Prop.REQUEST_RESPONSE_INFORMATION: "byte",
    Prop.RESPONSE_INFORMATION: "str",
    Prop.SERVER_REFERENCE: "str",
    Prop.REASON_STRING: "str",
    Prop.RECEIVE_MAXIMUM: "u16",
    Prop.TOPIC_ALIAS_MAXIMUM: "u16",
    Prop.TOPIC_ALIAS: "u16",
    Prop.MAXIMUM_QOS: "byte",
    Prop.RETAIN_AVAILABLE: "byte",
    Prop.USER_PROPERTY: "pair",
    Prop.MAXIMUM_PACKET_SIZE: "u32",
    Prop.WILDCARD_SUBSCRIPTION_AVAILABLE: "byte",
    Prop.SUBSCRIPTION_IDENTIFIER_AVAILABLE: "byte",
    Prop.SHARED_SUBSCRIPTION_AVAILABLE: "byte",
}

# Which properties each packet may carry (the "will" pseudo-type is the CONNECT will block).
_P = Prop
_ALLOWED: dict[int | str, frozenset[int]] = {
    CONNECT: frozenset(
        {
            _P.SESSION_EXPIRY_INTERVAL,
            _P.AUTHENTICATION_METHOD,
            _P.AUTHENTICATION_DATA,
            _P.REQUEST_PROBLEM_INFORMATION,
            _P.REQUEST_RESPONSE_INFORMATION,
            _P.RECEIVE_MAXIMUM,
            _P.TOPIC_ALIAS_MAXIMUM,
            _P.USER_PROPERTY,
            _P.MAXIMUM_PACKET_SIZE,
        }
    ),
    "will": frozenset(
        {
            _P.PAYLOAD_FORMAT_INDICATOR,
            _P.MESSAGE_EXPIRY_INTERVAL,
            _P.CONTENT_TYPE,
            _P.RESPONSE_TOPIC,
            _P.CORRELATION_DATA,
            _P.WILL_DELAY_INTERVAL,
            _P.USER_PROPERTY,
        }
    ),
    CONNACK: frozenset(
        {
            _P.SESSION_EXPIRY_INTERVAL,
            _P.ASSIGNED_CLIENT_IDENTIFIER,
            _P.SERVER_KEEP_ALIVE,
            _P.AUTHENTICATION_METHOD,
            _P.AUTHENTICATION_DATA,
            _P.RESPONSE_INFORMATION,
            _P.SERVER_REFERENCE,
            _P.REASON_STRING,
            _P.RECEIVE_MAXIMUM,
            _P.TOPIC_ALIAS_MAXIMUM,
            _P.MAXIMUM_QOS,
            _P.RETAIN_AVAILABLE,
            _P.USER_PROPERTY,
            _P.MAXIMUM_PACKET_SIZE,
            _P.WILDCARD_SUBSCRIPTION_AVAILABLE,
            _P.SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            _P.SHARED_SUBSCRIPTION_AVAILABLE,
        }
    ),
    PUBLISH: frozenset(
        {
            _P.PAYLOAD_FORMAT_INDICATOR,
            _P.MESSAGE_EXPIRY_INTERVAL,
            _P.CONTENT_TYPE,
            _P.RESPONSE_TOPIC,
            _P.CORRELATION_DATA,
            _P.SUBSCRIPTION_IDENTIFIER,
            _P.TOPIC_ALIAS,
            _P.USER_PROPERTY,
        }
    ),
    PUBACK: frozenset({_P.REASON_STRING, _P.USER_PROPERTY}),
    PUBREC: frozenset({_P.REASON_STRING, _P.USER_PROPERTY}),
    PUBREL: frozenset({_P.REASON_STRING, _P.USER_PROPERTY}),
    PUBCOMP: frozenset({_P.REASON_STRING, _P.USER_PROPERTY}),
    SUBSCRIBE: frozenset({_P.SUBSCRIPTION_IDENTIFIER, _P.USER_PROPERTY}),
    SUBACK: frozenset({_P.REASON_STRING, _P.USER_PROPERTY}),
    UNSUBSCRIBE: frozenset({_P.USER_PROPERTY}),
    UNSUBACK: frozenset({_P.REASON_STRING, _P.USER_PROPERTY}),
    DISCONNECT: frozenset(
        {
            _P.SESSION_EXPIRY_INTERVAL,
            _P.REASON_STRING,
            _P.USER_PROPERTY,
            _P.SERVER_REFERENCE,
        }
    ),
    AUTH: frozenset(
        {
            _P.AUTHENTICATION_METHOD,
            _P.AUTHENTICATION_DATA,
            _P.REASON_STRING,
            _P.USER_PROPERTY,
        }
    ),
}

# Properties that may repeat: user properties always, subscription identifiers in PUBLISH.
_REPEATABLE = frozenset({Prop.USER_PROPERTY, Prop.SUBSCRIPTION_IDENTIFIER})

Properties = dict[int, Any]
"""Property id -> value; USER_PROPERTY maps to a list of (key, value), SUBSCRIPTION_IDENTIFIER
to a list of ints, everything else to a single int, str or bytes."""


class MalformedPacket(Exception):
    """The peer sent bytes that are not a valid MQTT packet; close the connection."""

    def __init__(self, message: str, reason_code: int = ReasonCode.MALFORMED_PACKET) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        # Whole packets that arrived before the bad bytes; the broker still handles them.
        self.decoded: list[Packet] = []


class ProtocolError(MalformedPacket):
    """Well-formed bytes that break a protocol rule."""

    def __init__(self, message: str, reason_code: int = ReasonCode.PROTOCOL_ERROR) -> None:
        super().__init__(message, reason_code)


class PacketTooLarge(MalformedPacket):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"packet of {size} bytes exceeds {limit}", ReasonCode.PACKET_TOO_LARGE)


# --------------------------------------------------------------------------- packets


@dataclass(slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: Properties = field(default_factory=dict)


@dataclass(slots=True)
class Connect:
    client_id: str
    protocol_level: int = MQTT_311
    protocol_name: str = "MQTT"
    clean_start: bool = True
    keep_alive: int = 60
    will: Will | None = None
    username: str | None = None
    password: bytes | None = None
    properties: Properties = field(default_factory=dict)
    type: int = CONNECT


@dataclass(slots=True)
class Connack:
    session_present: bool = False
    reason_code: int = 0
    properties: Properties = field(default_factory=dict)
    type: int = CONNACK


@dataclass(slots=True)
class Publish:
    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None
    properties: Properties = field(default_factory=dict)
    type: int = PUBLISH


@dataclass(slots=True)
class Ack:
    """PUBACK, PUBREC, PUBREL or PUBCOMP: a packet id plus (MQTT 5) a reason code."""

    type: int
    packet_id: int
    reason_code: int = 0
    properties: Properties = field(default_factory=dict)


@dataclass(slots=True)
class SubscriptionOptions:
    qos: int = 0
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0


@dataclass(slots=True)
class Subscribe:
    packet_id: int
    subscriptions: list[tuple[str, SubscriptionOptions]]
    properties: Properties = field(default_factory=dict)
    type: int = SUBSCRIBE


@dataclass(slots=True)
class Suback:
    packet_id: int
    reason_codes: list[int]
    properties: Properties = field(default_factory=dict)
    type: int = SUBACK


@dataclass(slots=True)
class Unsubscribe:
    packet_id: int
    topic_filters: list[str]
    properties: Properties = field(default_factory=dict)
    type: int = UNSUBSCRIBE


@dataclass(slots=True)
class Unsuback:
    packet_id: int
    reason_codes: list[int] = field(default_factory=list)
    properties: Properties = field(default_factory=dict)
    type: int = UNSUBACK


@dataclass(slots=True)
class Pingreq:
    type: int = PINGREQ


@dataclass(slots=True)
class Pingresp:
    type: int = PINGRESP


@dataclass(slots=True)
class Disconnect:
    reason_code: int = 0
    properties: Properties = field(default_factory=dict)
    type: int = DISCONNECT


@dataclass(slots=True)
class Auth:
    reason_code: int = 0
    properties: Properties = field(default_factory=dict)
    type: int = AUTH


Packet = (
    Connect
    | Connack
    | Publish
    | Ack
    | Subscribe
    | Suback
    | Unsubscribe
    | Unsuback
    | Pingreq
    | Pingresp
    | Disconnect
    | Auth
)

# --------------------------------------------------------------------------- primitives

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


def encode_varint(value: int) -> bytes:
    if value < 128:
        return bytes((value,))
    if value > 268_435_455:
        raise ValueError("variable byte integer out of range")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_str(value: str) -> bytes:
    data = value.encode("utf-8")
    if len(data) > 0xFFFF:
        raise ValueError("string longer than 65535 bytes")
    return _U16.pack(len(data)) + data


def encode_bin(value: bytes) -> bytes:
    if len(value) > 0xFFFF:
        raise ValueError("binary data longer than 65535 bytes")
    return _U16.pack(len(value)) + value


class _Cursor:
    """Bounds-checked reader over one packet's variable header and payload."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes | memoryview, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def remaining(self) -> int:
        return self.end - self.pos

    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise MalformedPacket("packet shorter than its fields")
        chunk = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return chunk

    def byte(self) -> int:
        if self.pos >= self.end:
            raise MalformedPacket("packet shorter than its fields")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def u16(self) -> int:
        return _U16.unpack(self._take(2))[0]

    def u32(self) -> int:
        return _U32.unpack(self._take(4))[0]

    def varint(self) -> int:
        value = 0
        for shift in (0, 7, 14, 21):
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
        raise MalformedPacket("variable byte integer longer than 4 bytes")

    def binary(self) -> bytes:
        return self._take(self.u16())

    def string(self) -> str:
        return decode_utf8(self._take(self.u16()))

    def rest(self) -> bytes:
        return self._take(self.end - self.pos)


def decode_utf8(data: bytes) -> str:
    """MQTT strings: well-formed UTF-8 with no U+0000 (MQTT 5 1.5.4)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedPacket("string is not valid UTF-8") from exc
    if "\x00" in text:
        raise MalformedPacket("string contains U+0000")
    return text


# --------------------------------------------------------------------------- properties


def _decode_properties(cur: _Cursor, packet_kind: int | str) -> Properties:
    length = cur.varint()
    if length > cur.remaining():
        raise MalformedPacket("property length exceeds packet")
    end = cur.pos + length
    sub = _Cursor(cur.data, cur.pos, end)
    cur.pos = end
    props: Properties = {}
    allowed = _ALLOWED[packet_kind]
    while sub.remaining():
        pid = sub.varint()
        kind = _PROPERTY_TYPES.get(pid)
        if kind is None or pid not in allowed:
            # MQTT 5 2.2.2.2: an identifier not valid for the packet type is a Malformed Packet.
            raise MalformedPacket(f"property 0x{pid:02x} not allowed here")
        if kind == "byte":
            value: Any = sub.byte()
        elif kind == "u16":
            value = sub.u16()
        elif kind == "u32":
            value = sub.u32()
        elif kind == "varint":
            value = sub.varint()
        elif kind == "str":
            value = sub.string()
        elif kind == "bin":
            value = sub.binary()
        else:
            value = (sub.string(), sub.string())
        if pid in _REPEATABLE:
            props.setdefault(pid, []).append(value)
        elif pid in props:
            raise ProtocolError(f"property 0x{pid:02x} appears twice")
        else:
            props[pid] = value
    _check_property_values(props)
    return props


def _check_property_values(props: Properties) -> None:
    for pid in (
        Prop.PAYLOAD_FORMAT_INDICATOR,
        Prop.REQUEST_PROBLEM_INFORMATION,
        Prop.REQUEST_RESPONSE_INFORMATION,
        Prop.MAXIMUM_QOS,
        Prop.RETAIN_AVAILABLE,
        Prop.WILDCARD_SUBSCRIPTION_AVAILABLE,
        Prop.SUBSCRIPTION_IDENTIFIER_AVAILABLE,
        Prop.SHARED_SUBSCRIPTION_AVAILABLE,
    ):
        if pid in props and props[pid] > 1:
            raise ProtocolError(f"property 0x{pid:02x} must be 0 or 1")
    for pid in (Prop.RECEIVE_MAXIMUM, Prop.MAXIMUM_PACKET_SIZE):
        if props.get(pid) == 0:
            raise ProtocolError(f"property 0x{pid:02x} must not be 0")
    if Prop.SUBSCRIPTION_IDENTIFIER in props and 0 in props[Prop.SUBSCRIPTION_IDENTIFIER]:
        raise ProtocolError("subscription identifier 0")
    if Prop.AUTHENTICATION_DATA in props and Prop.AUTHENTICATION_METHOD not in props:
        raise ProtocolError("authentication data without method")


def encode_properties(props: Properties | None) -> bytes:
    if not props:
        return b"\x00"
    out = bytearray()
    for pid, value in props.items():
        kind = _PROPERTY_TYPES[pid]
        values = value if pid in _REPEATABLE else (value,)
        for item in values:
            out += encode_varint(pid)
            if kind == "byte":
                out.append(item)
            elif kind == "u16":
                out += _U16.pack(item)
            elif kind == "u32":
                out += _U32.pack(item)
            elif kind == "varint":
                out += encode_varint(item)
            elif kind == "str":
                out += encode_str(item)
            elif kind == "bin":
                out += encode_bin(item)
            else:
                out += encode_str(item[0]) + encode_str(item[1])
    return encode_varint(len(out)) + bytes(out)


# --------------------------------------------------------------------------- decoding


def _decode_connect(cur: _Cursor, flags: int) -> Connect:
    if flags != 0:
        raise MalformedPacket("CONNECT fixed-header flags must be 0")
    protocol_name = cur.string()
    level = cur.byte()
    if protocol_name != "MQTT" or level not in (MQTT_311, MQTT_5):
        raise ProtocolError(
            f"unsupported protocol {protocol_name!r} level {level}",
            ReasonCode.UNSUPPORTED_PROTOCOL_VERSION,
        )
    connect_flags = cur.byte()
    if connect_flags & 0x01:
        raise MalformedPacket("CONNECT reserved flag set")
    clean = bool(connect_flags & 0x02)
    will_flag = bool(connect_flags & 0x04)
    will_qos = (connect_flags >> 3) & 0x03
    will_retain = bool(connect_flags & 0x20)
    has_password = bool(connect_flags & 0x40)
    has_username = bool(connect_flags & 0x80)
    if not will_flag and (will_qos or will_retain):
        raise MalformedPacket("will QoS or retain set without a will")
    if will_qos == 3:
        raise MalformedPacket("will QoS 3")
    if level == MQTT_311 and has_password and not has_username:
        raise MalformedPacket("password without user name")
    keep_alive = cur.u16()
    props = _decode_properties(cur, CONNECT) if level == MQTT_5 else {}
    client_id = cur.string()
    will = None
    if will_flag:
        will_props = _decode_properties(cur, "will") if level == MQTT_5 else {}
        will_topic = cur.string()
        will_payload = cur.binary()
        will = Will(will_topic, will_payload, will_qos, will_retain, will_props)
    username = cur.string() if has_username else None
    password = cur.binary() if has_password else None
    if cur.remaining():
        raise MalformedPacket("trailing bytes after CONNECT payload")
    return Connect(
        client_id=client_id,
        protocol_level=level,
        protocol_name=protocol_name,
        clean_start=clean,
        keep_alive=keep_alive,
        will=will,
        username=username,
        password=password,
        properties=props,
    )


def _decode_publish(cur: _Cursor, flags: int, version: int) -> Publish:
    qos = (flags >> 1) & 0x03
    if qos == 3:
        raise MalformedPacket("PUBLISH QoS 3")
    dup = bool(flags & 0x08)
    if dup and qos == 0:
        raise MalformedPacket("DUP set on a QoS 0 PUBLISH")
    topic = cur.string()
    packet_id = None
    if qos:
        packet_id = cur.u16()
        if packet_id == 0:
            raise MalformedPacket("packet identifier 0")
    props = _decode_properties(cur, PUBLISH) if version == MQTT_5 else {}
    return Publish(topic, cur.rest(), qos, bool(flags & 0x01), dup, packet_id, props)


def _decode_ack(cur: _Cursor, ptype: int, flags: int, version: int) -> Ack:
    expected_flags = 0x02 if ptype == PUBREL else 0
    if flags != expected_flags:
        raise MalformedPacket(f"{PACKET_NAMES[ptype]} fixed-header flags invalid")
    packet_id = cur.u16()
    reason, props = 0, {}
    if version == MQTT_5 and cur.remaining():
        reason = cur.byte()
        if cur.remaining():
            props = _decode_properties(cur, ptype)
    if cur.remaining():
        raise MalformedPacket("trailing bytes")
    return Ack(ptype, packet_id, reason, props)


def _decode_subscribe(cur: _Cursor, flags: int, version: int) -> Subscribe:
    if flags != 0x02:
        raise MalformedPacket("SUBSCRIBE fixed-header flags must be 0x2")
    packet_id = cur.u16()
    if packet_id == 0:
        raise MalformedPacket("packet identifier 0")
    props = _decode_properties(cur, SUBSCRIBE) if version == MQTT_5 else {}
    subs: list[tuple[str, SubscriptionOptions]] = []
    while cur.remaining():
        topic_filter = cur.string()
        opts = cur.byte()
        qos = opts & 0x03
        if qos == 3:
            raise MalformedPacket("subscription QoS 3")
        if version == MQTT_5:
            retain_handling = (opts >> 4) & 0x03
            if retain_handling == 3 or opts & 0xC0:
                raise MalformedPacket("subscription options reserved bits")
            options = SubscriptionOptions(
                qos, bool(opts & 0x04), bool(opts & 0x08), retain_handling
            )
        else:
            if opts & 0xFC:
                raise MalformedPacket("subscription options reserved bits")
            options = SubscriptionOptions(qos)
        subs.append((topic_filter, options))
    if not subs:
        raise ProtocolError("SUBSCRIBE with no topic filters")
    return Subscribe(packet_id, subs, props)


def _decode_unsubscribe(cur: _Cursor, flags: int, version: int) -> Unsubscribe:
    if flags != 0x02:
        raise MalformedPacket("UNSUBSCRIBE fixed-header flags must be 0x2")
    packet_id = cur.u16()
    if packet_id == 0:
        raise MalformedPacket("packet identifier 0")
    props = _decode_properties(cur, UNSUBSCRIBE) if version == MQTT_5 else {}
    filters = []
    while cur.remaining():
        filters.append(cur.string())
    if not filters:
        raise ProtocolError("UNSUBSCRIBE with no topic filters")
    return Unsubscribe(packet_id, filters, props)


def _decode_reason_and_props(cur: _Cursor, ptype: int, version: int) -> tuple[int, Properties]:
    if version != MQTT_5 or not cur.remaining():
        if cur.remaining():
            raise MalformedPacket("trailing bytes")
        return 0, {}
    reason = cur.byte()
    props = _decode_properties(cur, ptype) if cur.remaining() else {}
    if cur.remaining():
        raise MalformedPacket("trailing bytes")
    return reason, props


def _decode_connack(cur: _Cursor, version: int) -> Connack:
    ack_flags = cur.byte()
    if ack_flags & 0xFE:
        raise MalformedPacket("CONNACK reserved flags")
    reason = cur.byte()
    props = _decode_properties(cur, CONNACK) if version == MQTT_5 else {}
    return Connack(bool(ack_flags & 1), reason, props)


def _decode_suback(cur: _Cursor, ptype: int, version: int) -> Suback | Unsuback:
    packet_id = cur.u16()
    props = _decode_properties(cur, ptype) if version == MQTT_5 else {}
    codes = list(cur.rest())
    if ptype == SUBACK:
        return Suback(packet_id, codes, props)
    if codes and version != MQTT_5:
        raise MalformedPacket("MQTT 3.1.1 UNSUBACK carries only a packet identifier")
    return Unsuback(packet_id, codes, props)


def decode_packet(ptype: int, flags: int, body: bytes | memoryview, version: int) -> Packet:
    """Decode one packet whose fixed header has been read; ``version`` governs MQTT 5 fields."""
    cur = _Cursor(body)
    try:
        if ptype == PUBLISH:
            return _decode_publish(cur, flags, version)
        if ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP):
            return _decode_ack(cur, ptype, flags, version)
        if ptype == CONNECT:
            return _decode_connect(cur, flags)
        if ptype == SUBSCRIBE:
            return _decode_subscribe(cur, flags, version)
        if ptype == UNSUBSCRIBE:
            return _decode_unsubscribe(cur, flags, version)
        if flags != 0:
            raise MalformedPacket(f"{PACKET_NAMES.get(ptype, ptype)} fixed-header flags invalid")
        if ptype in (PINGREQ, PINGRESP):
            if cur.remaining():
                raise MalformedPacket("PING with a body")
            return Pingreq() if ptype == PINGREQ else Pingresp()
        if ptype == DISCONNECT:
            return Disconnect(*_decode_reason_and_props(cur, DISCONNECT, version))
        if ptype == AUTH:
            if version != MQTT_5:
                raise MalformedPacket("AUTH is MQTT 5 only")
            return Auth(*_decode_reason_and_props(cur, AUTH, version))
        if ptype == CONNACK:
            return _decode_connack(cur, version)
        if ptype in (SUBACK, UNSUBACK):
            return _decode_suback(cur, ptype, version)
    except (struct.error, IndexError, ValueError) as exc:  # defensive: never leak other errors
        raise MalformedPacket(f"undecodable packet: {exc}") from exc
    raise MalformedPacket(f"reserved packet type {ptype}")


class PacketReader:
    """Incremental framer: feed bytes, get whole packets.

    ``max_packet_size`` is enforced from the fixed header, before the body is buffered, so a
    client announcing a huge packet cannot make the gateway allocate it.
    """

    __slots__ = ("_buf", "max_packet_size", "version")

    def __init__(self, max_packet_size: int = 268_435_460, version: int = MQTT_311) -> None:
        self._buf = bytearray()
        self.max_packet_size = max_packet_size
        self.version = version

    def feed(self, data: bytes | bytearray | memoryview) -> list[Packet]:
        """Return every whole packet now available; raise MalformedPacket on garbage.

        The exception's ``decoded`` holds the packets that preceded the garbage.
        """
        packets: list[Packet] = []
        try:
            self._feed(data, packets)
        except MalformedPacket as exc:
            exc.decoded = packets
            raise
        return packets

    def _feed(self, data: bytes | bytearray | memoryview, packets: list[Packet]) -> None:
        buf = self._buf
        buf += data
        pos = 0
        n = len(buf)
        while n - pos >= 2:
            first = buf[pos]
            # Remaining length: 1-4 bytes.
            length = 0
            i = pos + 1
            shift = 0
            while True:
                if i >= n:
                    break
                byte = buf[i]
                length |= (byte & 0x7F) << shift
                i += 1
                if not byte & 0x80:
                    shift = -1
                    break
                shift += 7
                if shift > 21:
                    raise MalformedPacket("remaining length longer than 4 bytes")
            if shift != -1:
                break  # header incomplete
            total = i - pos + length
            if total > self.max_packet_size:
                raise PacketTooLarge(total, self.max_packet_size)
            if n - i < length:
                break
            ptype = first >> 4
            if ptype == 0:
                raise MalformedPacket("reserved packet type 0")
            if first == 0x40 and length == 2:
                # Fast path for the commonest packet under fan-out load: a bare PUBACK.
                packet_id = (buf[i] << 8) | buf[i + 1]
                pos = i + 2
                packets.append(Ack(PUBACK, packet_id))
                continue
            body = bytes(buf[i : i + length])
            pos = i + length
            packet = decode_packet(ptype, first & 0x0F, body, self.version)
            if isinstance(packet, Connect):
                self.version = packet.protocol_level
            packets.append(packet)
        if pos:
            del buf[:pos]

    @property
    def buffered(self) -> int:
        return len(self._buf)


# --------------------------------------------------------------------------- encoding


def _frame(first_byte: int, body: bytes) -> bytes:
    return bytes((first_byte,)) + encode_varint(len(body)) + body


def publish_parts(
    topic: str,
    payload: bytes,
    qos: int,
    retain: bool,
    dup: bool,
    properties: Properties | None,
    version: int,
) -> tuple[bytes, bytes]:
    """Encode a PUBLISH as (head, tail) so fan-out can splice in per-subscriber packet ids.

    For QoS 0 the packet is ``head + tail``; for QoS 1 it is ``head + packet_id + tail``.
    """
    topic_bytes = encode_str(topic)
    props = encode_properties(properties) if version == MQTT_5 else b""
    tail = props + payload
    length = len(topic_bytes) + len(tail) + (2 if qos else 0)
    first = 0x30 | (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    head = bytes((first,)) + encode_varint(length) + topic_bytes
    return head, tail


def join_publish(head: bytes, tail: bytes, packet_id: int | None = None) -> bytes:
    """The whole PUBLISH from :func:`publish_parts`: QoS 0 without, QoS 1 with a packet id."""
    if packet_id is None:
        return head + tail if tail else head
    return head + _U16.pack(packet_id) + tail


_PUBACK_HEAD = bytes((PUBACK << 4, 2))


def encode_puback(packet_id: int) -> bytes:
    """A plain PUBACK (success, no properties), the same in both versions: the hot path of
    every QoS 1 publish, so it skips :func:`encode`."""
    return _PUBACK_HEAD + _U16.pack(packet_id)


def _encode_ack(a: Ack, v5: bool) -> bytes:
    body = _U16.pack(a.packet_id)
    if v5 and (a.reason_code or a.properties):
        body += bytes((a.reason_code,))
        if a.properties:
            body += encode_properties(a.properties)
    return _frame((a.type << 4) | (0x02 if a.type == PUBREL else 0), body)


def _encode_suback(s: Suback | Unsuback, v5: bool) -> bytes:
    body = _U16.pack(s.packet_id)
    if v5:
        body += encode_properties(s.properties)
    if s.type == SUBACK or v5:
        body += bytes(s.reason_codes)
    return _frame(s.type << 4, body)


def _encode_reason(d: Disconnect | Auth, v5: bool) -> bytes:
    body = b""
    if v5 and (d.reason_code or d.properties or d.type == AUTH):
        body = bytes((d.reason_code,)) + (encode_properties(d.properties) if d.properties else b"")
    return _frame(d.type << 4, body)


def _encode_subscribe(sub: Subscribe, v5: bool) -> bytes:
    body = _U16.pack(sub.packet_id) + (encode_properties(sub.properties) if v5 else b"")
    for topic_filter, o in sub.subscriptions:
        opts = o.qos
        if v5:
            opts |= (4 if o.no_local else 0) | (8 if o.retain_as_published else 0)
            opts |= o.retain_handling << 4
        body += encode_str(topic_filter) + bytes((opts,))
    return _frame(0x82, body)


def _encode_unsubscribe(u: Unsubscribe, v5: bool) -> bytes:
    body = _U16.pack(u.packet_id) + (encode_properties(u.properties) if v5 else b"")
    for topic_filter in u.topic_filters:
        body += encode_str(topic_filter)
    return _frame(0xA2, body)


def encode(packet: Packet, version: int = MQTT_311) -> bytes:
    """Encode any packet for a peer speaking ``version``."""
    v5 = version == MQTT_5
    if isinstance(packet, Publish):
        p = packet
        head, tail = publish_parts(
            p.topic, p.payload, p.qos, p.retain, p.dup, p.properties, version
        )
        return join_publish(head, tail, (p.packet_id or 0) if p.qos else None)
    if isinstance(packet, Ack):
        return _encode_ack(packet, v5)
    if isinstance(packet, Connack):
        body = bytes((1 if packet.session_present else 0, packet.reason_code))
        if v5:
            body += encode_properties(packet.properties)
        return _frame(0x20, body)
    if isinstance(packet, Suback | Unsuback):
        return _encode_suback(packet, v5)
    if isinstance(packet, Pingreq | Pingresp):
        return bytes((packet.type << 4, 0))
    if isinstance(packet, Disconnect | Auth):
        return _encode_reason(packet, v5)
    if isinstance(packet, Connect):
        return _encode_connect(packet)
    if isinstance(packet, Subscribe):
        return _encode_subscribe(packet, v5)
    if isinstance(packet, Unsubscribe):
        return _encode_unsubscribe(packet, v5)
    raise ValueError(f"cannot encode packet type {packet.type}")


def _encode_connect(c: Connect) -> bytes:
    v5 = c.protocol_level == MQTT_5
    flags = 0x02 if c.clean_start else 0
    if c.will:
        flags |= 0x04 | (c.will.qos << 3) | (0x20 if c.will.retain else 0)
    if c.password is not None:
        flags |= 0x40
    if c.username is not None:
        flags |= 0x80
    body = encode_str(c.protocol_name) + bytes((c.protocol_level, flags)) + _U16.pack(c.keep_alive)
    if v5:
        body += encode_properties(c.properties)
    body += encode_str(c.client_id)
    if c.will:
        if v5:
            body += encode_properties(c.will.properties)
        body += encode_str(c.will.topic) + encode_bin(c.will.payload)
    if c.username is not None:
        body += encode_str(c.username)
    if c.password is not None:
        body += encode_bin(c.password)
    return _frame(0x10, body)
