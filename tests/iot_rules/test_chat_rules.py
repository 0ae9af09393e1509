"""The project's own rules (iot_rules/rules): every input on chat/out takes exactly one path,
and the rules' checks agree with the Lambdas' (lambdas/chat/protocol.py)."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from iot_rules.loader import load_rules
from iot_rules.sql import SqlMessage, compile_sql
from lambdas.chat import protocol, sessions
from lambdas.chat.commands import decode_request
from lambdas.manifest import Manifest

RULES = {rule.name: rule for rule in load_rules()}
STATEMENTS = {name: compile_sql(rule.sql, rule.sql_version) for name, rule in RULES.items()}
TS = 1_700_000_000_123
CHAT_OUT_PATHS = ("chat_room_message", "chat_commands", "chat_queries", "chat_invalid")


def matches(topic: str, payload: bytes, client_id: str = "us-east-1:abc") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, statement in STATEMENTS.items():
        if not statement.matches(topic):
            continue
        msg = SqlMessage(topic=topic, payload=payload, client_id=client_id, timestamp_ms=TS)
        result = statement.evaluate(msg)
        if result is not None:
            out[name] = json.loads(result.to_bytes())
    return out


def python_code(request: dict[str, Any]) -> str | None:
    """The error the Lambda-side checks give a room message, or None when it is valid."""
    try:
        protocol.require_id(request)
        protocol.require_room(request)
        protocol.require_text(request)
        protocol.optional_name(request)
    except protocol.ProtocolError as problem:
        return problem.code
    return None


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.text(max_size=6),
    st.sampled_from(["lobby", "a-b_c", "x" * 64, "x" * 65, " ", "bad room", "é", "550e8400-e29b"]),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=2),
    st.dictionaries(st.text(max_size=3), scalars, max_size=2),
)
types = st.one_of(
    st.sampled_from(["message", "join", "leave", "history", "who", "create", "invite", "dance"]),
    values,
)
texts = st.one_of(
    values,
    st.sampled_from(
        [
            *("hi", "  ", "\t\n", "\u00a0", "x" * 2000, "x" * 2001, "😀" * 1000, "😀" * 1001),
            # lone surrogates: JSON allows "\ud800", Unicode text does not
            *("hi \ud800", "\udc00", "😀\udfff😀", "\ude00\ud83d", "x" * 1999 + "\ud800"),
        ]
    ),
)
requests = st.fixed_dictionaries(
    {},
    optional={
        "type": types,
        "id": st.one_of(values, st.sampled_from(["m1", "a" * 64, "a" * 65, "has space"])),
        "room": values,
        "body": texts,
        "name": st.one_of(
            values, st.sampled_from(["Ada", "", "x" * 64, "x" * 65, "<b>hi</b>", "\udbff"])
        ),
        "recipient": values,
        "groupId": values,
    },
)


@settings(max_examples=400, deadline=None)
@given(requests)
def test_every_chat_out_message_takes_exactly_one_path(request: dict[str, Any]) -> None:
    taken = [
        name for name in matches("chat/out", json.dumps(request).encode()) if name in CHAT_OUT_PATHS
    ]
    assert len(taken) == 1, (request, taken)


VALID_ROOM_MESSAGE = {"type": "message", "id": "m1", "room": "lobby", "body": "hi", "name": "Ada"}
field_values = {
    "id": st.one_of(values, st.sampled_from(["m1", "a" * 64, "a" * 65, "has space", ""])),
    "room": values,
    "body": texts,
    "name": st.one_of(
        values, st.sampled_from(["Ada", "", "x" * 64, "x" * 65, "\u00a0", " ", "Ada\ud800"])
    ),
}
mutations = st.dictionaries(
    st.sampled_from(sorted(field_values)), st.just(None), max_size=2
).flatmap(lambda chosen: st.fixed_dictionaries({field: field_values[field] for field in chosen}))


@settings(max_examples=500, deadline=None)
@given(mutations, st.sets(st.sampled_from(sorted(field_values)), max_size=1))
def test_room_message_checks_agree_with_the_lambda_checks(
    changed: dict[str, Any], removed: set[str]
) -> None:
    request = {**VALID_ROOM_MESSAGE, **changed}
    for field in removed:
        request.pop(field, None)
    if "room" not in request:
        return  # no target at all: INVALID_TARGET, covered by the partition test
    out = matches("chat/out", json.dumps(request).encode())
    expected = python_code(request)
    if expected is None:
        assert "chat_room_message" in out, request
    else:
        assert out["chat_invalid"]["code"] == expected, (request, out)


def test_garbage_gets_bad_request_and_the_lambda_agrees() -> None:
    for payload in (b"not json", b"[1, 2]", b'{"type": 5}', b"\xff\xfe", b"", b"{}"):
        out = matches("chat/out", payload)
        assert out["chat_invalid"]["code"] == "BAD_REQUEST", payload
        assert out["chat_invalid"]["type"] == "error"


def test_sender_and_time_come_from_the_rules_not_the_payload() -> None:
    payload = {
        "type": "message",
        "id": "m1",
        "room": "lobby",
        "body": "hi",
        "sender": "mallory",
        "ts": 1,
    }
    out = matches("chat/out", json.dumps(payload).encode(), client_id="us-east-1:alice")
    assert out["chat_room_message"]["sender"] == "us-east-1:alice"
    assert out["chat_room_message"]["ts"] == TS


def test_stored_item_keys_match_the_lambda_keys() -> None:
    from lambdas.chat import keys

    room_message = matches(
        "chat/out", b'{"type":"message","id":"m1","room":"lobby","body":"hi"}', "us-east-1:a"
    )["chat_room_message"]
    item = matches("chat/pub/lobby", json.dumps(room_message).encode())["chat_room_store"]
    assert item["conv"] == keys.room_conv("lobby")
    # Keyed by the text's digest too: an identical resend is the same item, another text not.
    assert item["mid"] == keys.copy_mid(keys.mid("us-east-1:a", "m1"), "hi")
    assert item["tsid"] == keys.tsid(TS, item["mid"])
    assert keys.Cursor.decode(keys.Cursor(item["tsid"], item["mid"]).encode()).mid == item["mid"]
    low, high = keys.copies_range(keys.mid("us-east-1:a", "m1"))
    assert low < item["mid"] < high
    other = dict(room_message, body="hi!")
    again = matches("chat/pub/lobby", json.dumps(other).encode())["chat_room_store"]
    assert again["mid"] != item["mid"] and low < again["mid"] < high
    assert item["expiresAt"] == TS // 1000 + protocol.RETENTION_DAYS * 86400
    # Presence and activity on the room topic are not messages: never stored.
    presence = {"v": 1, "type": "presence", "room": "lobby", "clientId": "x", "status": "online"}
    assert "chat_room_store" not in matches("chat/pub/lobby", json.dumps(presence).encode())


def test_room_events_pass_only_presence_and_activity() -> None:
    for kind, passes in (
        ("presence", True),
        ("activity", True),
        ("message", False),
        ("error", False),
    ):
        out = matches("chat/events/lobby", json.dumps({"type": kind, "room": "lobby"}).encode())
        assert ("chat_room_events" in out) is passes, kind


def test_limits_in_the_rules_are_the_protocol_limits() -> None:
    sql = " ".join(rule.sql for rule in RULES.values())
    assert f"length(body) <= {protocol.MAX_TEXT}" in sql
    assert f"length(name) <= {protocol.MAX_NAME}" in sql
    assert protocol.ROOM.pattern in sql and protocol.MESSAGE_ID.pattern in sql
    assert f"+ {protocol.RETENTION_DAYS * 86400}" in sql
    assert f"<= {protocol.MAX_TELEMETRY_BYTES}" in sql
    commands_function = Manifest.load().get("iotchat-commands")
    assert commands_function is not None
    environment = commands_function.environment
    assert int(environment["RETENTION_DAYS"]) == protocol.RETENTION_DAYS
    commands = re.findall(r"WHEN '(\w+)' THEN true", RULES["chat_commands"].sql)
    queries = re.findall(r"WHEN '(\w+)' THEN true", RULES["chat_queries"].sql)
    assert not set(commands) & set(queries)
    assert set(commands) | set(queries) == set(protocol.COMMAND_TYPES)


def test_every_rule_has_an_error_action_and_commands_get_the_raw_payload() -> None:
    for rule in RULES.values():
        assert rule.error_action, rule.name
    out = matches("chat/out", b'{"type":"join","room":"lobby"}')["chat_commands"]
    assert decode_request(out["payload"]) == {"type": "join", "room": "lobby"}


LONE_SURROGATE_TEXTS = ["hi \ud800", "\udc00", "😀\udfff😀", "\ude00\ud83d", "a\udbffb"]


def test_a_lone_surrogate_in_a_room_message_gets_invalid_text_never_silence() -> None:
    """``"body": "hi \\ud800"`` is valid JSON but no Unicode text: the room rule lets it
    through neither to the room nor into silence; chat_invalid answers INVALID_TEXT, the
    code the Lambda's checks give the same text (in a direct message)."""
    for text in LONE_SURROGATE_TEXTS:
        request = {"type": "message", "id": "m1", "room": "lobby", "body": text}
        out = matches("chat/out", json.dumps(request).encode())
        assert set(out) == {"chat_invalid"}, (text, out)
        assert out["chat_invalid"]["code"] == "INVALID_TEXT"
        assert out["chat_invalid"]["ref"] == "m1"
        assert python_code(request) == "INVALID_TEXT"
    named = {"type": "message", "id": "m2", "room": "lobby", "body": "hi", "name": "Ada\ud800"}
    out = matches("chat/out", json.dumps(named).encode())
    assert set(out) == {"chat_invalid"} and out["chat_invalid"]["code"] == "INVALID_NAME"
    assert python_code(named) == "INVALID_NAME"


