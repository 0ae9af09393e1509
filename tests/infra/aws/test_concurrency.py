"""``deploy --reserve-concurrency`` reserves only what the account can spare, and says why not.

Lambda keeps 100 units of an account's concurrency unreserved
(https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html). GetAccountSettings
is answered by a botocore Stubber (moto has no such call); the rest of the deploy runs on moto.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from infra.aws.concurrency import ConcurrencyRefused, check_reservations
from infra.aws.deploy import DeployError
from infra.aws.template import build_template, reserved_concurrency
from lambdas.manifest import Manifest
from tests.infra.aws.test_deploy import REGION, deployment, session  # noqa: F401  (fixture)

WANTED = reserved_concurrency(build_template("chat-a", reserve_concurrency=True))
TOTAL = sum(WANTED.values())  # the manifest's reservedConcurrency, summed


def lambda_stub(
    limit: int,
    unreserved: int,
    held: dict[str, int] | None = None,
    wanted: dict[str, int] = WANTED,
) -> Any:
    """A Lambda client whose account has ``limit`` units, ``unreserved`` of them free, and
    whose functions hold ``held`` (missing functions: not created yet); it expects the
    questions deploy asks about ``wanted``, in order."""
    client = boto3.client(
        "lambda", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    stub = Stubber(client)
    stub.add_response(
        "get_account_settings",
        {
            "AccountLimit": {
                "ConcurrentExecutions": limit,
                "UnreservedConcurrentExecutions": unreserved,
            }
        },
        {},
    )
    for name in sorted(wanted):
        if held and name in held:
            stub.add_response(
                "get_function_concurrency",
                {"ReservedConcurrentExecutions": held[name]},
                {"FunctionName": name},
            )
        else:
            stub.add_client_error(
                "get_function_concurrency",
                service_error_code="ResourceNotFoundException",
                http_status_code=404,
                expected_params={"FunctionName": name},
            )
    stub.activate()
    return client


def test_the_template_reserves_nothing_unless_asked() -> None:
    assert reserved_concurrency(build_template("chat-a")) == {}
    commands = Manifest.load().get("iotchat-commands")
    assert commands is not None and WANTED["chat-a-commands"] == commands.reserved_concurrency
    # checkov's concurrency check is suppressed, with its reason, only where nothing is reserved
    for reserve in (False, True):
        template = build_template("chat-a", reserve_concurrency=reserve)
        for resource in template["Resources"].values():
            if resource["Type"] != "AWS::Lambda::Function":
                continue
            skips = {s["id"] for s in resource["Metadata"]["checkov"]["skip"]}
            assert ("CKV_AWS_115" in skips) is not reserve


@pytest.mark.parametrize("limit", [10, 50])
def test_a_low_quota_account_is_refused_with_the_numbers(limit: int) -> None:
    with pytest.raises(ConcurrencyRefused) as refused:
        check_reservations(lambda_stub(limit, limit), WANTED)
    message = str(refused.value)
    assert f"reserves {TOTAL} units" in message
    assert f"leave {limit - TOTAL} of the account's {limit}" in message
    assert "at least 100 unreserved" in message and "without --reserve-concurrency" in message


def test_an_account_with_room_is_allowed() -> None:
    line = check_reservations(lambda_stub(1000, 1000), WANTED)
    assert line == f"reserved concurrency: {TOTAL} units; {1000 - TOTAL} of 1000 stay unreserved"
    # exactly 100 left is allowed, 99 is not
    exact = 100 + TOTAL
    assert f"100 of {exact}" in check_reservations(lambda_stub(exact, exact), WANTED)
    with pytest.raises(ConcurrencyRefused):
        check_reservations(lambda_stub(exact - 1, exact - 1), WANTED)


def test_an_update_counts_the_units_the_stack_already_holds() -> None:
    """Redeploying gives the functions' current reservations back before reserving again."""
    held = {name: units for name, units in WANTED.items()}
    assert "100 of 107" in check_reservations(lambda_stub(107, 100, held), WANTED)
    with pytest.raises(ConcurrencyRefused):
        check_reservations(lambda_stub(107, 100), WANTED)  # the same numbers, held by others


def moto_wanted(moto_session: Any) -> dict[str, int]:
    """The reservations of the part of the template moto runs (no sign-in step)."""
    seam = deployment(moto_session, "chat-a", []).template
    return reserved_concurrency(seam("chat-a", reserve_concurrency=True))


class StubbedLambdaSession:
    """moto for every service but Lambda's account settings."""

    def __init__(self, moto_session: Any, lambda_client: Any) -> None:
        self._session = moto_session
        self._lambda = lambda_client
        self.region_name = moto_session.region_name

    def client(self, name: str, **kwargs: Any) -> Any:
        return self._lambda if name == "lambda" else self._session.client(name, **kwargs)


def test_deploy_refuses_before_uploading_anything(session: Any, tmp_path: Path) -> None:  # noqa: F811
    lines: list[str] = []
    stub = lambda_stub(50, 50, wanted=moto_wanted(session))
    deploy = deployment(StubbedLambdaSession(session, stub), "chat-a", lines)
    with pytest.raises(DeployError, match="Lambda keeps at least 100 unreserved"):
        deploy.deploy(
            stream=False, yes=True, stack_file=tmp_path / "stack.json", reserve_concurrency=True
        )
    assert session.client("s3").list_buckets()["Buckets"] == []
    assert not (tmp_path / "stack.json").exists()


def test_deploy_reserves_when_the_account_can_spare_it(session: Any, tmp_path: Path) -> None:  # noqa: F811
    lines: list[str] = []
    stub = lambda_stub(1000, 1000, wanted=moto_wanted(session))
    stubbed = StubbedLambdaSession(session, stub)
    deployment(stubbed, "chat-a", lines).deploy(
        stream=False, yes=True, stack_file=tmp_path / "stack.json", reserve_concurrency=True
    )
    needed = sum(moto_wanted(session).values())
    assert f"reserved concurrency: {needed} units; {1000 - needed} of 1000 stay unreserved" in lines
    functions = session.client("lambda")
    held = functions.get_function_concurrency(FunctionName="chat-a-commands")
    assert held.get("ReservedConcurrentExecutions") == WANTED["chat-a-commands"]
    # and a deploy without the option reserves nothing
    plain = deployment(session, "chat-b", [])
    plain.deploy(stream=False, yes=True, stack_file=tmp_path / "b.json")
    assert "ReservedConcurrentExecutions" not in functions.get_function_concurrency(
        FunctionName="chat-b-commands"
    )
