"""Cognito under hostile traffic: guessing codes and passwords, flooding the unauthenticated
calls, growing the stores; each attack beside the legitimate action that still works.

| attack                                             | answer                                    |
|----------------------------------------------------|-------------------------------------------|
| 5 wrong confirmation codes                         | `CodeMismatchException` x4, then          |
|                                                    | `TooManyFailedAttemptsException`; the     |
|                                                    | right code is `ExpiredCodeException`      |
|                                                    | until `ResendConfirmationCode`            |
| resending codes over and over                      | `LimitExceededException` after 5 an hour  |
| 12 wrong passwords at once, then the right one     | 5 x "Incorrect username or password.",    |
|                                                    | then `NotAuthorizedException` "Password   |
|                                                    | attempts exceeded" until the lockout ends |
| 2,000 guest identities (`GetId`)                   | all served; the median latency of the     |
|                                                    | last 200 within 2x of the first 200       |
| a flood of `GetId` from one source                 | `TooManyRequestsException` (HTTP 400);    |
|                                                    | another source is served meanwhile        |
| reading the log for a verification code            | not there (only in the 0600 outbox)       |
"""

from __future__ import annotations

import http.client
import json
import logging
import stat
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError

from infra.local.cognito import CognitoLimits
from tests.support import cognito
from tests.support.stack import InProcessStack, fresh_stack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(60)

LOCKOUT = 3.0  # the first lockout, shortened from AWS's 1 s doubling so the test can see it
THROTTLED_RATE = 10.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessStack]:
    limits = CognitoLimits(lockout_base=LOCKOUT)
    with fresh_stack(tmp_path_factory, "cognito-abuse", cognito_limits=limits) as s:
        yield s


@pytest.fixture(scope="module")
def throttled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessStack]:
    limits = CognitoLimits(request_rate=THROTTLED_RATE, request_burst=THROTTLED_RATE)
    with fresh_stack(tmp_path_factory, "cognito-throttled", cognito_limits=limits) as s:
        yield s


def error(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    return excinfo.value.response["Error"]["Code"], excinfo.value.response["Error"]["Message"]


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def test_guessed_confirmation_code_is_invalidated_until_a_new_one_is_sent(
    stack: InProcessStack,
) -> None:
    idp = cognito.unsigned_client(stack, "cognito-idp")
    client_id = stack.info["cognito"]["userPoolClientId"]
    victim, _ = cognito.sign_up(stack)
    bystander, _ = cognito.sign_up(stack)
    (code,) = cognito.outbox_codes(stack.stack.state_dir, victim)
    answers = []
    for _ in range(5):
        with pytest.raises(ClientError) as refused:
            idp.confirm_sign_up(ClientId=client_id, Username=victim, ConfirmationCode=wrong(code))
        answers.append(error(refused)[0])
    assert answers == ["CodeMismatchException"] * 4 + ["TooManyFailedAttemptsException"]
    # The right code no longer confirms: the guesser cannot win by luck after the fifth try.
    with pytest.raises(ClientError) as refused:
        idp.confirm_sign_up(ClientId=client_id, Username=victim, ConfirmationCode=code)
    assert error(refused)[0] == "ExpiredCodeException"
    # Another user's confirmation is unaffected meanwhile.
    cognito.confirm(stack, bystander)
    assert cognito.sign_in(stack, bystander)["IdToken"]
    # The owner asks for a new code, and it works.
    idp.resend_confirmation_code(ClientId=client_id, Username=victim)
    cognito.confirm(stack, victim)
    assert cognito.sign_in(stack, victim)["IdToken"]


def test_resending_codes_is_limited(stack: InProcessStack) -> None:
    idp = cognito.unsigned_client(stack, "cognito-idp")
    client_id = stack.info["cognito"]["userPoolClientId"]
    username, _ = cognito.sign_up(stack)  # the first code
    for _ in range(4):
        idp.resend_confirmation_code(ClientId=client_id, Username=username)
    with pytest.raises(ClientError) as refused:
        idp.resend_confirmation_code(ClientId=client_id, Username=username)
    assert error(refused) == (
        "LimitExceededException",
        "Attempt limit exceeded, please try after some time.",
    )
    cognito.confirm(stack, username)  # the last code sent still confirms
    assert len(cognito.outbox_codes(stack.stack.state_dir, username)) == 5


def test_password_guessing_locks_the_user_out_for_a_while(stack: InProcessStack) -> None:
    victim, other = cognito.new_user(stack), cognito.new_user(stack)

    def attempt(password: str) -> str:
        try:
            cognito.sign_in(stack, victim.username, password)
        except ClientError as exc:
            return str(exc.response["Error"]["Message"])
        return "signed in"

    # Twelve guesses at once: the per-user counter lets exactly five be tried.
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(attempt, [f"Guess-{n}-pass!" for n in range(12)]))
    assert answers.count("Incorrect username or password.") == 5, answers
    assert answers.count("Password attempts exceeded") == 7, answers
    # During the lockout even the right password is refused; another user signs in.
    assert attempt(cognito.PASSWORD) == "Password attempts exceeded"
    assert cognito.sign_in(stack, other.username)["IdToken"]
    # After it, the right password works again (polling: attempts during a lockout do not
    # lengthen it).
    began = time.monotonic()
    wait_for(lambda: attempt(cognito.PASSWORD) == "signed in", timeout=LOCKOUT + 10, interval=0.25)
    assert time.monotonic() - began < LOCKOUT + 10