def test_surrogate_pairs_are_text_however_they_are_written() -> None:
    """A pair escaped in JSON (``"\\ud83d\\ude00"``) or sent as UTF-8 is one emoji: valid,
    and two UTF-16 units against the 2,000-unit limit, as Java counts."""
    escaped = b'{"type":"message","id":"m1","room":"lobby","body":"hi \\ud83d\\ude00"}'
    raw = '{"type":"message","id":"m1","room":"lobby","body":"hi \U0001f600"}'.encode()
    for payload in (escaped, raw):
        out = matches("chat/out", payload)
        assert out["chat_room_message"]["body"] == "hi \U0001f600", payload
    at_limit = {"type": "message", "id": "m1", "room": "lobby", "body": "x" * 1998 + "😀"}
    assert "chat_room_message" in matches("chat/out", json.dumps(at_limit).encode())
    over = {**at_limit, "body": "x" * 1999 + "😀"}
    assert matches("chat/out", json.dumps(over).encode())["chat_invalid"]["code"] == (
        "TEXT_TOO_LONG"
    )


def test_missing_fields_get_one_error_where_case_on_undefined_is_undefined() -> None:
    """AWS's CASE gives Undefined, not its ELSE, for an Undefined subject
    (https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-case.html): the error rules
    guard every subject, so ``{}``, non-JSON and a missing field still get their one error."""
    for topic, payload, code in (
        ("chat/out", b"{}", "BAD_REQUEST"),
        ("chat/out", b"not json", "BAD_REQUEST"),
        ("chat/out", b'{"type":"message","room":"lobby","body":"hi"}', "INVALID_ID"),
        ("chat/out", b'{"type":"message","id":"m1","room":"lobby"}', "INVALID_TEXT"),
        ("chat/out", b'{"type":"message","id":"m1","body":"hi"}', "INVALID_TARGET"),
        ("chat/stream", b"{}", "BAD_REQUEST"),
        ("chat/stream", b"not json", "BAD_REQUEST"),
        ("chat/stream", b'{"type":"typing"}', "INVALID_ROOM"),
        ("chat/stream", b'{"type":"telemetry","room":"lobby"}', "INVALID_REQUEST"),
    ):
        out = matches(topic, payload)
        errors = [name for name in out if name in ("chat_invalid", "chat_stream_invalid")]
        assert len(errors) == 1 and len(out) == 1, (payload, out)
        assert out[errors[0]]["code"] == code, (payload, out)
    # the valid forms beside them still pass without an error
    ok = matches("chat/stream", b'{"type":"typing","room":"lobby"}')
    assert set(ok) == {"chat_stream"}


