"""DynamoDB for the local stack: dynalite (npm) as a child process, data on disk.

dynalite implements DynamoDB's JSON API on LevelDB, so tables and items survive a restart of
``iotchat up``. It listens on a private loopback port; clients reach it through the edge API,
which forwards every ``DynamoDB_20120810.*`` request to :attr:`DynamoDBLocal.endpoint`.

The child dies with the stack: it is stopped in :meth:`DynamoDBLocal.stop`, and on Linux it is
also asked (``PR_SET_PDEATHSIG``) to end if the stack is killed without a chance to stop it.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import aiohttp

log = logging.getLogger("iotchat.dynamodb")

REPO_ROOT = Path(__file__).resolve().parents[2]
DYNALITE_CLI = Path("node_modules") / "dynalite" / "cli.js"
TARGET_PREFIX = "DynamoDB_20120810."
_PR_SET_PDEATHSIG = 1
# dynalite only checks that a SigV4-shaped Authorization header is present, never the signature.
_PROBE_HEADERS = {
    "X-Amz-Target": TARGET_PREFIX + "ListTables",
    "Content-Type": "application/x-amz-json-1.0",
    "X-Amz-Date": "20200101T000000Z",
    "Authorization": (
        "AWS4-HMAC-SHA256 Credential=probe/20200101/us-east-1/dynamodb/aws4_request, "
        "SignedHeaders=host;x-amz-date;x-amz-target, Signature=0"
    ),
}


class DynamoDBStartError(OSError):
    """dynalite could not be started; an OSError so ``iotchat up`` reports it in one line."""


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGTERM the child when the stack process dies, even by SIGKILL."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class DynamoDBLocal:
    """One dynalite process serving ``data_dir`` on ``host``; start, then stop, once each."""

    def __init__(
        self,
        data_dir: Path,
        log_file: Path,
        *,
        host: str = "127.0.0.1",
        root: Path = REPO_ROOT,
        node: str = "node",
        table_transition_ms: int = 0,
    ) -> None:
        self.data_dir = data_dir
        self.log_file = log_file
        self.host = host
        self.root = root
        self.node = node
        # Real DynamoDB keeps a table CREATING for seconds; dynalite's default is 500 ms. Zero
        # makes boto3's table_exists waiter and tests immediate without changing any result.
        self.table_transition_ms = table_transition_ms
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        if self.port is None:
            raise RuntimeError("dynalite not started")
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _command(self, port: int) -> list[str]:
        cli = self.root / DYNALITE_CLI
        if not cli.exists():
            raise DynamoDBStartError(
                f"dynalite is not installed ({DYNALITE_CLI}); run scripts/setup"
            )
        node = shutil.which(self.node)
        if node is None:
            raise DynamoDBStartError(f"{self.node!r} (Node.js) is not on PATH; dynalite needs it")
        ms = str(self.table_transition_ms)
        return [
            node,
            str(cli),
            "--host",
            self.host,
            "--port",
            str(port),
            "--path",
            str(self.data_dir),
            "--createTableMs",
            ms,
            "--deleteTableMs",
            ms,
            "--updateTableMs",
            ms,
        ]

    async def start(self, timeout: float = 20.0) -> None:
        """Start dynalite and return once it answers ListTables; raise DynamoDBStartError."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        last_error = "no attempt"
        for _ in range(3):  # the free port can be taken between probing and dynalite's bind
            port = _free_port(self.host)
            command = self._command(port)
            with self.log_file.open("ab") as log_out:
                self.process = subprocess.Popen(
                    command,
                    cwd=self.root,
                    stdin=subprocess.DEVNULL,
                    stdout=log_out,
                    stderr=log_out,
                    preexec_fn=_die_with_parent if sys.platform == "linux" else None,
                )
            self.port = port
            try:
                await self._wait_ready(timeout)
            except DynamoDBStartError as exc:
                last_error = str(exc)
                await self.stop()
                continue
            log.info("dynalite (pid %d) on %s, data in %s", self.pid, self.endpoint, self.data_dir)
            return
        self.port = None
        raise DynamoDBStartError(f"dynalite did not start: {last_error} (see {self.log_file})")

    async def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = self.endpoint + "/"
        client_timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=client_timeout) as session:
            while True:
                assert self.process is not None
                code = self.process.poll()
                if code is not None:
                    raise DynamoDBStartError(f"dynalite exited with status {code}")
                try:
                    async with session.post(url, data=b"{}", headers=_PROBE_HEADERS) as resp:
                        body = await resp.read()
                        if resp.status == 200 and "TableNames" in json.loads(body):
                            return
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    pass
                if time.monotonic() >= deadline:
                    raise DynamoDBStartError(f"dynalite did not answer within {timeout:.0f} s")
                await asyncio.sleep(0.05)

    async def stop(self, timeout: float = 5.0) -> None:
        """Terminate dynalite and reap it (SIGKILL after ``timeout``); safe to call twice."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, timeout)
        except subprocess.TimeoutExpired:
            log.warning("dynalite (pid %d) ignored SIGTERM; killing it", proc.pid)
            proc.kill()
            await asyncio.to_thread(proc.wait, timeout)


def ensure_tables(client: Any, tables: Iterable[Mapping[str, Any]]) -> list[str]:
    """Create each declared table that does not exist yet; return the names created."""
    existing: set[str] = set()
    for page in client.get_paginator("list_tables").paginate():
        existing.update(page.get("TableNames", []))
    created = []
    for table in tables:
        if table["TableName"] not in existing:
            request = dict(table)
            if "BillingMode" not in request and "ProvisionedThroughput" not in request:
                request["BillingMode"] = "PAY_PER_REQUEST"
            client.create_table(**request)
            created.append(table["TableName"])
    return created
