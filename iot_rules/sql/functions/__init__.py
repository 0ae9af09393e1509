"""The IoT SQL built-in functions, each ``impl(env, *args)`` over SQL values.

Every function returns Undefined rather than raising when given arguments it cannot use, as
AWS does. Functions that need a service the local stack lacks return Undefined unless the
SqlContext supplies a callable for it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any

from . import timefmt
from .md2 import md2_hex
from .types import (
    UNDEFINED,
    V1,
    V2,
    decimal_to_int,
    float_to_decimal,
    floor_int,
    from_python,
    parse_json,
    to_bool,
    to_decimal,
    to_number,
    to_plain_json,
    to_str,
)


class Env:
    """Per-evaluation state: the value names resolve against, the message, services, vars."""

    __slots__ = ("ctx", "msg", "root", "ts", "v2", "vars")

    def __init__(self, root: Any, msg: Any, ctx: Any, v2: bool) -> None:
        self.root = root
        self.msg = msg
        self.ctx = ctx
        self.vars: dict[str, Any] = {}
        self.ts: int | None = None
        self.v2 = v2

    def nested(self, root: Any) -> Env:
        """An Env for a nested SELECT: same message, variables and timestamp()."""
        if self.ts is None:
            self.ts = self.msg.timestamp_ms or int(time.time() * 1000)
        env = Env(root, self.msg, self.ctx, self.v2)
        env.vars = self.vars
        env.ts = self.ts
        return env


@dataclass(frozen=True)
class Fn:
    impl: Callable[..., Any]
    min_args: int
    max_args: int | None
    since: str = V1
    service: bool = False  # needs an AWS service; Undefined locally unless the context has it


# --- helpers ---------------------------------------------------------------------------------


def _str_args(*args: Any) -> Any:
    out = []
    for a in args:
        s = to_str(a)
        if s is UNDEFINED:
            return UNDEFINED
        out.append(s)
    return out


def _double(fn: Callable[..., float], *args: Any) -> Any:
    vals = []
    for a in args:
        d = to_decimal(a)
        if d is UNDEFINED:
            return UNDEFINED
        vals.append(float(d))
    try:
        return float_to_decimal(fn(*vals))
    except (ValueError, OverflowError, ZeroDivisionError):
        return UNDEFINED


def _math1(fn: Callable[[float], float]) -> Callable[..., Any]:
    return lambda env, a: _double(fn, a)


def _round_to_int(a: Any, rounding: str) -> Any:
    n = to_number(a)
    if n is UNDEFINED:
        return UNDEFINED
    if type(n) is int:
        return n
    return decimal_to_int(n, rounding)


# --- math ------------------------------------------------------------------------------------


def f_abs(env: Env, a: Any) -> Any:
    n = to_number(a)
    return UNDEFINED if n is UNDEFINED else abs(n)


def f_atan2(env: Env, a: Any, b: Any) -> Any:
    return _double(math.atan2, a, b)


def _bit(op: Callable[[int, int], int]) -> Callable[..., Any]:
    def impl(env: Env, a: Any, b: Any) -> Any:
        x, y = floor_int(a), floor_int(b)
        if x is UNDEFINED or y is UNDEFINED:
            return UNDEFINED
        return op(x, y)

    return impl


def f_bitnot(env: Env, a: Any) -> Any:
    x = floor_int(a)
    return UNDEFINED if x is UNDEFINED else ~x


def f_ceil(env: Env, a: Any) -> Any:
    return _round_to_int(a, ROUND_CEILING)


def f_floor(env: Env, a: Any) -> Any:
    return _round_to_int(a, ROUND_FLOOR)


def f_round(env: Env, a: Any) -> Any:
    return _round_to_int(a, ROUND_HALF_UP)


def f_sign(env: Env, a: Any) -> Any:
    n = to_number(a)
    if n is UNDEFINED:
        return UNDEFINED
    return (n > 0) - (n < 0)


def f_mod(env: Env, a: Any, b: Any) -> Any:
    from .types import modulo

    return modulo(a, b)


def f_ln(env: Env, a: Any) -> Any:
    return _double(math.log, a)


def f_log(env: Env, a: Any) -> Any:
    return _double(math.log10, a)


def f_power(env: Env, a: Any, b: Any) -> Any:
    return _double(math.pow, a, b)


def f_sqrt(env: Env, a: Any) -> Any:
    return _double(math.sqrt, a)


def f_nanvl(env: Env, a: Any, b: Any) -> Any:
    if a is UNDEFINED or a is None:
        return b
    if type(a) is Decimal and a.is_nan():
        return b
    return a


def f_trunc(env: Env, a: Any, b: Any) -> Any:
    n = to_number(a)
    places = floor_int(b)
    if n is UNDEFINED or places is UNDEFINED:
        return UNDEFINED
    if type(n) is int:
        return n
    places = min(max(places, 0), 34)
    try:
        d = n.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN)
    except ArithmeticError:
        return UNDEFINED
    if d == d.to_integral_value():
        return int(d)
    return d.normalize()


def f_rand(env: Env) -> Any:
    return float_to_decimal(random.random())  # noqa: S311 - AWS's rand() is not for secrets


# --- strings ---------------------------------------------------------------------------------


def f_chr(env: Env, a: Any) -> Any:
    code = floor_int(a)
    if code is UNDEFINED or not 0 <= code <= 127:
        return UNDEFINED
    return chr(code)


def f_concat(env: Env, *args: Any) -> Any:
    if not args:
        return UNDEFINED
    if len(args) == 1:
        # one argument: an Array comes back as is, anything else as its String form
        return args[0] if type(args[0]) is list else to_str(args[0])
    if any(type(a) is list for a in args):
        out: list[Any] = []
        for a in args:
            if type(a) is list:
                out.extend(a)
            elif a is not UNDEFINED:
                out.append(a)
        return out
    parts = _str_args(*args)
    return UNDEFINED if parts is UNDEFINED else "".join(parts)


def _str2(test: Callable[[str, str], Any]) -> Callable[..., Any]:
    def impl(env: Env, a: Any, b: Any) -> Any:
        parts = _str_args(a, b)
        return UNDEFINED if parts is UNDEFINED else test(parts[0], parts[1])

    return impl


def _str1(op: Callable[[str], Any]) -> Callable[..., Any]:
    def impl(env: Env, a: Any) -> Any:
        s = to_str(a)
        return UNDEFINED if s is UNDEFINED else op(s)

    return impl


def java_length(s: str) -> int:
    """String length in UTF-16 code units, as Java (and so the rules engine) counts."""
    if s.isascii():
        return len(s)
    return len(s.encode("utf-16-le")) // 2


def _pad(left: bool) -> Callable[..., Any]:
    def impl(env: Env, a: Any, n: Any) -> Any:
        s = to_str(a)
        k = floor_int(n)
        if s is UNDEFINED or k is UNDEFINED:
            return UNDEFINED
        k = min(max(k, 0), 1000)
        return " " * k + s if left else s + " " * k

    return impl


_WS = " \t\n\r\f\v"


@lru_cache(maxsize=512)
def compile_regex(pattern: str) -> Any:
    """Java regexes are close enough to Python's for the patterns rules use; cache them."""
    try:
        return re.compile(pattern)
    except (re.error, RecursionError, OverflowError):
        return None


