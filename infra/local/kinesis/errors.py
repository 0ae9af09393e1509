"""Kinesis's own error on the local stack: its emulator (kinesalite) would not start.

Errors of Kinesis calls are kinesalite's, forwarded verbatim by the edge API in the service's
own JSON shape; the edge's own (service down, upstream failed) are built in
:mod:`infra.local.api`.
"""

from __future__ import annotations

from infra.local.node_service import NodeServiceStartError


class KinesisStartError(NodeServiceStartError):
    """kinesalite could not be started; an OSError so ``iotchat up`` reports it in one line."""
