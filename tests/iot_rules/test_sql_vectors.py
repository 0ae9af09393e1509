"""The AWS IoT SQL reference's documented examples, run as data (sql_vectors.json).

Each vector is one statement, one message and the output the AWS docs give for it, with the
page of the SQL reference it comes from; numbers are compared with their type (Int 10 is not
Decimal 10.0), as AWS's output differs between them.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from iot_rules.sql import SqlError, SqlMessage, compile_sql

VECTORS = json.loads(
    (Path(__file__).with_name("sql_vectors.json")).read_text(encoding="utf-8"),
    parse_float=Decimal,
)["vectors"]


def same(actual: Any, expected: Any) -> bool:
    """Equal values of the same SQL type, recursively."""
    if type(actual) is not type(expected):
        return False
    if isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(
            same(actual[k], expected[k]) for k in expected
        )
    if isinstance(expected, list):
        return len(actual) == len(expected) and all(
            same(a, e) for a, e in zip(actual, expected, strict=True)
        )
    return actual == expected


PAGES = "https://docs.aws.amazon.com/iot/latest/developerguide/"


def test_there_are_enough_vectors_and_each_cites_its_page() -> None:
    assert len(VECTORS) >= 600
    assert {v["version"] for v in VECTORS} == {"2015-10-08", "2016-03-23"}
    for vector in VECTORS:
        assert vector["page"].startswith(PAGES) and vector["page"].endswith(".html"), vector
    cited = {v["page"].removeprefix(PAGES) for v in VECTORS}
    for page in (
        "iot-sql-case.html",
        "iot-sql-nested-queries.html",
        "iot-sql-select.html",
        "iot-sql-operators.html",
        "iot-sql-data-types.html",
        "iot-sql-functions.html",
    ):
        assert page in cited, page


@pytest.mark.parametrize(
    "vector",
    VECTORS,
    ids=[f"{i}-{v['version'][:4]}-{v['doc'][:40]}" for i, v in enumerate(VECTORS)],
)
def test_vector(vector: dict[str, Any]) -> None:
    if vector.get("error"):
        with pytest.raises(SqlError):
            compile_sql(vector["sql"], vector["version"])
        return
    stmt = compile_sql(vector["sql"], vector["version"])
    msg = SqlMessage(
        topic=vector["topic"],
        payload=vector["payload"].encode("utf-8"),
        client_id=vector["client_id"],
        timestamp_ms=vector.get("timestamp_ms", 0),
    )
    expected = vector["expected"]
    result = stmt.evaluate(msg) if stmt.matches(msg.topic) else None
    assert (result is not None) == expected["matched"]
    if result is None:
        return
    if "raw_result" in vector:
        # the raw payload of SELECT * over non-JSON, or "" for an Undefined SELECT VALUE
        assert result.raw == vector["raw_result"].encode("utf-8")
        assert result.to_bytes() == result.raw
        return
    # through the wire format, exactly as an action would see it
    output = json.loads(result.to_bytes(), parse_float=Decimal)
    assert same(output, expected["result"]), (output, expected["result"])