_JAVA_GROUP_REF = re.compile(r"\\(.)|\$(\d+|\{[A-Za-z][A-Za-z0-9]*\})")


def java_replacement(repl: str) -> Callable[[re.Match[str]], str]:
    """``$1``/``${name}`` group references and ``\\$`` escapes, as Java's Matcher does."""
    pieces: list[Any] = []
    pos = 0
    for m in _JAVA_GROUP_REF.finditer(repl):
        pieces.append(repl[pos : m.start()])
        if m.group(1) is not None:
            pieces.append(m.group(1))
        else:
            ref = m.group(2)
            pieces.append(int(ref) if ref.isdigit() else ref[1:-1])
        pos = m.end()
    pieces.append(repl[pos:])

    def expand(match: re.Match[str]) -> str:
        out = []
        for p in pieces:
            if isinstance(p, str):
                out.append(p)
            else:
                out.append(match.group(p) or "")
        return "".join(out)

    return expand


def f_regexp_matches(env: Env, a: Any, p: Any) -> Any:
    parts = _str_args(a, p)
    if parts is UNDEFINED:
        return UNDEFINED
    rx = compile_regex(parts[1])
    return UNDEFINED if rx is None else rx.search(parts[0]) is not None


def f_regexp_replace(env: Env, a: Any, p: Any, r: Any) -> Any:
    parts = _str_args(a, p, r)
    if parts is UNDEFINED:
        return UNDEFINED
    rx = compile_regex(parts[1])
    if rx is None:
        return UNDEFINED
    try:
        return rx.sub(java_replacement(parts[2]), parts[0])
    except (IndexError, re.error):
        return UNDEFINED


