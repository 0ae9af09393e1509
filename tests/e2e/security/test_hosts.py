"""DNS rebinding and CORS: what a page on another web site can make a browser send to the stack.

| attempt                                   | answer                                           |
|-------------------------------------------|--------------------------------------------------|
| `Host: rebind.example:<port>`: api, web,  | 403 before anything else; the same request with  |
| ws, wss (signed for that Host)            | the loopback Host is answered                    |
| API answers and errors, web app, from any | never `Access-Control-Allow-Origin: *`; a        |
| Origin                                    | loopback Origin gets itself back                 |
| the admin deletes a declared table        | `/_iotchat/health`: `degraded`, naming it        |
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from infra.local.sigv4 import presign_url
from tests.support.cognito import guest_credentials
from tests.support.stack import InProcessStack, fresh_stack, run_stack_in_thread, stack_options
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(60)

REBIND = "rebind.example"
EVIL_ORIGIN = "http://rebind.example"
LOCAL_ORIGIN = "http://127.0.0.1:5173"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessStack]:
    with fresh_stack(tmp_path_factory, "hosts") as s:
        yield s


# ---------------------------------------------------------------------- Host


def _request(
    port: int,
    host: str,
    path: str,
    headers: dict[str, str] | None = None,
    tls: ssl.SSLContext | None = None,
) -> tuple[int, bytes]:
    """GET ``path`` from 127.0.0.1:``port`` with exactly this ``Host`` header."""
    if tls is None:
        conn: http.client.HTTPConnection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=tls)
    try:
        conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        body = b"" if response.status == 101 else response.read()
        return response.status, body
    finally:
        conn.close()


def _upgrade() -> dict[str, str]:
    return {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Protocol": "mqtt",
    }


def _tls(stack: InProcessStack) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=stack.info["iot"]["caFile"])
    context.check_hostname = False  # the request goes to 127.0.0.1 whatever Host says
    return context


def _port(stack: InProcessStack, listener: str) -> int:
    info = stack.info
    ports = {
        "api": info["api"]["endpoint"],
        "web": info["web"]["url"].rstrip("/"),
    }
    if listener in ports:
        return int(ports[listener].rpartition(":")[2])
    return int(info["iot"]["wsPort" if listener == "ws" else "wssPort"])


def _signed_handshake(stack: InProcessStack, host: str, creds: dict[str, Any]) -> str:
    """A guest's presigned ``/mqtt?...`` path, signed for ``host``: a valid signature for
    whatever Host the request names, so only the Host check can refuse it."""
    url = presign_url(
        host,
        creds["AccessKeyId"],
        creds["SecretKey"],
        region=stack.info["region"],
        session_token=creds["SessionToken"],
    )
    return "/" + url.split("/", 3)[3]


@pytest.mark.parametrize("listener", ["api", "web", "ws", "wss"])
def test_a_rebinding_host_is_refused_on_every_listener(
    stack: InProcessStack, listener: str
) -> None:
    port = _port(stack, listener)
    tls = _tls(stack) if listener == "wss" else None
    loopback, rebound = f"127.0.0.1:{port}", f"{REBIND}:{port}"
    if listener in ("api", "web"):
        path = "/_iotchat/health" if listener == "api" else "/"
        assert _request(port, loopback, path)[0] == 200
        status, body = _request(port, rebound, path)
    else:
        _, creds = guest_credentials(stack)
        legit = _signed_handshake(stack, loopback, creds)
        assert _request(port, loopback, legit, _upgrade(), tls)[0] == 101
        rebound_path = _signed_handshake(stack, rebound, creds)
        status, body = _request(port, rebound, rebound_path, _upgrade(), tls)
    assert status == 403
    assert b"Host" in body


def test_a_rebinding_host_is_refused_before_the_api_looks_at_the_request(
    stack: InProcessStack,
) -> None:
    """A signed admin DynamoDB call, CORS preflight and an unknown path: all 403 for the
    rebinding name (not 200, 204, 404 or a signature error)."""
    port = _port(stack, "api")
    rebound = f"{REBIND}:{port}"
    status, _ = _request(port, rebound, "/no/such/path")
    assert status == 403
    preflight = {"Origin": EVIL_ORIGIN, "Access-Control-Request-Method": "POST"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("OPTIONS", "/", headers={"Host": rebound, **preflight})
        assert conn.getresponse().status == 403
    finally:
        conn.close()
    status, _, _ = _signed_json(stack, "dynamodb", "DynamoDB_20120810.ListTables", {})
    assert status == 200
    status, _, _ = _signed_json(stack, "dynamodb", "DynamoDB_20120810.ListTables", {}, host=rebound)
    assert status == 403


# ---------------------------------------------------------------------- CORS


def _signed_json(
    stack: InProcessStack,
    service: str,
    target: str,
    body: dict[str, Any],
    *,
    key: str = "test",
    secret: str = "test",
    origin: str | None = None,
    host: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """A JSON-protocol request signed by botocore's signer, sent as a browser page would
    (with ``Origin``); the status, headers (lower-cased) and body come back as they are."""
    endpoint = stack.endpoint
    data = json.dumps(body).encode()
    version = "1.0" if service == "dynamodb" else "1.1"  # as botocore sends each
    headers = {"X-Amz-Target": target, "Content-Type": f"application/x-amz-json-{version}"}
    if host is not None:
        headers["Host"] = host
    request = AWSRequest("POST", endpoint + "/", data=data, headers=headers)
    SigV4Auth(Credentials(key, secret), service, stack.info["region"]).add_auth(request)
    sent = dict(request.prepare().headers)
    if origin is not None:
        sent["Origin"] = origin
    http_request = urllib.request.Request(endpoint + "/", data=data, headers=sent, method="POST")
    try:
        with urllib.request.urlopen(http_request, timeout=10) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def _stream(stack: InProcessStack) -> str:
    return f"{stack.info['stackName']}-stream"


CALLS = {
    "dynamodb-answer": ("dynamodb", "DynamoDB_20120810.ListTables", {}, "test", "test"),
    "dynamodb-validation-error": (
        "dynamodb",
        "DynamoDB_20120810.Scan",
        {"TableName": "no-such-table"},
        "test",
        "test",
    ),
    "dynamodb-unknown-key": ("dynamodb", "DynamoDB_20120810.ListTables", {}, "AKIAX", "x"),
    "kinesis-answer": ("kinesis", "Kinesis_20131202.ListStreams", {}, "test", "test"),
    "kinesis-error": (
        "kinesis",
        "Kinesis_20131202.DescribeStreamSummary",
        {"StreamName": "no-such-stream"},
        "test",
        "test",
    ),
    "kinesis-bad-signature": ("kinesis", "Kinesis_20131202.ListStreams", {}, "test", "x"),
}


@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize("origin", [None, EVIL_ORIGIN, LOCAL_ORIGIN])
def test_no_api_answer_lets_every_origin_read_it(
    stack: InProcessStack, call: str, origin: str | None
) -> None:
    service, target, body, key, secret = CALLS[call]
    status, headers, _ = _signed_json(
        stack, service, target, body, key=key, secret=secret, origin=origin
    )
    assert status == (200 if call.endswith("-answer") else 400)
    if origin == LOCAL_ORIGIN:
        assert headers["access-control-allow-origin"] == LOCAL_ORIGIN  # the web client's CORS
    else:
        assert "access-control-allow-origin" not in headers


@pytest.mark.parametrize("path", ["/", "/config.json", "/no-such-file"])
def test_no_web_app_answer_lets_every_origin_read_it(stack: InProcessStack, path: str) -> None:
    port = _port(stack, "web")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Origin": EVIL_ORIGIN})
        response = conn.getresponse()
        response.read()
        assert response.status in (200, 404)
        assert response.getheader("Access-Control-Allow-Origin") is None
    finally:
        conn.close()


# ---------------------------------------------------------------------- health


def _health(endpoint: str) -> tuple[int, dict[str, Any]]:
    with urllib.request.urlopen(endpoint + "/_iotchat/health", timeout=5) as resp:
        return resp.status, json.loads(resp.read())


def test_health_is_degraded_once_a_declared_table_is_deleted(tmp_path: Path) -> None:
    table, stream = "declared-table", "declared-stream"
    manifest = {
        "functions": [],
        "tables": [
            {
                "TableName": table,
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            }
        ],
        "streams": [{"StreamName": stream, "ShardCount": 1}],
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    options = stack_options(tmp_path / "state", manifest=tmp_path / "manifest.json")
    with run_stack_in_thread(options) as local:
        status, body = _health(local.endpoint)
        assert (status, body["status"]) == (200, "ok")
        local.client("dynamodb").delete_table(TableName=table)

        def degraded() -> dict[str, Any] | None:
            status, body = _health(local.endpoint)
            return body if status == 200 and body["status"] == "degraded" else None

        body = wait_for(degraded, timeout=15, interval=0.2)  # the check is cached a few s
        assert body["reasons"] == [f"DynamoDB table {table} is missing"]
        assert set(body["components"].values()) == {"ok"}  # everything still runs
