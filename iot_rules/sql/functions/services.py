"""Functions that call an AWS service (``aws_lambda``, ``get_dynamodb``, ...): Undefined unless
the SqlContext supplies a callable for the service, as the local stack has none of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..types import (
    UNDEFINED,
    from_python,
    to_plain_json,
)
from .base import Env


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


def service_call(attr: str) -> Callable[..., Any]:
    def impl(env: Env, *args: Any) -> Any:
        call = getattr(env.ctx, attr)
        if call is None or any(a is UNDEFINED for a in args):
            return UNDEFINED
        result = call(*(to_plain_json(a) for a in args))
        return UNDEFINED if result is None else from_python(result, env.v2)

    return impl