def test_presence_takes_connected_and_disconnected_but_not_connect_failures() -> None:
    """``$aws/events/presence/+/+`` also matches ``connect_failed`` events
    (https://docs.aws.amazon.com/iot/latest/developerguide/life-cycle-events.html); the
    presence Lambda is for the two events that change who is online."""
    for kind, taken in (("connected", True), ("disconnected", True), ("connect_failed", False)):
        event = {"clientId": "c1", "timestamp": TS, "eventType": kind, "versionNumber": 1}
        out = matches(f"$aws/events/presence/{kind}/c1", json.dumps(event).encode())
        assert ("chat_presence" in out) is taken, kind


SESSION_OWNER = "eu-west-2:0b9c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3"


@given(st.text(alphabet="abcXYZ019_-", min_size=1, max_size=64))
@settings(max_examples=60, deadline=None)
def test_a_session_speaks_as_its_person_in_the_rules_and_the_lambdas(part: str) -> None:
    """The rules' regexp_replace and lambdas.chat.sessions.person_of name the same person."""
    client_id = sessions.session_client_id(SESSION_OWNER, part)
    room = b'{"type":"message","id":"m1","room":"lobby","body":"hi"}'
    typing = b'{"type":"typing","room":"lobby"}'
    assert matches("chat/out", room, client_id)["chat_room_message"]["sender"] == SESSION_OWNER
    assert matches("chat/stream", typing, client_id)["chat_stream"]["sender"] == SESSION_OWNER
    assert sessions.person_of(client_id) == SESSION_OWNER


