"""The local Lambda runtime: the manifest's functions in worker processes, with AWS semantics.

``runtime`` is the service (invoke, retries, on-failure records), ``pool`` and ``worker`` the
worker processes, ``event_sources`` the Kinesis event source mappings, ``errors`` the Lambda
exceptions Invoke raises, ``awsformat`` Lambda's log and error formats. See
docs/lambda-runtime.md. Exports are resolved lazily so that the worker process, which is
started as ``python -m infra.local.lambda_runtime.worker``, does not pay for importing asyncio
and the runtime on every cold start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from infra.local.lambda_runtime.errors import InvalidRequestContentError, ResourceNotFoundError
    from infra.local.lambda_runtime.pool import InvokeResult
    from infra.local.lambda_runtime.runtime import LambdaRuntime, failures_path, log_path

__all__ = [
    "InvalidRequestContentError",
    "InvokeResult",
    "LambdaRuntime",
    "ResourceNotFoundError",
    "failures_path",
    "log_path",
]


def __getattr__(name: str) -> Any:
    if name == "InvokeResult":
        from infra.local.lambda_runtime import pool

        return pool.InvokeResult
    if name in ("InvalidRequestContentError", "ResourceNotFoundError"):
        from infra.local.lambda_runtime import errors

        return getattr(errors, name)
    if name in __all__:
        from infra.local.lambda_runtime import runtime

        return getattr(runtime, name)
    raise AttributeError(name)