def test_two_thousand_guests_without_growing_latency(stack: InProcessStack) -> None:
    identity = cognito.unsigned_client(stack, "cognito-identity")
    pool_id = stack.info["cognito"]["identityPoolId"]
    before = stack.cognito.identity_pool.identity_count()
    latencies = []
    ids = set()
    for _ in range(2000):
        began = time.perf_counter()
        ids.add(identity.get_id(IdentityPoolId=pool_id)["IdentityId"])
        latencies.append(time.perf_counter() - began)
    assert len(ids) == 2000
    assert stack.cognito.identity_pool.identity_count() == before + 2000
    first, last = statistics.median(latencies[:200]), statistics.median(latencies[-200:])
    assert last <= 2 * first, (first, last)
    # The newest guests get credentials as the first did.
    newest = identity.get_credentials_for_identity(IdentityId=sorted(ids)[-1])
    assert newest["Credentials"]["AccessKeyId"].startswith("ASIA")


def raw_get_id(stack: InProcessStack, source: str) -> tuple[int, dict[str, Any]]:
    """GetId as any HTTP client sends it, from the loopback address ``source``."""
    port = int(stack.endpoint.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        conn.request(
            "POST",
            "/",
            body=json.dumps({"IdentityPoolId": stack.info["cognito"]["identityPoolId"]}),
            headers={
                "X-Amz-Target": "AWSCognitoIdentityService.GetId",
                "Content-Type": "application/x-amz-json-1.1",
            },
        )
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_a_flood_of_unauthenticated_calls_is_throttled_per_source(
    throttled: InProcessStack,
) -> None:
    answers = [raw_get_id(throttled, "127.0.0.1") for _ in range(3 * int(THROTTLED_RATE))]
    refused = [body for status, body in answers if status != 200]
    assert refused, "the flood was never throttled"
    assert all(body["__type"] == "TooManyRequestsException" for body in refused)
    assert {status for status, _ in answers} == {200, 400}
    served = len(answers) - len(refused)
    assert THROTTLED_RATE <= served < 2 * THROTTLED_RATE
    # Another source is served while the first is throttled.
    status, body = raw_get_id(throttled, "127.0.0.2")
    assert status == 200 and body["IdentityId"]
    # At a normal rate the flooding source is served again once its bucket refills.
    wait_for(lambda: raw_get_id(throttled, "127.0.0.1")[0] == 200, timeout=5, interval=0.2)
    client = cognito.unsigned_client(throttled, "cognito-identity")
    assert client.get_id(IdentityPoolId=throttled.info["cognito"]["identityPoolId"])


def test_no_verification_code_in_the_log(stack: InProcessStack) -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    root, iotchat = logging.getLogger(), logging.getLogger("iotchat")
    level = iotchat.level
    root.addHandler(handler)
    iotchat.setLevel(logging.DEBUG)
    try:
        idp = cognito.unsigned_client(stack, "cognito-idp")
        client_id = stack.info["cognito"]["userPoolClientId"]
        username, _ = cognito.sign_up(stack)
        idp.resend_confirmation_code(ClientId=client_id, Username=username)
        cognito.confirm(stack, username)
    finally:
        root.removeHandler(handler)
        iotchat.setLevel(level)
    codes = cognito.outbox_codes(stack.stack.state_dir, username)
    assert len(codes) == 2  # the outbox keeps them: that is how a local user confirms
    messages = [record.getMessage() for record in records]
    assert any(username in message for message in messages)  # the sends are logged...
    assert not [m for m in messages if any(code in m for code in codes)]  # ...not the codes
    cognito_dir = stack.stack.state_dir / "cognito"
    for name in ("outbox.jsonl", "cognito.sqlite3"):
        assert stat.S_IMODE((cognito_dir / name).stat().st_mode) == 0o600, name
