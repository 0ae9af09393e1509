"""Reliability under load and real faults (``iotchat bench reliability``); see
:mod:`benchmarks.reliability.restarts` until the scenarios are split by concept."""

from benchmarks.reliability.restarts import (
    RoomClient,
    StackProcess,
    crash,
    dynalite_kill,
    faults,
    lambda_worker_kill,
    restart,
    run,
    running_stack,
    slow_consumer,
    slow_manifest,
    soak,
    stored_ids,
    throttle,
)

__all__ = [
    "RoomClient",
    "StackProcess",
    "crash",
    "dynalite_kill",
    "faults",
    "lambda_worker_kill",
    "restart",
    "run",
    "running_stack",
    "slow_consumer",
    "slow_manifest",
    "soak",
    "stored_ids",
    "throttle",
]
