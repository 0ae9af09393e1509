"""AWS IoT SQL for the local rules engine: parse once, evaluate many times.

>>> stmt = compile_sql("SELECT *, clientid() AS sender FROM 'chat/out' WHERE type = 'message'")
>>> stmt.evaluate(SqlMessage("chat/out", b'{"type":"message"}', client_id="c1")).value
{'type': 'message', 'sender': 'c1'}
"""

from .compiler import Result, Statement, Template, compile_sql, compile_template
from .model import SqlContext, SqlError, SqlMessage
from .types import UNDEFINED, V1, V2, Undefined, dumps

__all__ = [
    "UNDEFINED",
    "V1",
    "V2",
    "Result",
    "SqlContext",
    "SqlError",
    "SqlMessage",
    "Statement",
    "Template",
    "Undefined",
    "compile_sql",
    "compile_template",
    "dumps",
]
