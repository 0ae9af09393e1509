"""``iotchat bench``: run the benchmarks (benchmarks/) from the command line."""

from __future__ import annotations

from typing import Annotated

import typer


def bench(
    name: Annotated[str, typer.Argument(help="Benchmark name, e.g. gateway-fanout, or 'all'.")],
    quick: Annotated[bool, typer.Option("--quick", help="Smaller, faster run.")] = False,
) -> None:
    """Run a benchmark; prints one JSON object per result line."""
    from benchmarks import run_benchmark

    raise typer.Exit(run_benchmark(name, quick=quick))
