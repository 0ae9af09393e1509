"""Function names and ARNs: the forms Lambda's Invoke accepts for ``FunctionName``.

The parser itself is :func:`policies.arns.lambda_function_name`, the project's one ARN reader
(``iot_rules/`` needs it too and may not import ``lambdas/``); this module gives it the local
stack's default region and account.
"""

from __future__ import annotations

from policies.arns import lambda_function_arn
from policies.arns import lambda_function_name as function_name

REGION = "us-east-1"
ACCOUNT_ID = "000000000000"

__all__ = ["ACCOUNT_ID", "REGION", "function_arn", "function_name"]


def function_arn(name: str, region: str = REGION, account_id: str = ACCOUNT_ID) -> str:
    return lambda_function_arn(name, region, account_id)
