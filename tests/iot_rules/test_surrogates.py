"""Lone surrogates in IoT SQL: JSON lets a payload hold ``"\\ud800"`` (a UTF-16 unit that is no
character). AWS runs IoT SQL on the JVM, whose strings are UTF-16, so such a string is an
ordinary value there: ``length()`` counts it as one unit, ``getBytes(UTF_8)`` turns it into
``?``. Here no function may raise on one (an exception would drop the message in silence), under
either SQL version.

https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-functions.html (length: "the number
of characters in the provided string"; numbytes: "bytes in the UTF-8 encoding")
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iot_rules.sql import SqlMessage, compile_sql
from iot_rules.sql.functions import FUNCTIONS

V1 = "2015-10-08"
V2 = "2016-03-23"
# The test the chat's rules use for "holds a lone surrogate" (valid Java and Python regex).
LONE = r"'^[^\uD800-\uDFFF]*+[\uD800-\uDFFF]'"


def evaluate(sql: str, payload: bytes, version: str) -> dict[str, Any]:
    result = compile_sql(sql, version).evaluate(SqlMessage("t", payload))
    assert result is not None
    value = json.loads(result.to_bytes())
    assert isinstance(value, dict)
    return value


def test_length_counts_a_lone_surrogate_as_one_utf16_unit() -> None:
    payload = b'{"a": "hi \\ud800", "b": "\\udc00\\ud83d", "c": "hi \\ud83d\\ude00"}'
    out = evaluate(
        "SELECT length(a) AS a, length(b) AS b, length(c) AS c, numbytes(a) AS na, "
        "indexof(a, '\\ud800') AS i FROM 't'",
        payload,
        V2,
    )
    # "hi " + one unit; two lone units; "hi " + a pair (two units, as Java counts)
    assert (out["a"], out["b"], out["c"]) == (4, 2, 5)
    assert out["na"] >= 4 and out["i"] == 3


def test_length_is_a_2016_function_and_2015_refuses_it_cleanly() -> None:
    from iot_rules.sql import SqlError

    with pytest.raises(SqlError):
        compile_sql("SELECT length(a) AS n FROM 't'", V1)


@pytest.mark.parametrize("version", [V1, V2])
def test_string_functions_and_hashes_take_lone_surrogates(version: str) -> None:
    payload = b'{"a": " hi \\ud800 "}'
    out = evaluate(
        "SELECT trim(a) AS t, upper(a) AS u, lower(a) AS l, substring(a, 1, 3) AS s, "
        "concat(a, 'x') AS c, replace(a, 'hi', 'yo') AS r, startswith(a, ' hi') AS sw, "
        "md5(a) AS m, sha256(a) AS h, cast(a AS String) AS cs, "
        f"regexp_matches(a, {LONE}) AS lone, regexp_matches('hi \U0001f600', {LONE}) AS pair "
        "FROM 't'",
        payload,
        version,
    )
    assert out["t"] == "hi \ud800" and out["u"] == " HI \ud800 " and out["s"] == "hi"
    assert out["c"] == " hi \ud800 x" and out["r"] == " yo \ud800 " and out["sw"] is True
    assert out["cs"] == " hi \ud800 "
    # Java's getBytes(UTF_8) replaces the lone surrogate with "?"
    assert out["m"] == hashlib.md5(b" hi ? ").hexdigest()
    assert out["h"] == hashlib.sha256(b" hi ? ").hexdigest()
    assert out["lone"] is True and out["pair"] is False


def test_encode_base64_of_a_lone_surrogate_is_javas_bytes() -> None:
    out = evaluate("SELECT encode(a, 'base64') AS e FROM 't'", b'{"a": "x\\ud800"}', V2)
    assert out["e"] == "eD8="  # base64 of b"x?"


# Any string with lone surrogates among other characters, pairs included.
surrogate_texts = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
        st.characters(codec="utf-8"),
        st.sampled_from(["\U0001f600", " ", "\t"]),
    ),
    max_size=12,
)
ONE_STRING_ARGUMENT = sorted(
    name
    for name, fn in FUNCTIONS.items()
    if fn.min_args == 1 and not fn.service and name not in {"get_mqtt_property", "chr"}
)


@settings(max_examples=150, deadline=None)
@given(surrogate_texts, st.sampled_from([V1, V2]))
def test_no_one_argument_function_raises_on_any_string(text: str, version: str) -> None:
    payload = json.dumps({"a": text}).encode()  # ensure_ascii: lone surrogates as \\udXXX
    names = [n for n in ONE_STRING_ARGUMENT if version == V2 or FUNCTIONS[n].since != V2]
    sql = "SELECT " + ", ".join(f"{name}(a) AS f{i}" for i, name in enumerate(names)) + " FROM 't'"
    result = compile_sql(sql, version).evaluate(SqlMessage("t", payload))
    assert result is not None
    result.to_bytes()
