"""The inputs of an IoT SQL evaluation (message, services) and its error type.

Kept apart from the evaluator so the rules engine and the CLI can build messages and contexts
without importing the grammar.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

_EMPTY: Mapping[str, object] = MappingProxyType({})


class SqlError(ValueError):
    """A statement or template that AWS IoT would refuse (syntax, unknown function, version)."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        super().__init__(message)
        self.line = line
        self.column = column


@dataclass(frozen=True)
class SqlMessage:
    """One message as the rules engine sees it: topic, raw payload and who sent it."""

    topic: str
    payload: bytes
    client_id: str = "n/a"
    principal: str | None = None
    timestamp_ms: int = 0
    trace_id: str | None = None
    source_ip: str | None = None
    user_properties: tuple[tuple[str, str], ...] = ()
    properties: Mapping[str, object] = field(default_factory=lambda: _EMPTY)


@dataclass
class SqlContext:
    """Services the SQL may call; a missing one makes its function return Undefined."""

    account_id: str = "000000000000"
    region: str = "us-east-1"
    invoke_lambda: Callable[[str, object], object] | None = None
    get_dynamodb: Callable[[str, str, object, str | None, object | None, str], object] | None = None
    get_secret: Callable[..., object] | None = None
    get_thing_shadow: Callable[..., object] | None = None
    machinelearning_predict: Callable[..., object] | None = None
    get_registry_data: Callable[..., object] | None = None


DEFAULT_CONTEXT = SqlContext()
