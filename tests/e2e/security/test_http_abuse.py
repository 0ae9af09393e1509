"""The HTTP listeners (the API endpoint and the web app) under hostile traffic, on a running
stack with short deadlines, each attack beside two guests who keep chatting (their joins and
history pages go through the API endpoint's iot-data publish) and a boto3 call that is served.

- 20 unauthenticated ``POST /topics/x`` announcing 19 MiB, headers only: 413
  ``RequestEntityTooLargeException`` arrives before a byte of the body is sent (and with
  ``Expect: 100-continue``, no ``100 Continue``); 20 that send it anyway: 413, closed.
- A 100 KB publish unsigned, by an unknown key, by a temporary key without its token, or with
  a bad signature over a declared payload hash, headers only: 403 before the body.
- DynamoDB ``BatchWriteItem`` 17 MiB, Kinesis ``PutRecords`` 8 MiB / ``PutRecord`` 2 MiB,
  Cognito 1 MiB declared: 413 ``ValidationException``, unread; an unknown key's DynamoDB
  request: ``UnrecognizedClientException`` before its body.
- A silent socket (API and web ports), a half-sent request line, a body slower than its
  deadline: closed by the deadline with no answer.
- iot-data publish and Kinesis signed with ``UNSIGNED-PAYLOAD``: 403 ``ForbiddenException`` /
  400 ``InvalidSignatureException``, nothing published; the same signed properly is served.
- A Cognito guest's or a Lambda role session's key without its session token: 403 /
  ``UnrecognizedClientException``; with it, served (or refused by IAM).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import botocore.exceptions
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from infra.local.http import HttpLimits
from tests.e2e.chat.conftest import People, people_on, room_topic, unique
from tests.support.cognito import guest_credentials
from tests.support.stack import InProcessStack, fresh_stack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(90)

DEADLINE = 2.0
# A generous bound on when a deadline's close must have happened (a loaded CI machine).
LATE = DEADLINE + 8.0
MiB = 1024 * 1024
DYNAMODB = "DynamoDB_20120810."
KINESIS = "Kinesis_20131202."


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessStack]:
    limits = HttpLimits(header_timeout=DEADLINE, body_timeout=DEADLINE)
    with fresh_stack(tmp_path_factory, "http-abuse", http_limits=limits) as s:
        yield s


@pytest.fixture
def people(stack: InProcessStack) -> Iterator[People]:
    yield from people_on(stack)


class Chat:
    """Two guests in one room: :meth:`check` sends one message and waits until the other
    receives it (joins and history pages went through the API endpoint)."""

    def __init__(self, people: People) -> None:
        self.room = unique("room")
        self.alice, self.bob = people.connect("Alice"), people.connect("Bob")
        self.alice.subscribe(room_topic(self.room))
        self.bob.subscribe(room_topic(self.room))
        self.alice.join(self.room)
        self.bob.join(self.room)

    def check(self) -> None:
        message = self.alice.say(self.room, "still here")
        self.bob.wait_for_message(
            room_topic(self.room), lambda m: m.get("id") == message, "the room message"
        )


@pytest.fixture
def chat(people: People) -> Chat:
    return Chat(people)


# ---------------------------------------------------------------------- raw HTTP


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=LATE)
    sock.settimeout(LATE)
    return sock


def _send_head(sock: socket.socket, method: str, path: str, headers: dict[str, str]) -> None:
    """A request line and headers, and not a byte of the body they announce."""
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())


def _response(sock: socket.socket) -> tuple[int, dict[str, str], Any]:
    """The answer on ``sock``: status, headers (lower-case names) and JSON body (or None)."""
    response = http.client.HTTPResponse(sock)
    response.begin()
    body = response.read()
    headers = {k.lower(): v for k, v in response.getheaders()}
    try:
        return response.status, headers, json.loads(body)
    except ValueError:
        return response.status, headers, None


def _closed_without_answer(sock: socket.socket) -> float:
    """Seconds until the server closed ``sock``, which must not have answered anything."""
    started = time.monotonic()
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    assert data == b"", data[:200]
    return time.monotonic() - started


def _signed_head(
    stack: InProcessStack,
    service: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    key: str = "test",
    secret: str = "test",
    token: str | None = None,
) -> dict[str, str]:
    """The headers botocore signs for ``body`` (Host and Content-Length included)."""
    request = AWSRequest("POST", stack.endpoint + path, data=body, headers=headers)
    SigV4Auth(Credentials(key, secret, token), service, stack.info["region"]).add_auth(request)
    prepared = dict(request.prepare().headers)
    prepared["Host"] = urlsplit(stack.endpoint).netloc
    prepared["Content-Length"] = str(len(body))
    return prepared


def _json_head(stack: InProcessStack, target: str, length: int) -> dict[str, str]:
    """A JSON-protocol request's headers announcing ``length`` bytes (signed for none)."""
    return {
        "Host": urlsplit(stack.endpoint).netloc,
        "X-Amz-Target": target,
        "Content-Type": "application/x-amz-json-1.0",
        "Content-Length": str(length),
    }


