"""Policy variables (``${iot:ClientId}``, ``${cognito-identity.amazonaws.com:sub}``, ...).

A string from a policy is parsed once into a :class:`Template`; per request it resolves to
glob segments in which every substituted value is literal, so a client id of ``*`` is the
character ``*`` and never a wildcard. A variable with no value in the request (and no
default) makes the template unresolvable: the resource or condition value then matches
nothing, as in AWS. ``${*}``, ``${?}`` and ``${$}`` stand for those characters literally.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from policies.globs import Segment

_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_BODY = re.compile(r"^\s*([A-Za-z0-9_.:/-]+)\s*(?:,\s*'([^']*)'\s*)?$")
_SPECIAL = {"*", "?", "$"}


@dataclass(frozen=True, slots=True)
class _Var:
    key: str
    default: str | None


@dataclass(frozen=True, slots=True)
class Template:
    """A policy string split into pattern text and variables."""

    text: str
    parts: tuple[str | _Var, ...]
    keys: frozenset[str]

    @classmethod
    def parse(cls, text: str, variables: bool = True) -> Template:
        """Split ``text``; with ``variables`` False (Version 2008-10-17) ``${`` is literal."""
        if not variables or "${" not in text:
            return cls(text, (text,), frozenset())
        parts: list[str | _Var] = []
        pos = 0
        for match in _VARIABLE.finditer(text):
            parts.append(text[pos : match.start()])
            body = match.group(1)
            if body in _SPECIAL:
                parts.append(_Var("", body))  # a literal character: empty key, fixed value
            else:
                parsed = _BODY.match(body)
                if parsed is None:
                    raise ValueError(f"malformed policy variable ${{{body}}} in {text!r}")
                parts.append(_Var(parsed.group(1), parsed.group(2)))
            pos = match.end()
        parts.append(text[pos:])
        keys = frozenset(p.key for p in parts if isinstance(p, _Var) and p.key)
        return cls(text, tuple(p for p in parts if p != ""), keys)

    @property
    def static(self) -> bool:
        return not self.keys and all(isinstance(p, str) for p in self.parts)

    def resolve(self, context: Mapping[str, str]) -> tuple[Segment, ...] | None:
        """Glob segments for this request, or None when a variable has no value."""
        segments: list[Segment] = []
        for part in self.parts:
            if isinstance(part, str):
                segments.append((False, part))
                continue
            value = context.get(part.key) if part.key else None
            if value is None:
                value = part.default
            if value is None:
                return None
            segments.append((True, value))
        return tuple(segments)

    def resolve_text(self, context: Mapping[str, str]) -> str | None:
        """The plain string after substitution (for exact comparisons), or None."""
        segments = self.resolve(context)
        return None if segments is None else "".join(text for _, text in segments)
