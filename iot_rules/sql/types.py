"""AWS IoT SQL value semantics on plain Python values.

Int is ``int``, Decimal is ``decimal.Decimal`` (exact, 34 significant digits like Java's
decimal128), Boolean ``bool``, String ``str``, Array ``list``, Object ``dict``, Null ``None`` and
Undefined the ``UNDEFINED`` singleton. ``bool`` is an ``int`` subclass in Python, so numeric
checks use ``type(v) is int``, never ``isinstance``.
"""

from __future__ import annotations

import decimal
import json
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

V1 = "2015-10-08"
V2 = "2016-03-23"
VERSIONS = (V1, V2)


class _Undefined:
    """AWS's Undefined: a missing key or a function given arguments it cannot use."""

    __slots__ = ()
    _instance: _Undefined | None = None

    def __new__(cls) -> _Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "Undefined"

    def __bool__(self) -> bool:
        return False


UNDEFINED: Any = _Undefined()
Undefined = UNDEFINED

# decimal128, as the rules engine's BigDecimal arithmetic; traps turn 1/0 into an exception.
CTX = decimal.Context(
    prec=34,
    rounding=decimal.ROUND_HALF_EVEN,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)

# A SQL value: int, Decimal, bool, str, list, dict, None or UNDEFINED. Typed Any because the
# hot paths dispatch on ``type(v) is ...`` (exact types, see above), which mypy does not narrow.
SqlValue = Any

DECIMAL_STRING = re.compile(r"^-?\d+(\.\d+)?([eE]-?\d+)?$")
_NUMBER_TYPES = (int, Decimal)


def is_number(v: SqlValue) -> bool:
    t = type(v)
    return t is int or t is Decimal


def to_number(v: SqlValue) -> Any:
    """Int or Decimal for numbers and numeric strings; Undefined otherwise."""
    t = type(v)
    if t is int or t is Decimal:
        return v
    if t is str and DECIMAL_STRING.match(v):
        return Decimal(v)
    return UNDEFINED


def to_decimal(v: SqlValue) -> Any:
    t = type(v)
    if t is Decimal:
        return v
    if t is int:
        return Decimal(v)
    if t is str and DECIMAL_STRING.match(v):
        return Decimal(v)
    return UNDEFINED


# Int has 34 digits; larger magnitudes are clamped before becoming Python ints, so a payload
# such as 1E+999999999 cannot make the engine build a billion-digit integer.
INT_LIMIT = 10**34


def decimal_to_int(d: Decimal, rounding: str = decimal.ROUND_FLOOR) -> Any:
    """A finite Decimal rounded to an Int, clamped to +-10**34; Undefined for NaN/inf."""
    if not d.is_finite():
        return UNDEFINED
    if d.adjusted() > 34:
        return INT_LIMIT if d > 0 else -INT_LIMIT
    return int(d.to_integral_value(rounding=rounding))


def floor_int(v: SqlValue) -> Any:
    """Number or numeric string rounded down to an Int, as the bit and pad functions do."""
    n = to_number(v)
    if n is UNDEFINED or type(n) is int:
        return n
    return decimal_to_int(n)


def to_bool(v: SqlValue) -> Any:
    """Boolean, or the strings "true"/"false" in any case; Undefined otherwise."""
    if v is True or v is False:
        return v
    if type(v) is str:
        low = v.lower()
        if low == "true":
            return True
        if low == "false":
            return False
    return UNDEFINED


def decimal_str(d: Decimal) -> str:
    return str(d)


def to_str(v: SqlValue) -> Any:
    """The standard String conversion: Null and Undefined have none."""
    t = type(v)
    if t is str:
        return v
    if v is True:
        return "true"
    if v is False:
        return "false"
    if t is int:
        return str(v)
    if t is Decimal:
        return decimal_str(v)
    if t is list or t is dict:
        return dumps(v)
    return UNDEFINED


def whole_to_int(v: Any) -> Any:
    """SQL 2016-03-23 reports whole-number Decimals as Int (``10.0`` -> ``10``)."""
    if type(v) is Decimal and v.is_finite() and v.adjusted() < 34 and v == v.to_integral_value():
        return int(v)
    return v


def float_to_decimal(f: float) -> Any:
    """A double result (math functions) as a Decimal; NaN and infinities are Undefined."""
    if f != f or f in (float("inf"), float("-inf")):
        return UNDEFINED
    return Decimal(repr(f))


