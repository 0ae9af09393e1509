"""sigv4-connect: SigV4 WebSocket connects per second, each by a different Cognito identity.

The web client connects as a guest: its own temporary credentials (with a session token)
sign the ``/mqtt`` URL, and the guest role's policy must allow ``iot:Connect`` for its
client id. Here N guest identities get their credentials from the local Cognito (boto3,
before timing); workers in another process then do full connects, one after another each:
TLS handshake, WebSocket upgrade to the presigned URL, MQTT CONNECT with client id = the
identity id, CONNACK accepted by the policy, DISCONNECT and close. The baseline is the same
connects in the same run, all signed with the admin key (one identity, no policy checks),
so the ratio shows what distinct identities and policy evaluation cost.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from . import _harness as h
from .gateway_connections import timed_wss_run

NAME = "sigv4-connect"


# --------------------------------------------------------------------------- child process


async def connect_main(config: dict[str, Any]) -> None:
    """Connect once per entry of ``config["identities"]``, by ``workers`` workers, timed."""

    from infra.local.sigv4 import presign_url

    context = ssl.create_default_context(cafile=config["ca_file"])
    host = f"{h.HOST}:{config['port']}"
    identities: list[dict[str, Any]] = config["identities"]
    numbers = itertools.count()
    errors: list[BaseException] = []

    async def connect_once(identity: dict[str, Any]) -> None:
        url = presign_url(
            host,
            identity["accessKeyId"],
            identity["secretKey"],
            region=config["region"],
            session_token=identity.get("sessionToken"),
        )
        await h.wss_mqtt_session(url, context, identity["clientId"])

    async def worker() -> None:
        while (i := next(numbers)) < len(identities):
            try:
                await connect_once(identities[i])
            except Exception as exc:
                errors.append(exc)

    print("ready", flush=True)
    sys.stdin.readline()
    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(config["workers"])))
    seconds = time.monotonic() - started
    report = {
        "connects": len(identities) - len(errors),
        "failed": len(errors),
        "first_error": repr(errors[0]) if errors else None,
        "seconds": seconds,
    }
    print(json.dumps(report), flush=True)


# --------------------------------------------------------------------------- driver


def guest_identities(stack: dict[str, Any], count: int) -> list[dict[str, str]]:
    """``count`` distinct guest identities and their credentials, from the stack's Cognito."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    client = boto3.client(
        "cognito-identity",
        endpoint_url=stack["api"]["endpoint"],
        region_name=stack["region"],
        config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}),
    )
    pool = stack["cognito"]["identityPoolId"]
    identities = []
    for _ in range(count):
        identity_id = client.get_id(IdentityPoolId=pool)["IdentityId"]
        creds = client.get_credentials_for_identity(IdentityId=identity_id)["Credentials"]
        identities.append(
            {
                "clientId": identity_id,  # the guest role allows connecting as its own id only
                "accessKeyId": creds["AccessKeyId"],
                "secretKey": creds["SecretKey"],
                "sessionToken": creds["SessionToken"],
            }
        )
    return identities


def admin_identities(count: int) -> list[dict[str, str]]:
    prefix = f"bench-admin-{uuid.uuid4().hex[:8]}"
    return [
        {"clientId": f"{prefix}-{i}", "accessKeyId": h.ADMIN_USER, "secretKey": h.ADMIN_PASSWORD}
        for i in range(count)
    ]


def connect_once(
    gw: h.BrokerProcess, identities: list[dict[str, str]], workers: int
) -> dict[str, Any]:
    """Time full WSS connects, one per identity, by ``workers`` concurrent workers."""
    config = {
        "port": gw.extra["wss_port"],
        "ca_file": gw.extra["ca_file"],
        "region": gw.extra["region"],
        "identities": identities,
        "workers": workers,
    }
    with h.processes() as procs:
        # Thousands of identities would not fit in argv: they go in a file.
        config_path = Path(gw.extra["log"]).parent / f"sigv4-{uuid.uuid4().hex[:8]}.json"
        config_path.write_text(json.dumps(config))
        os.chmod(config_path, 0o600)  # it holds (local, throwaway) secret keys
        client = h.spawn(
            [sys.executable, "-m", "benchmarks.sigv4_connect", str(config_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
        )
        procs.append(client)
        return timed_wss_run(gw, client, len(identities))


def measure(*, connects: int, workers: int = 8) -> list[dict[str, Any]]:
    h.raise_nofile(4096)
    load = round(os.getloadavg()[0], 2)
    with h.temp_dir("sigv4-connect") as workdir, h.gateway(workdir) as gw:
        stack = json.loads((workdir / "gateway-state" / "stack.json").read_text())
        fetch_started = time.monotonic()
        guests = guest_identities(stack, connects)
        fetch_seconds = time.monotonic() - fetch_started
        ours = connect_once(gw, guests, workers)
        theirs = connect_once(gw, admin_identities(connects), workers)
    rate = ours["connects"] / ours["seconds"]
    base = theirs["connects"] / theirs["seconds"]
    return [
        {
            "name": NAME,
            "metric": "distinct_identity_connects_per_s",
            "unit": "connects/s",
            "connects": ours["connects"],
            "identities": len({g["clientId"] for g in guests}),
            "workers": workers,
            "transport": "wss+sigv4 (session token), MQTT 3.1.1",
            "loadavg_1m": load,
            "value": round(rate, 1),
            "baseline": round(base, 1),
            "baseline_name": "same connects signed with the admin key (one identity)",
            "ratio": h.ratio(rate, base),
            "gateway_cpu_ms_per_connect": round(
                ours["gateway_cpu_seconds"] * 1000 / max(ours["connects"], 1), 3
            ),
            "baseline_gateway_cpu_ms_per_connect": round(
                theirs["gateway_cpu_seconds"] * 1000 / max(theirs["connects"], 1), 3
            ),
            "credential_fetch_ms_per_identity": round(fetch_seconds * 1000 / connects, 2),
            "target": ">= 200 connects/s",
        }
    ]


def run(quick: bool = False) -> list[dict[str, Any]]:
    if quick:
        return measure(connects=300)
    return measure(connects=2_000)


if __name__ == "__main__":
    asyncio.run(connect_main(json.loads(Path(sys.argv[1]).read_text())))