# ---------------------------------------------------------------------- bodies before auth


def test_unauthenticated_19_mib_publishes_are_refused_before_the_body_is_sent(
    stack: InProcessStack, chat: Chat
) -> None:
    port = _port(stack.endpoint)
    head = {"Host": urlsplit(stack.endpoint).netloc, "Content-Length": str(19 * MiB)}
    socks = [_connect(port) for _ in range(20)]
    try:
        for sock in socks:
            _send_head(sock, "POST", "/topics/x", head)
        for sock in socks:  # every refusal arrives with the body never sent
            status, headers, body = _response(sock)
            assert status == 413
            assert headers["x-amzn-errortype"] == "RequestEntityTooLargeException"
            assert "131072" in body["message"]
    finally:
        for sock in socks:
            sock.close()
    # A client that waits for "100 Continue" is refused without one: it never sends the body.
    with _connect(port) as sock:
        _send_head(sock, "POST", "/topics/x", {**head, "Expect": "100-continue"})
        assert sock.recv(65536).startswith(b"HTTP/1.1 413 ")
    chat.check()
    assert not stack.taps_on("x")


@pytest.mark.parametrize(
    "who", ["no-signature", "unknown-key", "temporary-key-without-token", "bad-signature"]
)
def test_a_publish_that_is_not_signed_right_is_refused_before_its_body(
    stack: InProcessStack, chat: Chat, who: str
) -> None:
    """100 KB declared (under the 128 KB limit), headers only: the signature headers decide.
    A bad signature with the payload hash declared is refused unread too."""
    body = b"x" * 100_000
    path = "/topics/chat/in/someone"
    _, guest = guest_credentials(stack)
    declared = {"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()}
    head = {
        "no-signature": lambda: {
            "Host": urlsplit(stack.endpoint).netloc,
            "Content-Length": "100000",
        },
        "unknown-key": lambda: _signed_head(stack, "iotdata", path, body, {}, "AKIAUNKNOWN000000"),
        "temporary-key-without-token": lambda: _signed_head(
            stack, "iotdata", path, body, {}, guest["AccessKeyId"], guest["SecretKey"]
        ),
        "bad-signature": lambda: _signed_head(stack, "iotdata", path, body, declared, "test", "x"),
    }[who]()
    with _connect(_port(stack.endpoint)) as sock:
        _send_head(sock, "POST", path, head)
        status, headers, _ = _response(sock)
    assert (status, headers["x-amzn-errortype"]) == (403, "ForbiddenException")
    chat.check()
    assert not stack.taps_on("chat/in/someone")


@pytest.mark.parametrize(
    ("target", "length"),
    [
        (DYNAMODB + "BatchWriteItem", 17 * MiB),
        (KINESIS + "PutRecords", 8 * MiB),
        (KINESIS + "PutRecord", 2 * MiB),
        ("AWSCognitoIdentityService.GetId", 1 * MiB),
    ],
    ids=["dynamodb-batch-17mib", "kinesis-putrecords-8mib", "kinesis-putrecord-2mib", "cognito"],
)
def test_oversize_service_requests_are_refused_unread(
    stack: InProcessStack, chat: Chat, target: str, length: int
) -> None:
    with _connect(_port(stack.endpoint)) as sock:
        _send_head(sock, "POST", "/", _json_head(stack, target, length))
        status, _, body = _response(sock)
    assert status == 413
    assert body["__type"].endswith("ValidationException")
    # The same services still answer a request of the right size.
    assert "TableNames" in stack.client("dynamodb").list_tables()
    assert "StreamNames" in stack.client("kinesis").list_streams()
    chat.check()


def test_a_signature_refusal_reaches_dynamodb_clients_before_their_body(
    stack: InProcessStack,
) -> None:
    """An unknown key's 1 MiB DynamoDB request, headers only: refused unread."""
    body = b"{}"
    head = _signed_head(
        stack, "dynamodb", "/", body, {"X-Amz-Target": DYNAMODB + "ListTables"}, "AKIAUNKNOWN0"
    )
    head["Content-Length"] = str(MiB)
    with _connect(_port(stack.endpoint)) as sock:
        _send_head(sock, "POST", "/", head)
        status, _, answer = _response(sock)
    assert (status, answer["__type"]) == (
        400,
        "com.amazon.coral.service#UnrecognizedClientException",
    )


# ---------------------------------------------------------------------- deadlines


def test_silent_half_sent_and_slow_connections_are_closed_by_the_deadline(
    stack: InProcessStack, chat: Chat
) -> None:
    api, web = _port(stack.endpoint), _port(stack.info["web"]["url"])
    silent_api, silent_web = _connect(api), _connect(web)
    half = _connect(api)
    half.sendall(b"POST /topics/x HTT")
    slow = _connect(api)
    body = b"y" * 1000
    path = "/topics/chat/in/slow"
    _send_head(slow, "POST", path, _signed_head(stack, "iotdata", path, body, {}))
    slow.sendall(body[:10])  # and the other 990 bytes never come
    opened = time.monotonic()
    # Meanwhile everyone else is served: the chat, a boto3 call, the web page.
    chat.check()
    assert "TableNames" in stack.client("dynamodb").list_tables()
    with urllib.request.urlopen(stack.info["web"]["url"], timeout=10) as page:
        assert page.status == 200
    for sock in (silent_api, silent_web, half, slow):
        with sock:
            _closed_without_answer(sock)
    assert time.monotonic() - opened < LATE
    assert not stack.taps_on("chat/in/slow")
    chat.check()


# ---------------------------------------------------------------------- SigV4


def _refusal(call: Callable[[], Any]) -> tuple[int, str]:
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        call()
    response = refused.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def _post(stack: InProcessStack, path: str, body: bytes, headers: dict[str, str]) -> Any:
    with _connect(_port(stack.endpoint)) as sock:
        _send_head(sock, "POST", path, headers)
        sock.sendall(body)
        return _response(sock)


def test_unsigned_payload_is_refused_for_iot_data_and_kinesis_beside_signed_requests(
    stack: InProcessStack, chat: Chat
) -> None:
    inbox = f"chat/in/{uuid.uuid4().hex[:8]}"
    path = f"/topics/{inbox}"
    unsigned = {"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}
    signed_for = b'{"type": "signed"}'
    # One signature "for any body": the body sent is another one.
    status, headers, _ = _post(
        stack,
        path,
        b'{"type": "forged"}',
        _signed_head(stack, "iotdata", path, signed_for, unsigned),
    )
    assert (status, headers["x-amzn-errortype"]) == (403, "ForbiddenException")
    status, _, _ = _post(
        stack, path, signed_for, _signed_head(stack, "iotdata", path, signed_for, {})
    )
    assert status == 200
    (event,) = wait_for(lambda: stack.taps_on(inbox))
    assert event.payload == signed_for  # the signed one only

    stream = f"{stack.info['stackName']}-stream"
    request = json.dumps({"StreamName": stream}).encode()
    target = {
        "X-Amz-Target": KINESIS + "DescribeStreamSummary",
        "Content-Type": "application/x-amz-json-1.1",
    }
    status, _, answer = _post(
        stack, "/", request, _signed_head(stack, "kinesis", "/", request, {**target, **unsigned})
    )
    assert (status, answer["__type"]) == (400, "InvalidSignatureException")
    status, _, answer = _post(
        stack, "/", request, _signed_head(stack, "kinesis", "/", request, target)
    )
    assert status == 200 and answer["StreamDescriptionSummary"]["StreamName"] == stream
    chat.check()


def _role_session(stack: InProcessStack) -> Any:
    local = stack.stack
    role = local.roles.by_file("backend-lambda")
    return stack.call(lambda: local.role_sessions.issue(role, "http-abuse", None))


def test_temporary_keys_without_their_session_token_are_refused(
    stack: InProcessStack, chat: Chat
) -> None:
    table = f"{stack.info['stackName']}-messages"
    key = {"conv": {"S": f"room#{uuid.uuid4().hex[:6]}"}, "mid": {"S": "m"}}
    # A Lambda role session: served with its token, refused without it.
    session = _role_session(stack)
    assert session.access_key_id.startswith("ASIA")
    keyed = (session.access_key_id, session.secret_access_key)
    with_token = stack.client("dynamodb", *keyed, session.session_token)
    assert "Item" not in with_token.get_item(TableName=table, Key=key)
    without = stack.client("dynamodb", *keyed)
    assert _refusal(lambda: without.get_item(TableName=table, Key=key)) == (
        400,
        "UnrecognizedClientException",
    )
    kinesis = stack.client("kinesis", *keyed)
    stream = f"{stack.info['stackName']}-stream"
    assert _refusal(lambda: kinesis.describe_stream_summary(StreamName=stream)) == (
        400,
        "UnrecognizedClientException",
    )
    # A Cognito guest's key: without its token not even IAM is asked.
    _, guest = guest_credentials(stack)
    assert guest["AccessKeyId"].startswith("ASIA")
    guest_keys = (guest["AccessKeyId"], guest["SecretKey"])
    iot_data = stack.client("iot-data", *guest_keys)
    assert _refusal(lambda: iot_data.publish(topic="chat/out", payload=b"{}")) == (
        403,
        "ForbiddenException",
    )
    guest_db = stack.client("dynamodb", *guest_keys)
    assert _refusal(lambda: guest_db.get_item(TableName=table, Key=key)) == (
        400,
        "UnrecognizedClientException",
    )
    with_guest_token = stack.client("dynamodb", *guest_keys, guest["SessionToken"])
    assert _refusal(lambda: with_guest_token.get_item(TableName=table, Key=key)) == (
        400,
        "AccessDeniedException",  # authenticated, then refused by the guest role's policy
    )
    chat.check()


def test_twenty_refused_uploads_at_once_leave_the_stack_serving(
    stack: InProcessStack, chat: Chat
) -> None:
    """Twenty clients announcing 19 MiB each and then sending it anyway, in parallel: each is
    answered 413 at once and its connection closed; the chat goes on meanwhile."""
    port = _port(stack.endpoint)
    head = {"Host": urlsplit(stack.endpoint).netloc, "Content-Length": str(19 * MiB)}
    answers: list[int] = []

    def upload() -> None:
        with _connect(port) as sock:
            _send_head(sock, "POST", "/topics/x", head)
            try:
                for _ in range(19):
                    sock.sendall(b"z" * MiB)
            except OSError:
                pass  # closed under us once answered: the rest is never read
            try:
                answers.append(_response(sock)[0])
            except (OSError, http.client.HTTPException):
                answers.append(0)  # reset before the answer could be read

    threads = [threading.Thread(target=upload) for _ in range(20)]
    for thread in threads:
        thread.start()
    chat.check()
    for thread in threads:
        thread.join(LATE * 2)
    assert len(answers) == 20 and set(answers) <= {413, 0} and 413 in answers
    chat.check()