def from_python(v: Any, v2: bool = False) -> Any:
    """A JSON value from outside (Lambda, DynamoDB) as SQL values: floats become Decimals."""
    t = type(v)
    if t is float:
        d = float_to_decimal(v)
        return whole_to_int(d) if v2 else d
    if t is dict:
        return {str(k): from_python(x, v2) for k, x in v.items() if x is not UNDEFINED}
    if t in (list, tuple):
        return [from_python(x, v2) for x in v if x is not UNDEFINED]
    if t is Decimal and v2:
        return whole_to_int(v)
    if t is bytes:
        return v.decode("utf-8", "replace")
    if v is None or t in (str, int, bool, Decimal):
        return v
    if isinstance(v, int):
        return int(v)
    return UNDEFINED


def to_plain(v: Any) -> Any:
    """Decimals as ``json.loads`` would give them (int or float); the same object if none."""
    t = type(v)
    if t is Decimal:
        if not v.is_finite():
            return None
        if v.as_tuple().exponent >= 0 and v.adjusted() < 34:
            return int(v)
        f = float(v)
        return f if f not in (float("inf"), float("-inf")) else None
    if t is dict:
        out = None
        for k, x in v.items():
            y = to_plain(x)
            if y is not x:
                if out is None:
                    out = dict(v)
                out[k] = y
        return v if out is None else out
    if t is list:
        items = [to_plain(x) for x in v]
        return v if all(a is b for a, b in zip(items, v, strict=True)) else items
    return v


def to_plain_json(v: Any) -> Any:
    """A value as ``json.loads`` would give it (Decimals to floats), for callbacks."""
    return json.loads(dumps(v))


def parse_json(payload: bytes, v2: bool) -> Any:
    """Parse a payload once per message; Undefined when it is not JSON."""
    try:
        return json.loads(payload, parse_float=_parse_float_v2 if v2 else Decimal)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return UNDEFINED


def _parse_float_v2(s: str) -> Any:
    return whole_to_int(Decimal(s))


# --- JSON output -----------------------------------------------------------------------------


class _NeedsSlowPath(Exception):
    pass


def _refuse(o: object) -> Any:
    raise _NeedsSlowPath


_FAST = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_refuse
).encode
_encode_str = json.encoder.encode_basestring


_FAST_ASCII = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=True, allow_nan=False, default=_refuse
).encode
_encode_str_ascii = json.encoder.encode_basestring_ascii


def dumps(v: Any, ascii_only: bool = False) -> str:
    """Compact JSON with exact Decimals; Undefined members are dropped as AWS does."""
    try:
        return (_FAST_ASCII if ascii_only else _FAST)(v)
    except _NeedsSlowPath:
        parts: list[str] = []
        _encode(v, parts, _encode_str_ascii if ascii_only else _encode_str)
        return "".join(parts)


def _encode(v: Any, out: list[str], enc: Any = _encode_str) -> None:
    t = type(v)
    if t is str:
        out.append(enc(v))
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif v is None:
        out.append("null")
    elif t is int:
        out.append(str(v))
    elif t is Decimal:
        out.append(decimal_str(v) if v.is_finite() else "null")
    elif t is float:
        out.append(repr(v) if v == v and v not in (float("inf"), float("-inf")) else "null")
    elif t is dict:
        out.append("{")
        first = True
        for k, x in v.items():
            if x is UNDEFINED:
                continue
            if not first:
                out.append(",")
            first = False
            out.append(enc(str(k)))
            out.append(":")
            _encode(x, out, enc)
        out.append("}")
    elif t is list or t is tuple:
        out.append("[")
        first = True
        for x in v:
            if x is UNDEFINED:
                continue
            if not first:
                out.append(",")
            first = False
            _encode(x, out, enc)
        out.append("]")
    else:
        out.append("null")


# --- operators -------------------------------------------------------------------------------


def equals(a: Any, b: Any) -> Any:
    """``=``: Undefined if either side is; mismatched types are simply unequal."""
    if a is UNDEFINED or b is UNDEFINED:
        return UNDEFINED
    return _eq(a, b)


def _eq(a: Any, b: Any) -> bool:
    ta, tb = type(a), type(b)
    if ta in _NUMBER_TYPES and tb in _NUMBER_TYPES:
        return a == b
    if ta is not tb:
        return False
    if ta is list:
        return len(a) == len(b) and all(_eq(x, y) for x, y in zip(a, b, strict=True))
    if ta is dict:
        return a.keys() == b.keys() and all(_eq(a[k], b[k]) for k in a)
    return a == b


def not_equals(a: Any, b: Any) -> Any:
    if a is UNDEFINED or b is UNDEFINED:
        return UNDEFINED
    return not _eq(a, b)


