"""IoT SQL behaviour beyond the documented vectors: errors, templates, services, robustness."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import time
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iot_rules.sql import (
    Result,
    SqlContext,
    SqlError,
    SqlMessage,
    Statement,
    compile_sql,
    compile_template,
)

V2 = "2016-03-23"
CHAT_RULE = (
    "SELECT *, clientid() AS sender, timestamp() AS ts FROM 'chat/out' "
    "WHERE type = 'message' AND regexp_matches(room, '^[A-Za-z0-9_-]{1,64}$') "
    "AND length(body) <= 2000"
)


def msg(payload: object, topic: str = "t", **kw: Any) -> SqlMessage:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return SqlMessage(topic=topic, payload=raw, **kw)


def selected(stmt: Statement, message: SqlMessage) -> Result:
    """The SELECT output of a message the WHERE clause lets through."""
    result = stmt.evaluate(message)
    assert result is not None
    return result


# --- the chat's republish rule -------------------------------------------------------------


def test_chat_rule_adds_sender_and_timestamp() -> None:
    stmt = compile_sql(CHAT_RULE, V2)
    m = msg(
        {"type": "message", "id": "i1", "room": "lobby", "body": "hi"},
        topic="chat/out",
        client_id="us-east-1:abc",
        timestamp_ms=1700000000000,
    )
    result = stmt.evaluate(m)
    assert result is not None
    assert json.loads(result.to_bytes()) == {
        "type": "message",
        "id": "i1",
        "room": "lobby",
        "body": "hi",
        "sender": "us-east-1:abc",
        "ts": 1700000000000,
    }
    assert stmt.functions_used == {"clientid", "timestamp", "regexp_matches", "length"}


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "join", "room": "lobby"},
        {"type": "message", "room": "bad room!", "body": "x"},
        {"type": "message", "room": "lobby", "body": "x" * 2001},
        {"type": "message", "room": "lobby"},
    ],
)
def test_chat_rule_rejects_invalid_messages(payload: dict[str, object]) -> None:
    assert compile_sql(CHAT_RULE, V2).evaluate(msg(payload, topic="chat/out")) is None


def test_timestamp_defaults_to_now_and_is_stable_within_one_evaluation() -> None:
    stmt = compile_sql("SELECT timestamp() AS a, timestamp() AS b FROM 't'")
    before = int(time.time() * 1000)
    result = stmt.evaluate(msg({}))
    assert result is not None
    value = result.value
    assert isinstance(value, dict)
    assert value["a"] == value["b"]
    assert before <= value["a"] <= int(time.time() * 1000)


def test_newuuid_is_a_fresh_uuid_each_time() -> None:
    stmt = compile_sql("SELECT VALUE newuuid() FROM 't'")
    a = stmt.evaluate(msg({}))
    b = stmt.evaluate(msg({}))
    assert a is not None and b is not None
    assert str(uuid.UUID(str(a.value))) == a.value
    assert a.value != b.value


def test_rand_is_between_zero_and_one() -> None:
    stmt = compile_sql("SELECT VALUE rand() FROM 't'")
    values = {selected(stmt, msg({})).exact for _ in range(20)}
    assert all(isinstance(v, Decimal) and 0 <= v < 1 for v in values)
    assert len(values) > 1


def test_message_metadata_functions() -> None:
    stmt = compile_sql(
        "SELECT principal() AS p, traceid() AS t, sourceip() AS ip, accountid() AS a, "
        "get_user_properties('k') AS up, get_mqtt_property('content_type') AS ct, "
        "get_mqtt_property('correlation_data') AS cd FROM 't'"
    )
    m = SqlMessage(
        topic="t",
        payload=b"{}",
        principal="thumb",
        trace_id="tr-1",
        source_ip="127.0.0.1",
        user_properties=(("k", "1"), ("x", "y"), ("k", "2")),
        properties={"content_type": "application/json", "correlation_data": b"\x01\x02"},
    )
    result = stmt.evaluate(m, SqlContext(account_id="123456789012"))
    assert result is not None
    assert result.value == {
        "p": "thumb",
        "t": "tr-1",
        "ip": "127.0.0.1",
        "a": "123456789012",
        "up": ["1", "2"],
        "ct": "application/json",
        "cd": base64.b64encode(b"\x01\x02").decode(),
    }


# --- errors ----------------------------------------------------------------------------------


def test_syntax_error_names_line_and_column() -> None:
    with pytest.raises(SqlError) as info:
        compile_sql("SELECT a,\n  b c FROM 't'")
    err = info.value
    assert (err.line, err.column) == (2, 5)
    assert "syntax error at line 2, column 5" in str(err)


def test_syntax_error_at_end_of_input() -> None:
    with pytest.raises(SqlError, match="unexpected end of input") as info:
        compile_sql("SELECT * FROM 't' WHERE")
    assert info.value.line == 1
    assert info.value.column == len("SELECT * FROM 't' WHERE") + 1


def test_unknown_function_is_named_with_its_position() -> None:
    with pytest.raises(SqlError, match="unknown function 'foo'") as info:
        compile_sql("SELECT foo(a) FROM 't'")
    assert (info.value.line, info.value.column) == (1, 8)


def test_wrong_argument_count() -> None:
    with pytest.raises(SqlError, match="function 'substring' takes 2 to 3 argument"):
        compile_sql("SELECT substring('a') FROM 't'")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT {'a': 1} AS o FROM 't'",
        "SELECT [1] AS o FROM 't'",
        "SELECT (SELECT VALUE n FROM e) AS o FROM 't'",
        "SELECT encode(*, 'base64') AS o FROM 't'",
        "SELECT cast(1 AS Boolean) AS o FROM 't'",
    ],
)
def test_2016_features_are_refused_in_2015(sql: str) -> None:
    with pytest.raises(SqlError):
        compile_sql(sql)
    assert compile_sql(sql, V2).sql_version == V2


def test_default_version_and_unknown_version() -> None:
    assert compile_sql("SELECT * FROM 't'").sql_version == "2015-10-08"
    with pytest.raises(SqlError, match="unsupported SQL version"):
        compile_sql("SELECT * FROM 't'", "2020-01-01")


@pytest.mark.parametrize("topic_filter", ["a/#/b", "a/b+", "a#", ""])
def test_invalid_from_filters(topic_filter: str) -> None:
    with pytest.raises(SqlError, match="topic filter"):
        compile_sql(f"SELECT * FROM '{topic_filter}'")


def test_at_most_one_get_dynamodb() -> None:
    with pytest.raises(SqlError, match="at most once"):
        compile_sql(
            "SELECT get_dynamodb('t', 'k', a, 'r').x AS x, get_dynamodb('t', 'k', b, 'r').y AS y "
            "FROM 't'",
            V2,
        )


def test_unknown_cast_type() -> None:
    with pytest.raises(SqlError, match="unknown cast type 'Float'"):
        compile_sql("SELECT cast(1 AS Float) FROM 't'")


# --- FROM matching ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("chat/out", "chat/out", True),
        ("chat/out", "chat/out/x", False),
        ("chat/+", "chat/out", True),
        ("chat/+", "chat", False),
        ("chat/+/x", "chat//x", True),
        ("chat/#", "chat/a/b/c", True),
        ("chat/#", "chat", False),
        ("+/#", "a/b", True),
        ("#", "anything/at/all", True),
        ("#", "$aws/events/presence/connected/c", False),
        ("$aws/events/presence/+/+", "$aws/events/presence/connected/c", True),
    ],
)
def test_from_matching(topic_filter: str, topic: str, expected: bool) -> None:
    stmt = compile_sql(f"SELECT * FROM '{topic_filter}'")
    assert stmt.topic_filter == topic_filter
    assert stmt.matches(topic) is expected


# --- non-JSON payloads -----------------------------------------------------------------------


def test_binary_payload_passes_through_select_star() -> None:
    blob = bytes(range(256))
    result = compile_sql("SELECT * FROM 't'").evaluate(SqlMessage("t", blob))
    assert result is not None
    assert result.raw == blob
    assert result.to_bytes() == blob


def test_binary_payload_can_be_base64_encoded_for_a_lambda() -> None:
    blob = b"\x00\xffbinary"
    result = compile_sql("SELECT encode(*, 'base64') AS data, topic() AS t FROM 't'", V2).evaluate(
        SqlMessage("t", blob)
    )
    assert result is not None
    assert result.raw is None
    assert result.value == {"data": base64.b64encode(blob).decode(), "t": "t"}


def test_encode_star_encodes_json_payload_bytes_verbatim() -> None:
    raw = b'{ "a" : 1.50 }'
    result = compile_sql("SELECT VALUE encode(*, 'base64') FROM 't'", V2).evaluate(
        SqlMessage("t", raw)
    )
    assert result is not None
    assert base64.b64decode(str(result.value)) == raw


# --- services through SqlContext -------------------------------------------------------------


def test_aws_lambda_is_called_synchronously_and_is_addressable() -> None:
    calls: list[tuple[str, object]] = []

    def invoke(arn: str, payload: object) -> object:
        calls.append((arn, payload))
        return {"some": {"value": 4.5}, "n": 2}

    arn = "arn:aws:lambda:us-east-1:000000000000:function:enrich"
    stmt = compile_sql(
        f'SELECT aws_lambda("{arn}", {{"payload": attribute1}}).some.value AS v, '
        f"aws_lambda('{arn}', *) AS whole FROM 'topic/subtopic'",
        V2,
    )
    assert stmt.lambda_arns == (arn,)
    assert "aws_lambda" in stmt.functions_used
    result = stmt.evaluate(
        msg({"attribute1": 21, "attribute2": "value"}, topic="topic/subtopic"),
        SqlContext(invoke_lambda=invoke),
    )
    assert result is not None
    assert result.value == {
        "v": Decimal("4.5"),
        "whole": {"some": {"value": Decimal("4.5")}, "n": 2},
    }
    assert calls == [
        (arn, {"payload": 21}),
        (arn, {"attribute1": 21, "attribute2": "value"}),
    ]


def test_aws_lambda_without_a_runtime_is_undefined() -> None:
    stmt = compile_sql("SELECT aws_lambda('arn:x', *) AS out, 1 AS one FROM 't'", V2)
    assert selected(stmt, msg({})).value == {"one": 1}


def test_get_dynamodb_uses_the_context_and_records_the_table() -> None:
    seen: list[tuple[object, ...]] = []

    def get_item(*args: object) -> object:
        seen.append(args)
        return {"deviceId": "d1", "location": "lab"} if args[2] == "d1" else None

    stmt = compile_sql(
        'SELECT *, get_dynamodb("InServiceDevices", "deviceId", id, '
        "\"arn:aws:iam::12345678910:role/getdynamo\").location AS location FROM 'some/topic'",
        V2,
    )
    assert stmt.tables == ("InServiceDevices",)
    ctx = SqlContext(get_dynamodb=get_item)
    found = stmt.evaluate(msg({"id": "d1"}, topic="some/topic"), ctx)
    missing = stmt.evaluate(msg({"id": "d2"}, topic="some/topic"), ctx)
    assert found is not None and found.value == {"id": "d1", "location": "lab"}
    assert missing is not None and missing.value == {"id": "d2"}
    assert seen[0] == (
        "InServiceDevices",
        "deviceId",
        "d1",
        None,
        None,
        "arn:aws:iam::12345678910:role/getdynamo",
    )


def test_get_dynamodb_with_a_sort_key() -> None:
    seen: list[tuple[object, ...]] = []

    def get_item(*args: object) -> object:
        seen.append(args)
        return {"v": 1}

    stmt = compile_sql("SELECT VALUE get_dynamodb('T', 'pk', a, 'sk', 5, 'role').v FROM 't'", V2)
    result = stmt.evaluate(msg({"a": "x"}), SqlContext(get_dynamodb=get_item))
    assert result is not None and result.value == 1
    assert seen == [("T", "pk", "x", "sk", 5, "role")]


def test_services_absent_locally_are_undefined() -> None:
    stmt = compile_sql(
        "SELECT get_secret('id', 'SecretString', 'k', 'role') AS s, "
        "get_thing_shadow('thing', 'role') AS sh, 1 AS one FROM 't'",
        V2,
    )
    assert selected(stmt, msg({})).value == {"one": 1}
    ctx = SqlContext(get_thing_shadow=lambda *a: {"state": {"reported": {"alarm": "ON"}}})
    stmt2 = compile_sql(
        "SELECT * FROM 'topic/subtopic' WHERE "
        "get_thing_shadow('MyThing', 'arn:aws:iam::123456789012:role/R')"
        ".state.reported.alarm = 'ON'",
        V2,
    )
    assert stmt2.evaluate(msg({"k": 1}, topic="topic/subtopic"), ctx) is not None
    assert stmt2.evaluate(msg({"k": 1}, topic="topic/subtopic")) is None


# --- substitution templates ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("chat/pub/${room}", "chat/pub/lobby"),
        ("${topic()}/republish", "chat/out/republish"),
        ("${replace(topic(), '/', '-') + '-' + timestamp()}", "chat-out-1700000000000"),
        ("${topic(2)}", "out"),
        ("n=${n}", "n=2.50"),
        ("${obj}", '{"k":[1,true]}'),
        ("missing:${nothing}.", "missing:."),
        ("${clientid()}-${room}", "c1-lobby"),
        ("plain/topic", "plain/topic"),
        ("${concat('a', '}')}", "a}"),
    ],
)
def test_templates(template: str, expected: str) -> None:
    m = SqlMessage(
        "chat/out",
        b'{"room":"lobby","n":2.50,"obj":{"k":[1,true]}}',
        client_id="c1",
        timestamp_ms=1700000000000,
    )
    assert compile_template(template).render(m) == expected


def test_templates_see_the_original_payload_not_aliases() -> None:
    tpl = compile_template("${sender}/${room}")
    assert tpl.render(SqlMessage("t", b'{"room":"r"}', client_id="c")) == "/r"


def test_template_errors_are_positioned_in_the_template() -> None:
    with pytest.raises(SqlError, match="unknown function 'nope'") as info:
        compile_template("a/${nope()}")
    assert info.value.column == 5
    with pytest.raises(SqlError, match="unterminated"):
        compile_template("a/${room")
    with pytest.raises(SqlError, match="syntax error"):
        compile_template("a/${room +}")


# --- robustness ------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_parser_raises_only_sql_error(text: str) -> None:
    with contextlib.suppress(SqlError):
        compile_sql(text)


_TOKENS = st.sampled_from(
    ["SELECT", "*", ",", "a", "b.c", "FROM", "'t'", "WHERE", "=", "1", "2.5", "'x'", "(", ")",
     "AND", "OR", "NOT", "+", "-", "/", "%", "CASE", "WHEN", "THEN", "END", "[", "]", "{", "}",
     ":", "AS", "VALUE", "upper(", "get(", "@v", "SET", "null", "true"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(_TOKENS, max_size=14), st.sampled_from(["2015-10-08", V2]))
def test_token_soup_compiles_or_fails_cleanly_and_evaluates_without_raising(
    tokens: list[str], version: str
) -> None:
    try:
        stmt = compile_sql(" ".join(tokens), version)
    except SqlError:
        return
    result = stmt.evaluate(msg({"a": 1, "b": {"c": [1, "x"]}}, topic="t"))
    if result is not None:
        json.loads(result.to_bytes())


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
        max_leaves=8,
    )
)
def test_select_star_round_trips_any_json_object(value: object) -> None:
    payload = {"v": value}
    result = compile_sql("SELECT * FROM 't'", V2).evaluate(msg(payload))
    assert result is not None
    assert json.loads(result.to_bytes()) == payload


def test_regex_patterns_are_cached_not_recompiled() -> None:
    from iot_rules.sql.functions import compile_regex

    compile_regex.cache_clear()
    stmt = compile_sql("SELECT VALUE regexp_matches(a, '^x+$') FROM 't'")
    for _ in range(50):
        stmt.evaluate(msg({"a": "xxx"}))
    info = compile_regex.cache_info()
    assert info.misses == 1
    assert re.compile("^x+$").search("xxx")


def test_result_value_is_plain_json_while_bytes_stay_exact() -> None:
    stmt = compile_sql("SELECT a, b, c, 0.1 + 0.2 AS d FROM 't'")
    result = stmt.evaluate(SqlMessage("t", b'{"a": 2.50, "b": 7, "c": {"x": [1.25]}}'))
    assert result is not None
    assert json.dumps(result.value) == '{"a": 2.5, "b": 7, "c": {"x": [1.25]}, "d": 0.3}'
    assert result.to_bytes() == b'{"a":2.50,"b":7,"c":{"x":[1.25]},"d":0.3}'
    assert result.exact == {
        "a": Decimal("2.50"),
        "b": 7,
        "c": {"x": [Decimal("1.25")]},
        "d": Decimal("0.3"),
    }


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("${}()'\"ab+/ ,*")), max_size=30))
def test_template_compiler_raises_only_sql_error(text: str) -> None:
    try:
        tpl = compile_template(text, V2)
    except SqlError:
        return
    assert isinstance(tpl.render(SqlMessage("t/u", b'{"a":"x","b":2}')), str)


def test_length_counts_utf16_units_like_java() -> None:
    stmt = compile_sql("SELECT length(t) AS n, numbytes(t) AS b FROM 't'", V2)
    result = stmt.evaluate(msg({"t": "h\u00e9\U0001f600"}))
    assert result is not None and result.value == {"n": 4, "b": 1 + 2 + 4}


def test_huge_numbers_do_not_blow_up() -> None:
    stmt = compile_sql("SELECT floor(x) AS f, x AS x, substring('abc', x) AS s FROM 't'", V2)
    result = stmt.evaluate(SqlMessage("t", b'{"x": 1E+999999999}'))
    assert result is not None
    assert json.loads(result.to_bytes()) == {"f": 10**34, "x": float("inf"), "s": ""}


def test_topic_hides_the_basic_ingest_prefix() -> None:
    stmt = compile_sql("SELECT topic() AS t, topic(3) AS third FROM '#'")
    m = SqlMessage("$aws/rules/BuildingManager/Buildings/Building5/Floor2/Room201/Lights", b"{}")
    result = stmt.evaluate(m)
    assert result is not None
    assert result.value == {"t": "Buildings/Building5/Floor2/Room201/Lights", "third": "Floor2"}


def test_lone_surrogates_stay_escaped_in_the_output() -> None:
    raw = b'{"a": "x\\ud800y", "n": 1.50}'
    result = compile_sql("SELECT * FROM 't'").evaluate(SqlMessage("t", raw))
    assert result is not None
    assert result.to_bytes() == b'{"a":"x\\ud800y","n":1.50}'


# --- nested queries over the payload, SELECT VALUE *, IN and CONTAINS ---------------------

SENSORS = {
    "e": [
        {"n": "temperature", "v": 22.5},
        {"n": "light", "v": 135},
        {"n": "acidity", "v": 7},
    ]
}


def test_a_nested_query_may_select_from_the_whole_payload() -> None:
    """``FROM *`` queries the payload as ``SELECT *`` returns it: an Object gives one result."""
    stmt = compile_sql("SELECT (SELECT VALUE get(e, 1).n FROM *) AS x FROM 't'", V2)
    assert selected(stmt, msg(SENSORS)).value == {"x": "light"}
    over_array = compile_sql("SELECT (SELECT VALUE v FROM * WHERE v > 100) AS big FROM 't'", V2)
    assert selected(over_array, msg(SENSORS["e"])).value == {"big": [135]}
    with pytest.raises(SqlError):  # `*.e` is no path: `*` is a whole source, not a field
        compile_sql("SELECT (SELECT VALUE n FROM *.e) AS x FROM 't'", V2)
    inner = compile_sql(
        "SELECT * FROM 't' WHERE (SELECT VALUE n FROM e WHERE v > 100) = ['light']", V2
    )
    assert inner.evaluate(msg(SENSORS)) is not None
    assert inner.evaluate(msg({"e": [{"n": "light", "v": 1}]})) is None
    with pytest.raises(SqlError, match="2016-03-23"):
        compile_sql("SELECT (SELECT VALUE n FROM *) AS x FROM 't'", "2015-10-08")


def test_select_value_star_is_the_payload_itself() -> None:
    stmt = compile_sql("SELECT VALUE * FROM 't'", V2)
    assert selected(stmt, msg(SENSORS)).value == SENSORS
    assert selected(stmt, msg([1, 2])).value == [1, 2]
    raw = selected(stmt, msg(b"\x00not json"))
    assert raw.raw == b"\x00not json" and raw.to_bytes() == b"\x00not json"


def test_in_and_contains_are_keywords_only_as_whole_words() -> None:
    stmt = compile_sql(
        "SELECT inside, index, contained FROM 't' WHERE index IN [1, 2] AND name CONTAINS 'da'",
        V2,
    )
    out = selected(stmt, msg({"inside": 1, "index": 2, "contained": 3, "name": "Ada"}))
    assert out.value == {"inside": 1, "index": 2, "contained": 3}
    assert stmt.evaluate(msg({"index": 3, "name": "Ada"})) is None
    assert stmt.evaluate(msg({"index": 1, "name": "Bob"})) is None
    # Undefined operands make the WHERE Undefined, so the rule does not match
    assert stmt.evaluate(msg({"name": "Ada"})) is None