def f_regexp_substr(env: Env, a: Any, p: Any) -> Any:
    parts = _str_args(a, p)
    if parts is UNDEFINED:
        return UNDEFINED
    rx = compile_regex(parts[1])
    if rx is None:
        return UNDEFINED
    m = rx.search(parts[0])
    return m.group(0) if m else ""


def f_replace(env: Env, a: Any, b: Any, c: Any) -> Any:
    parts = _str_args(a, b, c)
    return UNDEFINED if parts is UNDEFINED else parts[0].replace(parts[1], parts[2])


def f_substring(env: Env, a: Any, start: Any, end: Any = None) -> Any:
    s = to_str(a)
    i = floor_int(start)
    if s is UNDEFINED or i is UNDEFINED:
        return UNDEFINED
    n = len(s)
    i = min(max(i, 0), n)
    if end is None:
        return s[i:]
    j = floor_int(end)
    if j is UNDEFINED:
        return UNDEFINED
    j = min(max(j, 0), n)
    return s[i:j] if i < j else ""


def f_indexof(env: Env, a: Any, b: Any) -> Any:
    parts = _str_args(a, b)
    return UNDEFINED if parts is UNDEFINED else parts[0].find(parts[1])


# --- hashes ----------------------------------------------------------------------------------


def _hash(name: str) -> Callable[..., Any]:
    def impl(env: Env, a: Any) -> Any:
        s = to_str(a)
        if s is UNDEFINED:
            return UNDEFINED
        return hashlib.new(name, s.encode("utf-8")).hexdigest()

    return impl


def f_md2(env: Env, a: Any) -> Any:
    s = to_str(a)
    return UNDEFINED if s is UNDEFINED else md2_hex(s.encode("utf-8"))


# --- message context -------------------------------------------------------------------------


def f_clientid(env: Env) -> Any:
    return env.msg.client_id


def f_principal(env: Env) -> Any:
    p = env.msg.principal
    return UNDEFINED if p is None else p


def f_topic(env: Env, n: Any = None) -> Any:
    topic = env.msg.topic
    if topic.startswith("$aws/rules/"):
        # Basic Ingest: the "$aws/rules/<rule-name>/" prefix is not part of topic()
        topic = topic.split("/", 3)[3] if topic.count("/") >= 3 else ""
    if n is None:
        return topic
    i = floor_int(n)
    if i is UNDEFINED or i < 1:
        return UNDEFINED
    levels = topic.split("/")
    return levels[i - 1] if i <= len(levels) else UNDEFINED


def f_traceid(env: Env) -> Any:
    t = env.msg.trace_id
    return UNDEFINED if t is None else t


def f_timestamp(env: Env) -> Any:
    if env.ts is None:
        env.ts = env.msg.timestamp_ms or int(time.time() * 1000)
    return env.ts


def f_newuuid(env: Env) -> Any:
    return str(uuid.uuid4())


def f_accountid(env: Env) -> Any:
    return env.ctx.account_id


def f_sourceip(env: Env) -> Any:
    ip = env.msg.source_ip
    return UNDEFINED if ip is None else ip


def _mqtt_property_value(v: Any) -> Any:
    if isinstance(v, bytes | bytearray):
        return base64.b64encode(bytes(v)).decode("ascii")
    return from_python(v)


