"""The project's IAM roles: one per ``policies/iam/*.json``, named as the template names them.

On AWS the CloudFormation template creates a role ``<stack>-<file>`` for every policy file
(``infra/aws/template/``), whose ARN is ``arn:aws:iam::<account>:role/<stack>-<file>``; the
rule files and the Lambda manifest refer to roles by that ARN. The local stack builds the same
table so a ``roleArn`` in a rule means the same policy here as there. ``local-admin`` is the
local stack's own principal, not a role AWS would have.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from policies.documents import load_policy, policy_names
from policies.model import Policy

NOT_A_ROLE = frozenset({"local-admin"})
LAMBDA_ROLE_FILE = "backend-lambda"  # every chat function's execution role (the template's)


@dataclass(frozen=True, slots=True)
class Role:
    """One role: its name (``<stack>-<file>``), its ARN and its permissions policy."""

    name: str
    arn: str
    policy: Policy


def role_arn(account: str, name: str) -> str:
    return f"arn:aws:iam::{account}:role/{name}"


class Roles:
    """Every role of one stack, looked up by ARN or by policy file name."""

    def __init__(self, *, region: str, account: str, stack: str) -> None:
        self.region = region
        self.account = account
        self.stack = stack
        self._by_arn: dict[str, Role] = {}
        self._by_file: dict[str, Role] = {}
        for file in policy_names("iam"):
            if file in NOT_A_ROLE:
                continue
            name = f"{stack}-{file}"
            policy = load_policy("iam", file, region=region, account=account, stack=stack)
            role = Role(name, role_arn(account, name), policy)
            self._by_arn[role.arn] = role
            self._by_file[file] = role

    def by_arn(self, arn: str) -> Role | None:
        return self._by_arn.get(arn)

    def by_file(self, file: str) -> Role:
        """The role made from ``policies/iam/<file>.json``; KeyError if there is none."""
        return self._by_file[file]

    def __iter__(self) -> Iterator[Role]:
        return iter(self._by_arn.values())