# What IN looks for and CONTAINS looks for in an Array: "Int/Decimal/String/Array/Object"
# (https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-operators.html#iot-sql-operators-in).
_SEARCHABLE = (int, Decimal, str, list, dict)


def in_array(a: Any, b: Any) -> Any:
    """``a IN b``: whether the Array ``b`` holds an element equal to ``a`` (``=``'s equality);
    Undefined unless ``b`` is an Array and ``a`` a number, String, Array or Object."""
    if type(b) is not list or type(a) not in _SEARCHABLE:
        return UNDEFINED
    return any(_eq(a, item) for item in b)


def contains(a: Any, b: Any) -> Any:
    """``a CONTAINS b``: a substring of a String, or an element of an Array; else Undefined
    (https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-operators.html)."""
    if type(a) is str and type(b) is str:
        return b in a
    if type(a) is list and type(b) in _SEARCHABLE:
        return any(_eq(b, item) for item in a)
    return UNDEFINED


def compare(a: Any, b: Any) -> Any:
    """-1/0/1 after converting both sides to numbers; Undefined if either cannot be."""
    x = to_number(a)
    if x is UNDEFINED:
        return UNDEFINED
    y = to_number(b)
    if y is UNDEFINED:
        return UNDEFINED
    return (x > y) - (x < y)


def type_name(v: Any) -> str:
    t = type(v)
    if v is UNDEFINED:
        return "Undefined"
    if v is None:
        return "Null"
    if t is bool:
        return "Boolean"
    if t is int:
        return "Int"
    if t is Decimal:
        return "Decimal"
    if t is str:
        return "String"
    if t is list:
        return "Array"
    if t is dict:
        return "Object"
    return "Undefined"


def _num_pair(a: Any, b: Any) -> tuple[Any, Any]:
    x = to_number(a)
    if x is UNDEFINED:
        return UNDEFINED, UNDEFINED
    y = to_number(b)
    if y is UNDEFINED:
        return UNDEFINED, UNDEFINED
    return x, y


def add(a: Any, b: Any) -> Any:
    """``+``: concatenation if either side is a String, else Int+Int -> Int, else Decimal."""
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        return a + b
    if ta is str or tb is str:
        sa = to_str(a)
        sb = to_str(b)
        if sa is UNDEFINED or sb is UNDEFINED:
            return UNDEFINED
        return sa + sb
    x, y = _num_pair(a, b)
    if x is UNDEFINED:
        return UNDEFINED
    if type(x) is int and type(y) is int:
        return x + y
    return _dec_op(CTX.add, x, y)


def _dec_op(op: Any, x: Any, y: Any) -> Any:
    try:
        return op(Decimal(x) if type(x) is int else x, Decimal(y) if type(y) is int else y)
    except (ArithmeticError, ValueError):
        return UNDEFINED


def _arithmetic(
    int_op: Callable[[int, int], Any], decimal_op: Callable[[Decimal, Decimal], Decimal]
) -> Callable[[Any, Any], Any]:
    """A binary operator on numbers and numeric strings: Int with Int through ``int_op``,
    anything else as decimal128 through ``decimal_op``; Undefined for non-numbers."""

    def operator(a: Any, b: Any) -> Any:
        x, y = _num_pair(a, b)
        if x is UNDEFINED:
            return UNDEFINED
        if type(x) is int and type(y) is int:
            return int_op(x, y)
        return _dec_op(decimal_op, x, y)

    return operator


def _int_multiply(x: int, y: int) -> Any:
    r = x * y
    # beyond Int's 34 digits the product continues as a (rounded) Decimal
    return r if -INT_LIMIT < r < INT_LIMIT else _dec_op(CTX.multiply, x, y)


def _int_divide(x: int, y: int) -> Any:
    """Integer division truncating toward zero (Java); by zero -> Undefined."""
    if y == 0:
        return UNDEFINED
    q = abs(x) // abs(y)
    return q if (x >= 0) == (y > 0) else -q


def _int_modulo(x: int, y: int) -> Any:
    """The remainder takes the dividend's sign (Java); by zero -> Undefined."""
    if y == 0:
        return UNDEFINED
    r = abs(x) % abs(y)
    return r if x >= 0 else -r


subtract = _arithmetic(lambda x, y: x - y, CTX.subtract)
multiply = _arithmetic(_int_multiply, CTX.multiply)
divide = _arithmetic(_int_divide, CTX.divide)  # ``/``: Int/Int is integer division
modulo = _arithmetic(_int_modulo, CTX.remainder)  # ``%``


def negate(a: Any) -> Any:
    x = to_number(a)
    if x is UNDEFINED:
        return UNDEFINED
    return -x