def f_get_mqtt_property(env: Env, name: Any) -> Any:
    if type(name) is not str:
        return UNDEFINED
    props = env.msg.properties
    if name in props:
        return _mqtt_property_value(props[name])
    low = name.lower()
    for k, v in props.items():
        if str(k).lower() == low:
            return _mqtt_property_value(v)
    return UNDEFINED


def f_get_user_properties(env: Env, key: Any) -> Any:
    if type(key) is not str:
        return UNDEFINED
    values = [v for k, v in env.msg.user_properties if k == key]
    return values if values else UNDEFINED


# --- conversions and structure ---------------------------------------------------------------


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
    return UNDEFINED if s is UNDEFINED else encode_base64(s.encode("utf-8"))


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


# --- services --------------------------------------------------------------------------------


def f_aws_lambda(env: Env, arn: Any, payload: Any) -> Any:
    call = env.ctx.invoke_lambda
    if call is None or type(arn) is not str or payload is UNDEFINED:
        return UNDEFINED
    return from_python(call(arn, to_plain_json(payload)), env.v2)


def f_get_dynamodb(env: Env, *args: Any) -> Any:
    call = env.ctx.get_dynamodb
    if call is None:
        return UNDEFINED
    if len(args) == 4:
        table, pk_name, pk_value, role = args
        sk_name = sk_value = None
    else:
        table, pk_name, pk_value, sk_name, sk_value, role = args
    if type(table) is not str or type(pk_name) is not str or pk_value is UNDEFINED:
        return UNDEFINED
    item = call(
        table,
        pk_name,
        to_plain_json(pk_value),
        sk_name if type(sk_name) is str else None,
        None if sk_value is None or sk_value is UNDEFINED else to_plain_json(sk_value),
        role if type(role) is str else "",
    )
    return UNDEFINED if item is None else from_python(item, env.v2)


def _service(attr: str) -> Callable[..., Any]:
    def impl(env: Env, *args: Any) -> Any:
        call = getattr(env.ctx, attr)
        if call is None or any(a is UNDEFINED for a in args):
            return UNDEFINED
        result = call(*(to_plain_json(a) for a in args))
        return UNDEFINED if result is None else from_python(result, env.v2)

    return impl


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
        return _round_to_int(v, ROUND_FLOOR)
    d = to_decimal(v)
    if d is UNDEFINED:
        return UNDEFINED
    if kind == "double":
        return _double(float, d)
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


