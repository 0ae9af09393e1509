"""A Node.js service from ``node_modules`` as a child process of the stack (dynalite, kinesalite).

Both AWS emulators the stack runs are Node servers on LevelDB. This module holds what they
share: finding ``node``, spawning the server on a Unix domain socket in the stack's private
state directory, waiting until it answers, supervising it (a server that dies is started again,
with backoff) and stopping it. The emulators check no signature and no permission, so they
listen on no TCP port at all: only the stack's own user can open the socket (its directory is
0700, the socket 0600), and the stack reaches them only through its authorizing path.
The child dies with the stack: :meth:`NodeService.stop` ends it, and on Linux it is also asked
(``PR_SET_PDEATHSIG``) to end if the stack is killed without a chance to stop it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import aiohttp

from infra.local.state_files import PRIVATE_UMASK, append_private, private_dir

log = logging.getLogger("iotchat.node")

REPO_ROOT = Path(__file__).resolve().parents[2]
_PR_SET_PDEATHSIG = 1


class NodeServiceStartError(OSError):
    """The service could not be started; an OSError so ``iotchat up`` reports it in one line."""


# The longest path a Unix socket address holds (``sun_path`` is 108 bytes on Linux, NUL included).
MAX_SOCKET_PATH_BYTES = 107

# argv: the package's directory, its options as JSON, the socket path. The stale socket is
# removed by the stack before the launch; the new one is made 0600 as soon as it exists.
UNIX_SOCKET_LAUNCHER = (
    "const fs = require('fs');"
    "const [dir, options, path] = process.argv.slice(1);"
    "const server = require(dir)(JSON.parse(options));"
    "server.listen(path, () => {"
    "  fs.chmodSync(path, 0o600);"
    "  console.log('listening on %s', path);"
    "});"
)


def socket_path_for(wanted: Path, label: str) -> Path:
    """``wanted`` if it fits in ``sun_path``; otherwise a socket in a fresh 0700 directory from
    :func:`tempfile.mkdtemp`, said in a log line."""
    if len(os.fsencode(wanted)) <= MAX_SOCKET_PATH_BYTES:
        return wanted
    fallback = Path(tempfile.mkdtemp(prefix="iotchat-")) / wanted.name
    log.info(
        "%s: socket path %s is longer than %d bytes; using %s instead",
        label,
        wanted,
        MAX_SOCKET_PATH_BYTES,
        fallback,
    )
    return fallback


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGTERM the child when the stack process dies, even by SIGKILL."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def sigv4_probe_headers(target: str, service: str, json_version: str) -> dict[str, str]:
    """Headers of a JSON-protocol probe request. The emulators check that a SigV4-shaped
    ``Authorization`` header is present, never the signature."""
    return {
        "X-Amz-Target": target,
        "Content-Type": f"application/x-amz-json-{json_version}",
        "X-Amz-Date": "20200101T000000Z",
        "Authorization": (
            f"AWS4-HMAC-SHA256 Credential=probe/20200101/us-east-1/{service}/aws4_request, "
            "SignedHeaders=host;x-amz-date;x-amz-target, Signature=0"
        ),
    }


def unix_connector(path: Path) -> aiohttp.UnixConnector:
    """A connector to the HTTP server on the Unix socket ``path``."""
    # Node closes idle connections after 5 s: never reuse one that old.
    return aiohttp.UnixConnector(path=str(path), keepalive_timeout=3)


def socket_url(name: str, path_qs: str = "/") -> str:
    """The URL of a request over a Unix socket connector: the host part only names the
    service (``http://dynalite/``), the connector decides where it goes."""
    return f"http://{name}{path_qs}"


@dataclass(frozen=True)
class ReadinessProbe:
    """A cheap list call (``target``) that a ready emulator answers with ``answer_key``."""

    target: str
    signing_service: str
    json_version: str
    answer_key: str

    @property
    def headers(self) -> dict[str, str]:
        return sigv4_probe_headers(self.target, self.signing_service, self.json_version)


def create_missing(
    client: Any,
    list_operation: str,
    names_key: str,
    requests: Iterable[Mapping[str, Any]],
    name_key: str,
    create: Callable[[Mapping[str, Any]], None],
) -> list[str]:
    """Call ``create(request)`` for each request whose resource (named by ``name_key``) is not
    among those ``list_operation`` pages through; return the names created."""
    existing: set[str] = set()
    for page in client.get_paginator(list_operation).paginate():
        existing.update(page.get(names_key, []))
    created = []
    for request in requests:
        if request[name_key] not in existing:
            create(request)
            created.append(request[name_key])
    return created


@dataclass(eq=False)
class NodeService:
    """One Node server process on a Unix socket; start, then stop, once each.

    The socket is ``socket_file`` (by default ``<data_dir>.sock``, beside the data in the
    state directory), or a private temporary one if that path is too long for a socket
    address; :attr:`socket_path` is the one in use. Subclasses say how to run it
    (:meth:`command`) and which list call tells it is ready (``probe``); ``label`` names it in
    logs and errors.
    """

    label: ClassVar[str] = "node service"
    error_type: ClassVar[type[NodeServiceStartError]] = NodeServiceStartError
    probe: ClassVar[ReadinessProbe]
    # The npm package (under the repository) and its options that take the transition delay.
    package_dir: ClassVar[Path]
    delay_options: ClassVar[tuple[str, ...]] = ()

    data_dir: Path
    log_file: Path
    _: KW_ONLY
    socket_file: Path | None = None
    root: Path = REPO_ROOT
    node: str = "node"
    # How long the emulator keeps a table or stream CREATING, DELETING or UPDATING. AWS takes
    # seconds and the emulators 500 ms by default; zero makes boto3's waiters and the stack's
    # startup immediate without changing any result.
    transition_ms: int = 0
    _socket_path: Path | None = field(default=None, init=False, repr=False)
    _socket_tempdir: Path | None = field(default=None, init=False, repr=False)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    restarts: int = field(default=0, init=False)  # times the supervisor brought it back
    _supervisor: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    @property
    def socket_path(self) -> Path:
        """The Unix socket the server listens on (decided when it first starts)."""
        if self._socket_path is None:
            raise RuntimeError(f"{self.label} not started")
        return self._socket_path

    def connector(self) -> aiohttp.UnixConnector:
        """A connector to the server for an :class:`aiohttp.ClientSession`; pair it with
        :func:`socket_url`."""
        return unix_connector(self.socket_path)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self, socket_path: Path) -> list[str]:
        """The argument list that starts the server on the Unix socket ``socket_path``: the
        package's own entry point through :data:`UNIX_SOCKET_LAUNCHER`, data under
        ``data_dir``, every transition delay set to :attr:`transition_ms`."""
        package = self.installed(self.package_dir / "index.js").parent
        options: dict[str, Any] = {"path": str(self.data_dir)}
        options.update(dict.fromkeys(self.delay_options, self.transition_ms))
        launch = [self.node_path(), "-e", UNIX_SOCKET_LAUNCHER, str(package)]
        return [*launch, json.dumps(options), str(socket_path)]

    def environment(self) -> dict[str, str] | None:
        """Variables set for the child on top of the stack's own environment."""
        return None

    async def ready(self, session: aiohttp.ClientSession) -> bool:
        """One probe: True once the server answers as itself."""
        headers = self.probe.headers
        async with session.post(socket_url(self.label), data=b"{}", headers=headers) as resp:
            body = await resp.read()
            return resp.status == 200 and self.probe.answer_key in json.loads(body)

    def node_path(self) -> str:
        node = shutil.which(self.node)
        if node is None:
            raise self.error_type(f"{self.node!r} (Node.js) is not on PATH; {self.label} needs it")
        return node

    def installed(self, relative: Path) -> Path:
        """``root/relative``, or a clear error telling the developer to run the setup script."""
        path = self.root / relative
        if not path.exists():
            raise self.error_type(f"{self.label} is not installed ({relative}); run scripts/setup")
        return path

    async def start(self, timeout: float = 20.0) -> None:
        """Start the server and return once it answers; raise ``error_type`` otherwise.
        From then on it is supervised: if it dies, it is started again (see :meth:`_supervise`)."""
        await self._spawn(timeout)
        self._supervisor = asyncio.ensure_future(self._supervise())

    def _choose_socket(self) -> Path:
        if self._socket_path is None:
            wanted = self.socket_file or self.data_dir.with_name(self.data_dir.name + ".sock")
            self._socket_path = socket_path_for(wanted, self.label)
            if self._socket_path != wanted:
                self._socket_tempdir = self._socket_path.parent
        return self._socket_path

    async def _spawn(self, timeout: float) -> None:
        """Start one server on its socket and wait until it answers."""
        # Private: the data and the log hold what users wrote (dynalite logs every request).
        private_dir(self.data_dir)
        path = self._choose_socket()
        command = self.command(path)
        self._remove_stale_socket(path)
        env = self.environment()
        with append_private(self.log_file, binary=True) as log_out:
            self.process = subprocess.Popen(
                command,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log_out,
                stderr=log_out,
                env=None if env is None else {**os.environ, **env},
                preexec_fn=die_with_parent if sys.platform == "linux" else None,
                # Its own session, so its own process group: Ctrl-C at a terminal, `kill --
                # -PGID`, systemd and container stops signal the stack's whole group, and the
                # store must outlive the stack's drain (the rule actions still in flight write
                # to it). The stack stops it itself once drained; the parent-death signal
                # still ends it if the stack is SIGKILLed.
                start_new_session=True,
                # LevelDB's files (the data itself) and the socket are created private too.
                umask=PRIVATE_UMASK if os.name == "posix" else -1,
            )
        try:
            await self._wait_ready(timeout)
        except NodeServiceStartError as exc:
            await self._terminate()
            raise self.error_type(
                f"{self.label} did not start: {exc} (see {self.log_file})"
            ) from None
        log.info("%s (pid %d) on %s, data in %s", self.label, self.pid, path, self.data_dir)

    def _remove_stale_socket(self, path: Path) -> None:
        """Remove the socket a server that died left, but never one a live server (another
        stack on the same state dir) still listens on."""
        if not path.exists():
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(path))
            except OSError:
                path.unlink(missing_ok=True)
                return
        raise self.error_type(f"{self.label}: another server already listens on {path}")

    async def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        client_timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(
            connector=self.connector(), timeout=client_timeout
        ) as session:
            while True:
                assert self.process is not None
                code = self.process.poll()
                if code is not None:
                    raise self.error_type(f"{self.label} exited with status {code}")
                try:
                    if await self.ready(session):
                        return
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    pass
                if time.monotonic() >= deadline:
                    raise self.error_type(f"{self.label} did not answer within {timeout:.0f} s")
                await asyncio.sleep(0.05)

    async def _supervise(
        self, poll: float = 0.2, backoff: tuple[float, float] = (0.5, 10.0)
    ) -> None:
        """Restart the server whenever it dies (crash, OOM, someone's kill), on the same
        socket, waiting ``backoff[0]`` doubling to ``backoff[1]`` between failed attempts.
        While it is down, :attr:`running` is False and the stack's health says "down"."""
        delay = backoff[0]
        while True:
            proc = self.process
            if proc is not None and proc.poll() is None:
                await asyncio.sleep(poll)
                continue
            code = proc.returncode if proc is not None else None
            log.warning(
                "%s (pid %s) exited with status %s; restarting in %.1f s",
                self.label,
                proc.pid if proc is not None else "?",
                code,
                delay,
            )
            await asyncio.sleep(delay)
            try:
                await self._spawn(20.0)
            except NodeServiceStartError as exc:
                log.warning("%s restart failed: %s", self.label, exc)
                delay = min(delay * 2, backoff[1])
                continue
            self.restarts += 1
            delay = backoff[0]
            log.warning("%s restarted (restart %d)", self.label, self.restarts)

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop supervising, then terminate the server and reap it (SIGKILL after
        ``timeout``); safe to call twice."""
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        await self._terminate(timeout)
        if self._socket_path is not None:
            self._socket_path.unlink(missing_ok=True)
        if self._socket_tempdir is not None:
            with contextlib.suppress(OSError):
                self._socket_tempdir.rmdir()
            self._socket_tempdir = None

    async def _terminate(self, timeout: float = 5.0) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s (pid %d) ignored SIGTERM; killing it", self.label, proc.pid)
            proc.kill()
            await asyncio.to_thread(proc.wait, timeout)
