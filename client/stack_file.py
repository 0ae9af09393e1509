"""The stack file: how a client finds a chat, local (``iotchat up``) or on AWS (``iotchat deploy``).

Both write the same shape (../DESIGN: "the stack file"), so every client connects to either from
one file, found in this order: ``--stack-file``, ``$IOTCHAT_STACK_FILE``, ``.iotchat/stack.json``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_STACK_FILE = Path(".iotchat") / "stack.json"
ENV_STACK_FILE = "IOTCHAT_STACK_FILE"


class StackFileError(ValueError):
    """No usable stack file; the message says where we looked and what to do."""


@dataclass(frozen=True)
class StackInfo:
    path: Path
    kind: str
    region: str
    stack_name: str
    iot_host: str
    wss_port: int
    mqtts_port: int | None
    ca_file: str | None
    api_endpoint: str | None
    identity_pool_id: str
    user_pool_id: str | None
    user_pool_client_id: str | None
    raw: dict[str, Any]

    @property
    def is_local(self) -> bool:
        return self.kind == "local"

    def boto3_client(self, service: str) -> Any:
        """An unsigned-capable boto3 client for this stack's endpoint (local edge API or AWS)."""
        import boto3

        return boto3.session.Session(region_name=self.region).client(
            service, endpoint_url=self.api_endpoint
        )


def resolve_path(path: Path | str | None = None) -> Path:
    if path:
        return Path(path)
    if os.environ.get(ENV_STACK_FILE):
        return Path(os.environ[ENV_STACK_FILE])
    return DEFAULT_STACK_FILE


def load_stack_file(path: Path | str | None = None) -> StackInfo:
    where = resolve_path(path)
    try:
        data = json.loads(where.read_text())
    except FileNotFoundError:
        raise StackFileError(
            f"no stack file at {where}: start the local chat with `iotchat up` (or pass "
            f"--stack-file / set {ENV_STACK_FILE} to a deployed stack's file)"
        ) from None
    except json.JSONDecodeError as exc:
        raise StackFileError(f"{where} is not JSON: {exc}") from None
    try:
        iot = data["iot"]
        cognito = data["cognito"]
        return StackInfo(
            path=where,
            kind=str(data.get("kind", "aws")),
            region=str(data["region"]),
            stack_name=str(data.get("stackName", "iotchat")),
            iot_host=str(iot["host"]),
            wss_port=int(iot.get("wssPort", 443)),
            mqtts_port=int(iot["mqttsPort"]) if iot.get("mqttsPort") else None,
            ca_file=iot.get("caFile"),
            api_endpoint=(data.get("api") or {}).get("endpoint"),
            identity_pool_id=str(cognito["identityPoolId"]),
            user_pool_id=cognito.get("userPoolId"),
            user_pool_client_id=cognito.get("userPoolClientId"),
            raw=data,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise StackFileError(f"{where} is missing or has a bad field: {exc}") from None