FUNCTIONS: dict[str, Fn] = {
    "abs": Fn(f_abs, 1, 1),
    "acos": Fn(_math1(math.acos), 1, 1),
    "asin": Fn(_math1(math.asin), 1, 1),
    "atan": Fn(_math1(math.atan), 1, 1),
    "atan2": Fn(f_atan2, 2, 2),
    "bitand": Fn(_bit(lambda x, y: x & y), 2, 2),
    "bitor": Fn(_bit(lambda x, y: x | y), 2, 2),
    "bitxor": Fn(_bit(lambda x, y: x ^ y), 2, 2),
    "bitnot": Fn(f_bitnot, 1, 1),
    "ceil": Fn(f_ceil, 1, 1),
    "cos": Fn(_math1(math.cos), 1, 1),
    "cosh": Fn(_math1(math.cosh), 1, 1),
    "exp": Fn(_math1(math.exp), 1, 1),
    "floor": Fn(f_floor, 1, 1),
    "ln": Fn(f_ln, 1, 1),
    "log": Fn(f_log, 1, 1),
    "mod": Fn(f_mod, 2, 2),
    "nanvl": Fn(f_nanvl, 2, 2),
    "power": Fn(f_power, 2, 2),
    "remainder": Fn(f_mod, 2, 2),
    "round": Fn(f_round, 1, 1),
    "sign": Fn(f_sign, 1, 1),
    "sin": Fn(_math1(math.sin), 1, 1),
    "sinh": Fn(_math1(math.sinh), 1, 1),
    "sqrt": Fn(f_sqrt, 1, 1),
    "tan": Fn(_math1(math.tan), 1, 1),
    "tanh": Fn(_math1(math.tanh), 1, 1),
    "trunc": Fn(f_trunc, 2, 2),
    "rand": Fn(f_rand, 0, 0),
    "chr": Fn(f_chr, 1, 1),
    "concat": Fn(f_concat, 0, None),
    "endswith": Fn(_str2(lambda a, b: a.endswith(b)), 2, 2),
    "indexof": Fn(f_indexof, 2, 2, V2),
    "length": Fn(_str1(java_length), 1, 1, V2),
    "lower": Fn(_str1(str.lower), 1, 1),
    "lpad": Fn(_pad(True), 2, 2),
    "ltrim": Fn(_str1(lambda s: s.lstrip(_WS)), 1, 1),
    "numbytes": Fn(_str1(lambda s: len(s.encode("utf-8", "surrogatepass"))), 1, 1, V2),
    "regexp_matches": Fn(f_regexp_matches, 2, 2),
    "regexp_replace": Fn(f_regexp_replace, 3, 3),
    "regexp_substr": Fn(f_regexp_substr, 2, 2),
    "replace": Fn(f_replace, 3, 3),
    "rpad": Fn(_pad(False), 2, 2),
    "rtrim": Fn(_str1(lambda s: s.rstrip(_WS)), 1, 1),
    "startswith": Fn(_str2(lambda a, b: a.startswith(b)), 2, 2),
    "substring": Fn(f_substring, 2, 3),
    "trim": Fn(_str1(lambda s: s.strip(_WS)), 1, 1),
    "upper": Fn(_str1(str.upper), 1, 1),
    "md2": Fn(f_md2, 1, 1),
    "md5": Fn(_hash("md5"), 1, 1),
    "sha1": Fn(_hash("sha1"), 1, 1),
    "sha224": Fn(_hash("sha224"), 1, 1),
    "sha256": Fn(_hash("sha256"), 1, 1),
    "sha384": Fn(_hash("sha384"), 1, 1),
    "sha512": Fn(_hash("sha512"), 1, 1),
    "accountid": Fn(f_accountid, 0, 0),
    "clientid": Fn(f_clientid, 0, 0),
    "principal": Fn(f_principal, 0, 0),
    "topic": Fn(f_topic, 0, 1),
    "traceid": Fn(f_traceid, 0, 0),
    "timestamp": Fn(f_timestamp, 0, 0),
    "newuuid": Fn(f_newuuid, 0, 0),
    "sql_version": Fn(f_sql_version, 0, 0),
    "sourceip": Fn(f_sourceip, 0, 0),
    "isnull": Fn(f_isnull, 1, 1),
    "isundefined": Fn(f_isundefined, 1, 1, V2),
    "get": Fn(f_get, 2, 2),
    "get_or_default": Fn(f_get_or_default, 2, 2),
    "encode": Fn(f_encode, 2, 2, V2),
    "decode": Fn(f_decode, 2, 2, V2),
    "parse_time": Fn(f_parse_time, 2, 3, V2),
    "time_to_epoch": Fn(f_time_to_epoch, 2, 2, V2),
    "transform": Fn(f_transform, 3, 3, V2),
    "get_mqtt_property": Fn(f_get_mqtt_property, 1, 1),
    "get_user_properties": Fn(f_get_user_properties, 1, 1),
    "aws_lambda": Fn(f_aws_lambda, 2, 2, service=True),
    "get_dynamodb": Fn(f_get_dynamodb, 4, 6, V2, service=True),
    "get_secret": Fn(_service("get_secret"), 2, 4, service=True),
    "get_thing_shadow": Fn(_service("get_thing_shadow"), 2, 3, V2, service=True),
    "machinelearning_predict": Fn(_service("machinelearning_predict"), 3, 3, service=True),
    "get_registry_data": Fn(_service("get_registry_data"), 3, 3, service=True),
}

# Functions whose result depends on more than their arguments: never constant-folded.
IMPURE = frozenset(
    {
        "rand",
        "accountid",
        "clientid",
        "principal",
        "topic",
        "traceid",
        "timestamp",
        "newuuid",
        "sql_version",
        "sourceip",
        "get_mqtt_property",
        "get_user_properties",
        "decode",
    }
) | frozenset(name for name, fn in FUNCTIONS.items() if fn.service)
