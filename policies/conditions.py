"""Condition operators of IAM and IoT policies, compiled once per statement.

AWS semantics: operators in a block are ANDed, keys under one operator are ANDed, the values
listed for a key are ORed (NOR for a negated operator). A key missing from the request makes
a positive operator false and a negated one true, except ``...IfExists`` (true when missing)
and ``Null`` (which tests presence). ``ForAllValues:`` is true for a missing key,
``ForAnyValue:`` false. Request keys are single-valued here, so the set qualifiers only change
the missing-key case. Operators AWS does not know are refused when the policy is parsed.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from policies.globs import Segment, segments_match
from policies.variables import Template

_STRING_OPS = {
    "StringEquals": (False, "eq"),
    "StringNotEquals": (True, "eq"),
    "StringEqualsIgnoreCase": (False, "ieq"),
    "StringNotEqualsIgnoreCase": (True, "ieq"),
    "StringLike": (False, "like"),
    "StringNotLike": (True, "like"),
    "ArnEquals": (False, "arn"),
    "ArnLike": (False, "arn"),
    "ArnNotEquals": (True, "arn"),
    "ArnNotLike": (True, "arn"),
    "Bool": (False, "bool"),
    "BinaryEquals": (False, "binary"),
    "IpAddress": (False, "ip"),
    "NotIpAddress": (True, "ip"),
    "NumericEquals": (False, "num=="),
    "NumericNotEquals": (True, "num=="),
    "NumericLessThan": (False, "num<"),
    "NumericLessThanEquals": (False, "num<="),
    "NumericGreaterThan": (False, "num>"),
    "NumericGreaterThanEquals": (False, "num>="),
    "DateEquals": (False, "date=="),
    "DateNotEquals": (True, "date=="),
    "DateLessThan": (False, "date<"),
    "DateLessThanEquals": (False, "date<="),
    "DateGreaterThan": (False, "date>"),
    "DateGreaterThanEquals": (False, "date>="),
    "Null": (False, "null"),
}
_QUALIFIERS = ("ForAnyValue:", "ForAllValues:")
_ORDER: dict[str, Callable[[float, float], bool]] = {
    "==": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


class ConditionError(ValueError):
    """A condition AWS would refuse when the policy is created."""


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _date(text: str) -> float | None:
    try:
        return float(text)  # epoch seconds
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _arn_parts(arn: str) -> list[str] | None:
    parts = arn.split(":", 5)
    return parts if len(parts) == 6 else None


def _arn_components(segments: tuple[Segment, ...]) -> list[tuple[Segment, ...]] | None:
    """Split pattern segments at the first five colons (the sixth component keeps its own)."""
    components: list[list[Segment]] = [[]]
    for literal, text in segments:
        pieces = text.split(":", 6 - len(components)) if len(components) < 6 else [text]
        for index, piece in enumerate(pieces):
            if index:
                components.append([])
            components[-1].append((literal, piece))
    return [tuple(c) for c in components] if len(components) == 6 else None


@dataclass(frozen=True, slots=True)
class Condition:
    """One (operator, key) pair of a Condition block with its accepted values."""

    operator: str
    key: str
    values: tuple[Template, ...]
    kind: str
    negated: bool
    if_exists: bool
    qualifier: str | None
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def parse(cls, operator: str, key: str, raw: object, variables: bool) -> Condition:
        name, qualifier = operator, None
        for prefix in _QUALIFIERS:
            if name.startswith(prefix):
                name, qualifier = name[len(prefix) :], prefix[:-1]
        if_exists = name.endswith("IfExists") and name != "IfExists"
        base = name[: -len("IfExists")] if if_exists else name
        if base not in _STRING_OPS or (base == "Null" and (if_exists or qualifier)):
            raise ConditionError(f"unknown condition operator {operator!r}")
        negated, kind = _STRING_OPS[base]
        items = raw if isinstance(raw, list) else [raw]
        if not items:
            raise ConditionError(f"{operator} {key}: no values")
        texts: list[str] = []
        for item in items:
            if isinstance(item, bool):
                texts.append("true" if item else "false")
            elif isinstance(item, (str, int, float)):
                texts.append(str(item))
            else:
                raise ConditionError(f"{operator} {key}: values must be strings")
        networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
        if kind == "ip":
            try:
                networks = tuple(ipaddress.ip_network(t, strict=False) for t in texts)
            except ValueError as exc:
                raise ConditionError(f"{operator} {key}: {exc}") from exc
        if kind.startswith("num") and any(_number(t) is None for t in texts):
            raise ConditionError(f"{operator} {key}: not a number")
        if kind.startswith("date") and any(_date(t) is None for t in texts):
            raise ConditionError(f"{operator} {key}: not a date")
        if kind in ("bool", "null") and any(t.lower() not in ("true", "false") for t in texts):
            raise ConditionError(f"{operator} {key}: expected true or false")
        try:
            templates = tuple(Template.parse(t, variables) for t in texts)
        except ValueError as exc:
            raise ConditionError(str(exc)) from exc
        return cls(operator, key, templates, kind, negated, if_exists, qualifier, networks)

    @property
    def context_keys(self) -> frozenset[str]:
        keys = {self.key}
        for template in self.values:
            keys |= template.keys
        return frozenset(keys)

    def holds(self, context: Mapping[str, str]) -> bool:
        value = context.get(self.key)
        if self.kind == "null":
            return (value is None) == (self.values[0].text.lower() == "true")
        if value is None:
            if self.if_exists or self.qualifier == "ForAllValues":
                return True
            if self.qualifier == "ForAnyValue":
                return False
            return self.negated
        matched = any(self._match(value, template, context) for template in self.values)
        return not matched if self.negated else matched

    def _match(self, value: str, template: Template, context: Mapping[str, str]) -> bool:
        kind = self.kind
        if kind == "ip":
            address = _ip(value)
            return address is not None and any(
                address.version == net.version and address in net for net in self.networks
            )
        if kind == "like":
            segments = template.resolve(context)
            return segments is not None and segments_match(segments, value)
        if kind == "arn":
            segments = template.resolve(context)
            wanted = _arn_parts(value)
            pattern = _arn_components(segments) if segments is not None else None
            if wanted is None or pattern is None:
                return False
            # Component by component, so a wildcard never spans a colon between components.
            return all(segments_match(p, w) for p, w in zip(pattern, wanted, strict=True))
        expected = template.resolve_text(context)
        if expected is None:
            return False
        if kind == "eq":
            return value == expected
        if kind == "ieq":
            return value.lower() == expected.lower()
        if kind == "bool":
            return value.lower() == expected.lower()
        if kind == "binary":
            try:
                return base64.b64decode(value, validate=True) == base64.b64decode(expected)
            except ValueError:
                return False
        if kind.startswith("num"):
            left, right = _number(value), _number(expected)
            return left is not None and right is not None and _ORDER[kind[3:]](left, right)
        if kind.startswith("date"):
            left, right = _date(value), _date(expected)
            return left is not None and right is not None and _ORDER[kind[4:]](left, right)
        return False
