"""Conversions and structure: null tests, ``get``, ``encode``/``decode``, ``transform``, the
time functions (formats in ``timefmt``) and ``cast(v AS type)``.
"""

from __future__ import annotations

import base64
import binascii
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from .. import timefmt
from ..types import (
    UNDEFINED,
    V1,
    V2,
    floor_int,
    parse_json,
    to_bool,
    to_decimal,
    to_str,
)
from .base import Env, double, round_to_int
from .strings import java_utf8


def f_isnull(env: Env, a: Any) -> Any:
    return a is None


def f_isundefined(env: Env, a: Any) -> Any:
    return a is UNDEFINED


def f_get(env: Env, coll: Any, key: Any) -> Any:
    t = type(coll)
    if t is dict:
        if type(key) is str:
            return coll.get(key, UNDEFINED)
        return UNDEFINED
    if t is list or t is str:
        i = floor_int(key)
        if i is UNDEFINED or i < 0 or i >= len(coll):
            return UNDEFINED
        return coll[i]
    return UNDEFINED


def f_get_or_default(env: Env, a: Any, default: Any) -> Any:
    return default if a is UNDEFINED or a is None else a


def encode_base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def f_encode(env: Env, value: Any, scheme: Any) -> Any:
    if type(scheme) is not str or scheme.lower() != "base64":
        return UNDEFINED
    if type(value) is bytes:
        return encode_base64(value)
    s = to_str(value)
    return UNDEFINED if s is UNDEFINED else encode_base64(java_utf8(s))


def f_decode(env: Env, value: Any, scheme: Any) -> Any:
    if type(scheme) is not str or scheme.lower() != "base64":
        return UNDEFINED
    s = to_str(value)
    if s is UNDEFINED:
        return UNDEFINED
    try:
        raw = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        return None
    parsed = parse_json(raw, env.v2)
    if parsed is not UNDEFINED:
        return parsed
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def f_transform(env: Env, mode: Any, obj: Any, arr: Any) -> Any:
    if mode != "enrichArray" or type(obj) is not dict or type(arr) is not list:
        return UNDEFINED
    out = []
    for item in arr:
        if type(item) is dict:
            merged = dict(item)
            merged.update(obj)
            out.append(merged)
    return out


def f_sql_version(env: Env) -> Any:
    return V2 if env.v2 else V1


def f_parse_time(env: Env, pattern: Any, ts: Any, tz: Any = None) -> Any:
    ms = floor_int(ts)
    if type(pattern) is not str or ms is UNDEFINED:
        return UNDEFINED
    zone = "UTC" if tz is None else tz
    if type(zone) is not str:
        return UNDEFINED
    return timefmt.format_time(pattern, ms, zone)


def f_time_to_epoch(env: Env, text: Any, pattern: Any) -> Any:
    if type(text) is not str or type(pattern) is not str:
        return UNDEFINED
    return timefmt.parse_time_to_epoch(text, pattern)


def _cast_bool(v: Any) -> Any:
    t = type(v)
    if t is int or t is Decimal:
        return v != 0
    return to_bool(v)


def cast_value(v: Any, type_name: str, v2: bool) -> Any:
    """``cast(v AS type)``; unknown type keywords were rejected at compile time."""
    kind = CAST_TYPES[type_name.lower()]
    if v is UNDEFINED or v is None:
        return UNDEFINED
    t = type(v)
    if kind == "string":
        return to_str(v)
    if kind == "bool":
        return _cast_bool(v)
    if t is bool:
        if kind == "int":
            return int(v)
        return Decimal(1) if v else Decimal(0)
    if kind == "int":
        return round_to_int(v, ROUND_FLOOR)
    d = to_decimal(v)
    if d is UNDEFINED:
        return UNDEFINED
    if kind == "double":
        return double(float, d)
    return d


CAST_TYPES = {
    "string": "string",
    "nvarchar": "string",
    "text": "string",
    "ntext": "string",
    "varchar": "string",
    "int": "int",
    "integer": "int",
    "double": "double",
    "decimal": "decimal",
    "bool": "bool",
    "boolean": "bool",
}
CAST_TYPES_V2_ONLY = frozenset({"decimal", "bool", "boolean"})
