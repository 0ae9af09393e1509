"""Text to parse tree with the lark grammar; lark's errors become SqlError with a position."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from lark import Lark, Tree
from lark.exceptions import (
    LarkError,
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
)

from .model import SqlError

_GRAMMAR = Path(__file__).with_name("grammar.lark")


@lru_cache(maxsize=1)
def _parser() -> Lark:
    # LALR with the contextual lexer: linear time, and precise positions for errors.
    return Lark(
        _GRAMMAR.read_text(encoding="utf-8"),
        parser="lalr",
        lexer="contextual",
        start=["statement", "template_expr"],
        propagate_positions=True,
        maybe_placeholders=True,
    )


def _end_position(text: str) -> tuple[int, int]:
    line = text.count("\n") + 1
    column = len(text) - (text.rfind("\n") + 1) + 1
    return line, column


def _to_sql_error(text: str, err: LarkError) -> SqlError:
    if isinstance(err, UnexpectedEOF) or (
        isinstance(err, UnexpectedToken) and err.token.type == "$END"
    ):
        line, column = _end_position(text)
        return SqlError(
            f"syntax error at line {line}, column {column}: unexpected end of input",
            line,
            column,
        )
    if isinstance(err, UnexpectedToken):
        line, column = err.line, err.column
        what = f"unexpected {err.token.value!r}"
    elif isinstance(err, UnexpectedCharacters):
        line, column = err.line, err.column
        what = f"unexpected character {err.char!r}"
    elif isinstance(err, UnexpectedInput):
        line, column = err.line, err.column
        what = "unexpected input"
    else:
        return SqlError(f"syntax error: {err}")
    return SqlError(f"syntax error at line {line}, column {column}: {what}", line, column)


def _parse(text: str, start: str) -> Tree:
    if not isinstance(text, str):
        raise SqlError("SQL must be a string")
    try:
        return _parser().parse(text, start=start)
    except LarkError as err:
        raise _to_sql_error(text, err) from None
    except RecursionError:
        raise SqlError("statement is nested too deeply") from None


def parse_statement(sql: str) -> Tree:
    return _parse(sql, "statement")


def parse_expression(text: str) -> Tree:
    return _parse(text, "template_expr")
