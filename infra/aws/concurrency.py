"""Whether the account can spare the concurrency ``deploy --reserve-concurrency`` would reserve.

Lambda lets an account reserve concurrency only down to 100 unreserved units: "You can reserve
up to the Unreserved account concurrency value minus 100" (https://docs.aws.amazon.com/lambda/
latest/dg/configuration-concurrency.html). A stack whose reservations break that rule fails
half-way through creation, so deploy asks ``GetAccountSettings`` first and refuses with the
numbers instead.
"""

from __future__ import annotations

from typing import Any

# Lambda keeps this many units of the account's concurrency for functions without a reservation.
MIN_UNRESERVED = 100


class ConcurrencyRefused(RuntimeError):
    """The account cannot spare the reservation; the message says why and what to do."""


def current_reservations(lambda_client: Any, names: list[str]) -> int:
    """Units these functions reserve now (an update gives them back before reserving again)."""
    total = 0
    for name in names:
        try:
            answer = lambda_client.get_function_concurrency(FunctionName=name)
        except lambda_client.exceptions.ResourceNotFoundException:
            continue
        total += int(answer.get("ReservedConcurrentExecutions") or 0)
    return total


def check_reservations(lambda_client: Any, wanted: dict[str, int]) -> str:
    """Raise :class:`ConcurrencyRefused` unless ``wanted`` (function -> units) leaves at least
    :data:`MIN_UNRESERVED` units unreserved; otherwise a line saying what remains."""
    needed = sum(wanted.values())
    limits = lambda_client.get_account_settings()["AccountLimit"]
    account = int(limits["ConcurrentExecutions"])
    unreserved = int(limits["UnreservedConcurrentExecutions"])
    returned = current_reservations(lambda_client, sorted(wanted))
    left = unreserved + returned - needed
    if left < MIN_UNRESERVED:
        raise ConcurrencyRefused(
            f"--reserve-concurrency: the stack reserves {needed} units "
            f"({', '.join(f'{name} {units}' for name, units in sorted(wanted.items()))}), "
            f"which would leave {left} of the account's {account} unreserved; Lambda keeps at "
            f"least {MIN_UNRESERVED} unreserved, so creating the functions would fail. Deploy "
            "without --reserve-concurrency, or raise the account's concurrent executions quota "
            "(Service Quotas, Lambda) first."
        )
    return f"reserved concurrency: {needed} units; {left} of {account} stay unreserved"
