"""Run a LambdaRuntime over a test manifest of the fixture handlers, in a fresh event loop."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from infra.local.lambda_runtime import LambdaRuntime
from lambdas.manifest import Manifest

T = TypeVar("T")

HANDLERS = "tests.infra.local.lambda_runtime.handlers.fixtures"
ENV_BASE = {
    "AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def process_gone(pid: int) -> bool:
    """Whether no process ``pid`` is left (a worker that ended, or was ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def fn(name: str, handler: str, **config: Any) -> dict[str, Any]:
    """A manifest entry for the fixture handler ``handler``."""
    return {"name": name, "handler": f"{HANDLERS}.{handler}", **config}


def run_runtime(
    state_dir: Path,
    functions: list[dict[str, Any]],
    body: Callable[[LambdaRuntime], Awaitable[T]],
    env_base: dict[str, str] | None = None,
    **options: Any,
) -> T:
    async def main() -> T:
        runtime = LambdaRuntime(
            Manifest.from_dict({"functions": functions}),
            state_dir,
            ENV_BASE if env_base is None else env_base,
            **options,
        )
        await runtime.start()
        try:
            return await body(runtime)
        finally:
            await runtime.stop()

    return asyncio.run(main())
