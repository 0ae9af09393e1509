"""DynamoDB for the local stack: dynalite (npm) as a child process, data on disk.

dynalite implements DynamoDB's JSON API on LevelDB, so tables and items survive a restart of
``iotchat up``. It listens on a private loopback port; clients reach it through the edge API,
which forwards every ``DynamoDB_20120810.*`` request to :attr:`DynamoDBLocal.endpoint`.
Spawning, readiness and stopping are shared with kinesalite (:mod:`.node_service`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from infra.local.node_service import (
    NodeService,
    ReadinessProbe,
    create_missing,
)

from .errors import DynamoDBStartError

DYNALITE_CLI = Path("node_modules") / "dynalite" / "cli.js"
TARGET_PREFIX = "DynamoDB_20120810."


class DynamoDBLocal(NodeService):
    """One dynalite process serving ``data_dir`` on ``host``; start, then stop, once each."""

    label = "dynalite"
    error_type = DynamoDBStartError
    probe = ReadinessProbe(TARGET_PREFIX + "ListTables", "dynamodb", "1.0", "TableNames")

    def command(self, port: int) -> list[str]:
        cli = self.installed(DYNALITE_CLI)
        node = self.node_path()
        ms = str(self.transition_ms)
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


def ensure_tables(client: Any, tables: Iterable[Mapping[str, Any]]) -> list[str]:
    """Create each declared table that does not exist yet; return the names created."""

    def create(table: Mapping[str, Any]) -> None:
        request = dict(table)
        if "BillingMode" not in request and "ProvisionedThroughput" not in request:
            request["BillingMode"] = "PAY_PER_REQUEST"
        client.create_table(**request)

    return create_missing(client, "list_tables", "TableNames", tables, "TableName", create)
