"""``iotchat trace``: what happened to each message, one line per step, from the stack's trace log.

Reads ``logs/rules-engine.jsonl`` in the state dir (docs/tracing.md), which the running stack
appends to: like ``tail -f`` by default, or the whole history of one trace id with ``--id``.
Works on the file alone, so it needs no keys: the file is the stack owner's (0600).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated, Any

import typer

POLL_INTERVAL = 0.1


def describe(entry: dict[str, Any]) -> str:
    """One step as a line: time, short trace id, what happened, how it went."""
    stamp = str(entry.get("timestamp", ""))[11:]
    trace = str(entry.get("traceId", ""))[:8] or "--------"
    kind = entry.get("eventType")
    failed = entry.get("status") == "Failure"
    rule = entry.get("ruleName", "")
    if kind == "Publish-In":
        text = (
            f"publish {entry.get('topicName')} from {entry.get('clientId')} "
            f"({entry.get('bytes', 0)} B, {entry.get('source', '?')})"
        )
    elif kind == "RuleMatch":
        text = f"  {rule} matched" if not failed else f"  {rule} SQL failed"
    elif kind == "RuleExecution":
        target = ", ".join(str(value) for value in (entry.get("resources") or {}).values())
        action = _action_name(str(entry.get("ruleAction", "")))
        prefix = "errorAction " if entry.get("errorAction") else ""
        text = f"  {rule} -> {prefix}{action} {target}"
        text += f" {'FAILED' if failed else 'ok'} ({entry.get('durationMs', 0)} ms)"
    elif kind == "FunctionExecution":
        text = (
            f"  -> {entry.get('functionName')} (request {str(entry.get('requestId', ''))[:8]}) "
            f"{'FAILED' if failed else 'ok'} {round(float(entry.get('durationMs', 0)))} ms"
        )
        if entry.get("attempt", 1) != 1:
            text += f", attempt {entry.get('attempt')}"
    else:
        text = f"  {kind}"
    if failed and entry.get("details"):
        text += f": {entry['details']}"
    return f"{stamp} {trace} {text}"


def _action_name(aws_name: str) -> str:
    """``RepublishAction`` -> ``republish``, as the rule files spell the action."""
    short = aws_name.removesuffix("Action")
    return short[:1].lower() + short[1:] if short != "DynamoDBv2" else "dynamoDBv2"


def read_entries(handle: IO[str]) -> Iterator[dict[str, Any]]:
    """The complete lines from ``handle``'s position, parsed; a partial last line is left."""
    while True:
        position = handle.tell()
        line = handle.readline()
        if not line:
            return
        if not line.endswith("\n"):
            handle.seek(position)
            return
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            yield entry


def history(path: Path) -> Iterator[dict[str, Any]]:
    """Every entry still on disk: the rotated file first, then the current one."""
    for file in (path.with_name(path.name + ".1"), path):
        if file.exists():
            with file.open(encoding="utf-8", errors="replace") as handle:
                yield from read_entries(handle)


def follow(path: Path, from_start: bool) -> Iterator[dict[str, Any]]:
    """Entries as the stack appends them (a rotated or recreated file is read anew)."""
    handle: IO[str] | None = None
    inode = None
    # A log that does not exist yet is all new when it appears.
    from_start = from_start or not path.exists()
    try:
        while True:
            if handle is None and path.exists():
                handle = path.open(encoding="utf-8", errors="replace")
                inode = path.stat().st_ino
                if not from_start:
                    handle.seek(0, 2)
                from_start = True  # a replaced file is read from its start
            if handle is not None:
                yield from read_entries(handle)
                try:
                    replaced = path.stat().st_ino != inode
                except FileNotFoundError:
                    replaced = True
                if replaced:
                    yield from read_entries(handle)
                    handle.close()
                    handle = None
            time.sleep(POLL_INTERVAL)
    finally:
        if handle is not None:
            handle.close()


def trace(
    topic: Annotated[
        str | None, typer.Option(help="Only messages on topics matching this MQTT filter.")
    ] = None,
    client: Annotated[str | None, typer.Option(help="Only messages from this client id.")] = None,
    trace_id: Annotated[
        str | None,
        typer.Option("--id", help="Print the steps of this trace id (or its prefix) and exit."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per step (docs/tracing.md).")
    ] = False,
    from_start: Annotated[
        bool, typer.Option(help="Print what is already in the log before following it.")
    ] = False,
    state_dir: Annotated[Path, typer.Option(help="The stack's state directory.")] = Path(
        ".iotchat"
    ),
) -> None:
    """Follow every message through the gateway, rules, actions and Lambdas (Ctrl-C stops)."""
    from infra.local.trace import TRACE_FILE, TraceFilter

    path = state_dir / TRACE_FILE
    if trace_id is not None:
        wanted = trace_id.strip().lower()
        if not wanted:
            raise typer.BadParameter("give a trace id or its first characters", param_hint="--id")
        found = [e for e in history(path) if str(e.get("traceId", "")).startswith(wanted)]
        if not found:
            typer.echo(f"iotchat trace: no steps of trace {wanted!r} in {path}", err=True)
            raise typer.Exit(1)
        for entry in found:
            _print(entry, as_json)
        return
    selection = TraceFilter(topic, client)
    if not path.exists():
        typer.echo(f"iotchat trace: waiting for {path} (is iotchat up running here?)", err=True)
    try:
        for entry in follow(path, from_start):
            if selection.wants(entry):
                _print(entry, as_json)
    except KeyboardInterrupt:
        return


def _print(entry: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(entry, separators=(",", ":")))
        return
    line = describe(entry)
    failed = entry.get("status") == "Failure" or entry.get("errorAction")
    typer.echo(typer.style(line, fg="red") if failed else line)
