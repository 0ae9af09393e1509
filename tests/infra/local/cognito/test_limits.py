"""The local Cognito's limits without a stack, on a clock the test moves: the sign-in lockout
(AWS's five failures, then 2^(n-5) s up to about 15 minutes), confirmation codes invalidated
after wrong guesses and sent at a bounded rate, unconfirmed users expiring, the request
throttle, and stores kept in SQLite (importing an earlier version's JSON files), all 0600."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path
from typing import Any

import pytest

from infra.local.cognito import CognitoError, CognitoLimits, LocalCognito
from infra.local.cognito.limits import Throttle
from infra.local.cognito.user_pool import UserPool
from tests.support.clock import Clock

PASSWORD = "Correct-horse-9"


@pytest.fixture
def cognito(tmp_path: Path) -> LocalCognito:
    limits = CognitoLimits(code_sends=3)
    service = LocalCognito.load_or_create(
        tmp_path / "cognito", "us-east-1", lambda c: None, limits=limits
    )
    yield service
    service.close()


@pytest.fixture
def pool(cognito: LocalCognito) -> UserPool:
    clock = Clock()
    cognito.user_pool.clock = clock
    return cognito.user_pool


def code_of(pool: UserPool, username: str) -> str:
    lines = pool.outbox.read_text().splitlines()
    return [json.loads(line)["code"] for line in lines if json.loads(line)["username"] == username][
        -1
    ]


def sign_up(pool: UserPool, username: str) -> None:
    pool.sign_up(
        pool.client_id, username, PASSWORD, [{"Name": "email", "Value": f"{username}@example.com"}]
    )


def refusal(call: Any) -> tuple[str, str]:
    with pytest.raises(CognitoError) as refused:
        call()
    return refused.value.code, refused.value.message


def sign_in(pool: UserPool, username: str, password: str = PASSWORD) -> dict[str, Any]:
    return pool.initiate_auth(
        pool.client_id, "USER_PASSWORD_AUTH", {"USERNAME": username, "PASSWORD": password}
    )


def wrong_code(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def test_lockout_schedule_is_awss() -> None:
    limits = CognitoLimits()
    assert [limits.lockout(n) for n in range(1, 9)] == [0, 0, 0, 0, 1, 2, 4, 8]
    assert limits.lockout(15) == 900 and limits.lockout(10_000) == 900


def test_a_guessed_code_is_invalidated_and_a_new_one_works(pool: UserPool) -> None:
    sign_up(pool, "ann")
    code = code_of(pool, "ann")
    confirm = pool.confirm_sign_up
    for _ in range(4):
        assert (
            refusal(lambda: confirm(pool.client_id, "ann", wrong_code(code)))[0]
            == "CodeMismatchException"
        )
    assert refusal(lambda: confirm(pool.client_id, "ann", wrong_code(code)))[0] == (
        "TooManyFailedAttemptsException"
    )
    # The right code no longer works: a new one is needed.
    assert refusal(lambda: confirm(pool.client_id, "ann", code))[0] == "ExpiredCodeException"
    pool.resend_confirmation_code(pool.client_id, "ann")
    assert confirm(pool.client_id, "ann", code_of(pool, "ann")) == {}
    assert sign_in(pool, "ann")["AuthenticationResult"]["IdToken"]


def test_codes_are_sent_at_a_bounded_rate(pool: UserPool) -> None:
    sign_up(pool, "bob")  # the first of three codes this hour
    pool.resend_confirmation_code(pool.client_id, "bob")
    pool.resend_confirmation_code(pool.client_id, "bob")
    code, message = refusal(lambda: pool.resend_confirmation_code(pool.client_id, "bob"))
    assert (code, message) == (
        "LimitExceededException",
        "Attempt limit exceeded, please try after some time.",
    )
    # The last code sent still confirms; an hour later codes are sent again.
    assert isinstance(pool.clock, Clock)
    pool.clock.now += 3601
    pool.resend_confirmation_code(pool.client_id, "bob")
    pool.confirm_sign_up(pool.client_id, "bob", code_of(pool, "bob"))


def test_expired_code_is_refused(pool: UserPool) -> None:
    sign_up(pool, "cy")
    assert isinstance(pool.clock, Clock)
    pool.clock.now += 24 * 3600 + 1
    code = code_of(pool, "cy")
    assert (
        refusal(lambda: pool.confirm_sign_up(pool.client_id, "cy", code))[0]
        == "ExpiredCodeException"
    )


def confirmed(pool: UserPool, username: str) -> None:
    sign_up(pool, username)
    pool.confirm_sign_up(pool.client_id, username, code_of(pool, username))


def test_password_guessing_locks_out_with_a_doubling_back_off(pool: UserPool) -> None:
    confirmed(pool, "dee")
    confirmed(pool, "eve")
    clock = pool.clock
    assert isinstance(clock, Clock)
    for _ in range(4):
        assert refusal(lambda: sign_in(pool, "dee", "Wrong-pass-1")) == (
            "NotAuthorizedException",
            "Incorrect username or password.",
        )
    assert sign_in(pool, "dee")["AuthenticationResult"]  # a success resets the count
    for _ in range(5):
        refusal(lambda: sign_in(pool, "dee", "Wrong-pass-1"))
    # Locked for 1 s: even the right password is refused, and other users are unaffected.
    assert refusal(lambda: sign_in(pool, "dee")) == (
        "NotAuthorizedException",
        "Password attempts exceeded",
    )
    assert sign_in(pool, "eve")["AuthenticationResult"]
    clock.now += 1.01
    refusal(lambda: sign_in(pool, "dee", "Wrong-pass-1"))  # sixth failure: 2 s
    clock.now += 1.5
    assert refusal(lambda: sign_in(pool, "dee"))[1] == "Password attempts exceeded"
    clock.now += 0.6
    assert sign_in(pool, "dee")["AuthenticationResult"]
    # After a success the count starts over: four more failures lock nothing.
    for _ in range(4):
        assert (
            refusal(lambda: sign_in(pool, "dee", "Wrong-pass-1"))[1]
            == "Incorrect username or password."
        )
    assert sign_in(pool, "dee")["AuthenticationResult"]


def test_quiet_fifteen_minutes_reset_the_lockout(pool: UserPool) -> None:
    confirmed(pool, "fay")
    clock = pool.clock
    assert isinstance(clock, Clock)
    for _ in range(9):  # the ninth failure: 16 s
        clock.now += 20
        refusal(lambda: sign_in(pool, "fay", "Wrong-pass-1"))
    clock.now += 900
    refusal(lambda: sign_in(pool, "fay", "Wrong-pass-1"))  # counts as the first again
    assert sign_in(pool, "fay")["AuthenticationResult"]


def test_unconfirmed_users_expire_and_free_their_name(pool: UserPool) -> None:
    sign_up(pool, "gus")
    with pytest.raises(CognitoError):
        sign_up(pool, "gus")
    assert isinstance(pool.clock, Clock)
    pool.clock.now += 7 * 24 * 3600 + 1
    assert pool.user("gus") is None
    sign_up(pool, "GUS")  # the name is free again
    assert pool.user_count() == 1
    pool.clock.now += 7 * 24 * 3600 + 1
    assert pool.purge() == 1 and pool.user_count() == 0


def test_unknown_user_looks_like_a_wrong_password(pool: UserPool) -> None:
    assert refusal(lambda: sign_in(pool, "nobody")) == (
        "NotAuthorizedException",
        "Incorrect username or password.",
    )


def test_verification_codes_are_never_logged(
    pool: UserPool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sign_up(pool, "hal")
    pool.resend_confirmation_code(pool.client_id, "hal")
    code = code_of(pool, "hal")
    assert caplog.records and all(code not in record.getMessage() for record in caplog.records)


def test_throttle_per_source_and_global() -> None:
    clock = Clock()
    limits = CognitoLimits(request_rate=2, request_burst=3, global_rate=4, global_burst=5)
    throttle = Throttle(limits, clock=clock)
    assert [throttle.allow("a") for _ in range(4)] == [True, True, True, False]
    assert [throttle.allow("b") for _ in range(3)] == [True, True, False]  # global is spent
    clock.now += 0.5  # a: +1 token, global: +2
    assert throttle.allow("a") and throttle.allow("c") and not throttle.allow("c")
    assert throttle.refused == 3


def test_throttle_keeps_a_bounded_number_of_sources() -> None:
    throttle = Throttle(CognitoLimits(), max_sources=100)
    for n in range(1000):
        throttle.allow(f"127.0.{n // 256}.{n % 256}")
    assert len(throttle._sources) == 100


def test_stores_are_sqlite_private_and_import_the_json_of_earlier_versions(tmp_path: Path) -> None:
    directory = tmp_path / "cognito"
    directory.mkdir()
    far = 4_000_000_000.0
    (directory / "identities.json").write_text(
        json.dumps(
            {
                "identities": {
                    "us-east-1:g": {"logins": [], "created": 1.0, "policyAttached": False}
                },
                "logins": {},
                "credentials": [
                    {
                        "accessKeyId": "ASIAOLDKEY",
                        "secretKey": "s",
                        "sessionToken": "t",
                        "expires": far,
                        "identityId": "us-east-1:g",
                        "authenticated": False,
                    }
                ],
            }
        )
    )
    (directory / "policy-attachments.json").write_text(
        json.dumps({"us-east-1:u": ["iotchat-user"]})
    )
    (directory / "users.json").write_text(
        json.dumps(
            {
                "users": {"old": {"username": "old", "confirmed": True, "created": 1.0}},
                "refresh": {},
            }
        )
    )
    restored: list[Any] = []
    cognito = LocalCognito.load_or_create(directory, "us-east-1", restored.append)
    try:
        assert [c.access_key_id for c in restored] == ["ASIAOLDKEY"]
        assert cognito.identity_pool.identity_count() == 1
        assert cognito.attachments.list_attached("us-east-1:u") == ["iotchat-user"]
        assert cognito.user_pool.user("OLD") is not None
        pool = cognito.identity_pool
        guest = pool.get_id(pool.pool_id, None)["IdentityId"]
        pool.get_credentials_for_identity(guest, None)
        sign_up(cognito.user_pool, "ivy")
    finally:
        cognito.close()
    assert not (directory / "identities.json").exists()
    assert (directory / "identities.json.imported").exists()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for path in directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path.name
    again = LocalCognito.load_or_create(directory, "us-east-1", lambda c: None)
    try:
        assert again.identity_pool.identity_count() == 2 and again.user_pool.user("ivy")
    finally:
        again.close()