def test_devices_and_bare_identity_ids_are_their_own_person() -> None:
    room = b'{"type":"message","id":"m1","room":"lobby","body":"hi"}'
    for client_id in ("pi-kitchen", "pi_kitchen_2", SESSION_OWNER, f"{SESSION_OWNER}_"):
        out = matches("chat/out", room, client_id)["chat_room_message"]
        assert out["sender"] == client_id == sessions.person_of(client_id)


def test_a_publish_that_did_not_come_over_mqtt_takes_no_chat_path() -> None:
    """iot-data over HTTPS has clientid() "n/a" (docs/protocol.md, "Only MQTT senders speak")."""
    room = b'{"type":"message","id":"m1","room":"lobby","body":"hi"}'
    join = b'{"type":"join","room":"lobby"}'
    direct = b'{"type":"message","id":"m2","recipient":"pi-kitchen","body":"hi"}'
    typing = b'{"type":"typing","room":"lobby"}'
    for topic, payload, path in (
        ("chat/out", room, "chat_room_message"),
        ("chat/out", join, "chat_commands"),
        ("chat/out", b'{"type":"bogus"}', "chat_invalid"),
        ("chat/private", direct, "chat_private"),
        ("chat/stream", typing, "chat_stream"),
        ("chat/stream", b'{"type":"bogus"}', "chat_stream_invalid"),
    ):
        assert path in matches(topic, payload, "us-east-1:abc"), path
        assert path not in matches(topic, payload, sessions.NOT_MQTT), path


def test_only_the_private_rule_marks_the_private_door() -> None:
    direct = b'{"type":"message","id":"m2","recipient":"pi-kitchen","body":"hi"}'
    assert matches("chat/private", direct)["chat_private"]["door"] == "private"
    assert "door" not in matches("chat/out", direct)["chat_commands"]
    # What a client writes cannot open the door: the payload stays encoded.
    forged = b'{"type":"message","id":"m2","recipient":"pi-kitchen","body":"hi","door":"private"}'
    assert "door" not in matches("chat/out", forged)["chat_commands"]
