"""Kinesis Data Streams for the local stack: kinesalite (npm) as a child process, data on disk.

kinesalite implements Kinesis's JSON API (streams, shards, records, iterators) on LevelDB, so
streams and their records survive a restart of ``iotchat up``. It listens on a Unix socket in
the stack's private state directory, never on TCP; clients reach it through the edge API, which
forwards every ``Kinesis_20131202.*`` request to :attr:`KinesisLocal.socket_path` once IAM
allows it. Spawning, readiness and stopping are shared with dynalite (:mod:`.node_service`).

kinesalite's own command line cannot choose the listening address, so it is started through a
short launcher (:data:`~infra.local.node_service.UNIX_SOCKET_LAUNCHER`) that listens on the
socket.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import KW_ONLY, dataclass
from pathlib import Path
from typing import Any

from infra.local.identity import LOCAL_ACCOUNT_ID, LOCAL_REGION
from infra.local.node_service import (
    NodeService,
    ReadinessProbe,
    create_missing,
)

from .errors import KinesisStartError

KINESALITE_DIR = Path("node_modules") / "kinesalite"
TARGET_PREFIX = "Kinesis_20131202."


@dataclass(eq=False)
class KinesisLocal(NodeService):
    """One kinesalite process serving ``data_dir`` on its Unix socket; start, then stop, once
    each."""

    label = "kinesalite"
    error_type = KinesisStartError
    probe = ReadinessProbe(TARGET_PREFIX + "ListStreams", "kinesis", "1.1", "StreamNames")

    _: KW_ONLY
    # kinesalite builds StreamARNs from these, so they match the ARNs the manifest names.
    region: str = LOCAL_REGION
    account_id: str = LOCAL_ACCOUNT_ID

    package_dir = KINESALITE_DIR
    delay_options = ("createStreamMs", "deleteStreamMs", "updateStreamMs")

    def environment(self) -> dict[str, str]:
        return {"AWS_REGION": self.region, "AWS_ACCOUNT_ID": self.account_id}


def ensure_streams(
    client: Any, stream_requests: Iterable[Mapping[str, Any]], timeout: float = 10.0
) -> list[str]:
    """Create each declared stream that does not exist yet, wait until every declared stream
    is ACTIVE, and return the names created. A stream request is a ``CreateStream`` request."""
    requests = list(stream_requests)
    created = create_missing(
        client,
        "list_streams",
        "StreamNames",
        requests,
        "StreamName",
        lambda request: client.create_stream(**request),
    )
    deadline = time.monotonic() + timeout
    for request in requests:
        name = request["StreamName"]
        while True:
            summary = client.describe_stream_summary(StreamName=name)
            status = summary["StreamDescriptionSummary"]["StreamStatus"]
            if status == "ACTIVE":
                break
            if time.monotonic() >= deadline:
                raise TimeoutError(f"Kinesis stream {name} is still {status} after {timeout} s")
            time.sleep(0.02)  # server-side state transition; nothing to wait on but the API
    return created
