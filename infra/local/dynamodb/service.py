"""DynamoDB for the local stack: dynalite (npm) as a child process, data on disk.

dynalite implements DynamoDB's JSON API on LevelDB, so tables and items survive a restart of
``iotchat up``. It listens on a Unix socket in the stack's private state directory, never on
TCP; clients reach it through the edge API, which forwards every ``DynamoDB_20120810.*``
request to :attr:`DynamoDBLocal.socket_path` once IAM allows it. Spawning, readiness and
stopping are shared with kinesalite (:mod:`.node_service`).

dynalite's command line listens on a TCP port only, so it is started through the same short
launcher as kinesalite, which listens on the socket instead.
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

DYNALITE_DIR = Path("node_modules") / "dynalite"
TARGET_PREFIX = "DynamoDB_20120810."


class DynamoDBLocal(NodeService):
    """One dynalite process serving ``data_dir`` on its Unix socket; start, then stop, once
    each."""

    label = "dynalite"
    error_type = DynamoDBStartError
    probe = ReadinessProbe(TARGET_PREFIX + "ListTables", "dynamodb", "1.0", "TableNames")

    package_dir = DYNALITE_DIR
    delay_options = ("createTableMs", "deleteTableMs", "updateTableMs")


def ensure_tables(client: Any, tables: Iterable[Mapping[str, Any]]) -> list[str]:
    """Create each declared table that does not exist yet; return the names created."""

    def create(table: Mapping[str, Any]) -> None:
        request = dict(table)
        if "BillingMode" not in request and "ProvisionedThroughput" not in request:
            request["BillingMode"] = "PAY_PER_REQUEST"
        client.create_table(**request)

    return create_missing(client, "list_tables", "TableNames", tables, "TableName", create)
