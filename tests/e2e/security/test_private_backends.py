"""dynalite and kinesalite are reachable only through the API endpoint.

The emulators check no signature and no permission, so they listen on no TCP port at all: each
on a Unix socket in the stack's state dir (0700), the socket 0600, so only the stack's own user
can open it, and the stack itself reaches them only after its IAM checks. The one way in is
the API endpoint: the admin's signed DynamoDB call works, the same request unsigned is refused.
"""

from __future__ import annotations

import asyncio
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from infra.local.dynamodb import DynamoDBLocal, DynamoDBStartError
from infra.local.node_service import MAX_SOCKET_PATH_BYTES, socket_path_for
from tests.support.sockets import listening_tcp, listening_unix
from tests.support.stack import InProcessStack, post_json, run_stack_in_thread, stack_options

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessStack]:
    with run_stack_in_thread(stack_options(tmp_path_factory.mktemp("backends") / "s")) as s:
        yield s


@pytest.mark.parametrize("name", ["dynamodb", "kinesis"])
def test_the_emulator_listens_on_a_private_socket_and_on_no_tcp_port(
    stack: InProcessStack, name: str
) -> None:
    service = getattr(stack.stack, name)
    state_dir = stack.stack.state_dir
    assert service.socket_path == state_dir / f"{name}.sock"
    assert stat.S_ISSOCK(service.socket_path.stat().st_mode)
    assert stat.S_IMODE(service.socket_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    assert listening_unix(service.pid) == [str(service.socket_path)]
    assert listening_tcp(service.pid) == []


def _list_tables(stack: InProcessStack, signed: bool) -> tuple[int, dict[str, Any]]:
    body = b"{}"
    headers = {
        "X-Amz-Target": "DynamoDB_20120810.ListTables",
        "Content-Type": "application/x-amz-json-1.0",
    }
    if signed:
        request = AWSRequest("POST", stack.endpoint + "/", data=body, headers=headers)
        SigV4Auth(Credentials("test", "test"), "dynamodb", stack.info["region"]).add_auth(request)
        headers = dict(request.prepare().headers)
        headers.pop("Content-Length", None)
    return post_json(stack, body, headers)


def test_the_api_endpoint_is_the_one_way_in(stack: InProcessStack) -> None:
    status, answer = _list_tables(stack, signed=True)
    assert status == 200
    assert f"{stack.info['stackName']}-messages" in answer["TableNames"]
    status, answer = _list_tables(stack, signed=False)
    assert status == 400
    assert answer["__type"].endswith("MissingAuthenticationTokenException")
    assert "TableNames" not in answer


def test_a_state_dir_too_deep_for_a_socket_address_falls_back_to_a_private_temp_dir(
    tmp_path: Path,
) -> None:
    deep = tmp_path / ("d" * 120) / "dynamodb.sock"
    fallback = socket_path_for(deep, "dynalite")
    try:
        assert fallback.name == "dynamodb.sock"
        assert len(str(fallback)) <= MAX_SOCKET_PATH_BYTES
        assert stat.S_IMODE(fallback.parent.stat().st_mode) == 0o700
    finally:
        fallback.parent.rmdir()
    short = tmp_path / "dynamodb.sock"
    assert socket_path_for(short, "dynalite") == short


def test_a_live_socket_is_never_taken_over(stack: InProcessStack, tmp_path: Path) -> None:
    """A second server on the same socket (another stack on the state dir) refuses to start,
    rather than unlinking the socket the running stack reaches dynalite through."""
    dynalite = stack.stack.dynamodb
    second = DynamoDBLocal(
        tmp_path / "data", tmp_path / "dynamodb.log", socket_file=dynalite.socket_path
    )
    with pytest.raises(DynamoDBStartError, match="already listens"):
        asyncio.run(second.start())
    assert not second.running
    assert stat.S_ISSOCK(dynalite.socket_path.stat().st_mode)
    assert _list_tables(stack, signed=True)[0] == 200
