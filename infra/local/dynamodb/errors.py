"""DynamoDB's own error on the local stack: its emulator (dynalite) would not start.

Errors of DynamoDB calls are dynalite's, forwarded verbatim by the edge API in the service's own
JSON shape; the edge's own (service down, upstream failed) are built in :mod:`infra.local.api`.
"""

from __future__ import annotations

from infra.local.node_service import NodeServiceStartError


class DynamoDBStartError(NodeServiceStartError):
    """dynalite could not be started; an OSError so ``iotchat up`` reports it in one line."""
