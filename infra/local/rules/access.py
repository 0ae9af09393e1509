"""What a rule action may do: it acts as its ``roleArn``, and IAM decides, as on AWS.

AWS IoT assumes the role an action names and performs the action with that role's
permissions (https://docs.aws.amazon.com/iot/latest/developerguide/iot-rule-actions.html and
https://docs.aws.amazon.com/iot/latest/developerguide/iot-create-role.html); each action's
page names the permission it needs:

- republish: ``iot:Publish`` on ``arn:aws:iot:<region>:<account>:topic/<target topic>``;
- dynamoDBv2 and dynamoDB: ``dynamodb:PutItem`` on the table ARN (``DeleteItem`` for the
  dynamoDB action's ``DELETE``);
- kinesis: ``kinesis:PutRecord`` on the stream ARN (decided by the API endpoint, which the
  action calls with the role session's temporary credentials);
- lambda: no role; the function's resource-based policy must allow ``iot.amazonaws.com`` to
  call ``lambda:InvokeFunction`` from the rule (``aws:SourceArn`` = the rule's ARN). The
  template grants it with one ``AWS::Lambda::Permission`` per rule and function; locally
  ``policies/iam/rule-lambda.json`` states the same grant (docs/policies.md).

A role ARN the account has no role for fails the action (AWS cannot assume it). The session
name of a rule's role session is the rule's name (AWS does not document its own).

Every decision comes from the stack's one :class:`~infra.local.iam.IamAuthorizer` and is
remembered per (role, session, action, resource) until the authorizer's policies change, so
the per-message cost of a check is one dictionary lookup (``iotchat bench`` measures it).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from infra.local.dynamodb.access import table_arn
from infra.local.iam import AccessDenied, IamAuthorizer, Roles, RoleSessions, caller_arn
from infra.local.iam.sessions import DEFAULT_RENEWAL, Renewal, role_principal
from infra.local.identity import Credential
from policies.arns import topic_arn
from policies.evaluator import Decision

# The policy file that states the Lambda functions' grant to the rules engine (see above).
RULE_LAMBDA_FILE = "rule-lambda"
IOT_SERVICE = "iot.amazonaws.com"
# A bound on remembered decisions (topics vary per room); all are forgotten when it is reached.
MAX_DECISIONS = 16384

_Key = tuple[str, str, str, str]


class UnknownRole(Exception):
    """The action's role ARN names no role of this account: AWS fails to assume it."""

    def __init__(self, role_arn: str) -> None:
        super().__init__(f"Failed to assume role {role_arn}: the role does not exist")
        self.role_arn = role_arn


class FunctionAccessDenied(Exception):
    """The function's resource-based policy does not let this rule invoke it."""

    def __init__(self, function_arn: str) -> None:
        super().__init__(
            f"User: {IOT_SERVICE} is not authorized to perform: lambda:InvokeFunction on "
            f"resource: {function_arn} because no resource-based policy allows the "
            "lambda:InvokeFunction action"
        )
        self.function_arn = function_arn


def refusal_message(exc: Exception) -> str:
    """What the error action's ``errorMessage`` says for a refusal: the service's error code
    and AWS's message, as for any other failed call (``AccessDeniedException: User: ...``)."""
    if isinstance(exc, AccessDenied | FunctionAccessDenied):
        return f"AccessDeniedException: {exc}"
    return str(exc)


class RuleAccess:
    """The rules engine's IAM: checks for each action's role session, and their credentials."""

    def __init__(
        self,
        roles: Roles,
        iam: IamAuthorizer,
        sessions: RoleSessions | None = None,
        *,
        renewal: Renewal = DEFAULT_RENEWAL,
    ) -> None:
        self.roles = roles
        self.iam = iam
        self.sessions = sessions
        self.region = roles.region
        self.account = roles.account
        self._renewal = renewal
        self._decisions: dict[_Key, Decision] = {}
        self._version = iam.evaluator.version
        self._credentials: dict[tuple[str, str], Credential] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ ARNs

    def topic_arn(self, topic: str) -> str:
        return topic_arn(self.region, self.account, topic)

    def table_arn(self, table: str) -> str:
        return table_arn(self.region, self.account, table)

    def rule_arn(self, rule_name: str) -> str:
        return f"arn:aws:iot:{self.region}:{self.account}:rule/{rule_name}"

    # ------------------------------------------------------------------ decisions

    def decide(
        self,
        role_arn: str,
        session: str,
        action: str,
        resource: str,
        context: Mapping[str, str] | None = None,
    ) -> Decision:
        """The role session's decision, remembered until the policies change; raises
        :class:`UnknownRole`. ``context`` must be a function of the other arguments (it is
        not part of the remembered key)."""
        if self._version != self.iam.evaluator.version:
            self._decisions.clear()
            self._version = self.iam.evaluator.version
        key = (role_arn, session, action, resource)
        decision = self._decisions.get(key)
        if decision is not None:
            return decision
        role = self.roles.by_arn(role_arn)
        if role is None:
            raise UnknownRole(role_arn)
        version = self._version
        decision = self.iam.decide(role_principal(role, session), action, resource, context)
        if version == self.iam.evaluator.version:
            if len(self._decisions) >= MAX_DECISIONS:
                self._decisions.clear()
            self._decisions[key] = decision
        return decision

    def check(
        self,
        role_arn: str,
        session: str,
        action: str,
        resource: str,
        context: Mapping[str, str] | None = None,
    ) -> None:
        """Return if the role session may; raise :class:`AccessDenied` (AWS's message) or
        :class:`UnknownRole` if not."""
        decision = self.decide(role_arn, session, action, resource, context)
        if not decision.allowed:
            role = self.roles.by_arn(role_arn)
            assert role is not None
            raise AccessDenied(
                caller_arn(role_principal(role, session), self.roles),
                action,
                resource,
                explicit=decision is Decision.DENY_EXPLICIT,
            )

    def check_invoke(self, function_arn: str, rule_name: str | None) -> None:
        """May the rules engine invoke the function for this rule? The grant the template makes
        with ``AWS::Lambda::Permission`` (principal ``iot.amazonaws.com``, ``SourceArn`` = the
        rule), read from ``policies/iam/rule-lambda.json``; raises
        :class:`FunctionAccessDenied`."""
        try:
            role = self.roles.by_file(RULE_LAMBDA_FILE)
        except KeyError:
            raise FunctionAccessDenied(function_arn) from None
        session = rule_name or "aws_lambda"
        context = {"aws:SourceAccount": self.account}
        if rule_name is not None:
            context["aws:SourceArn"] = self.rule_arn(rule_name)
        decision = self.decide(role.arn, session, "lambda:InvokeFunction", function_arn, context)
        if not decision.allowed:
            raise FunctionAccessDenied(function_arn)

    # ------------------------------------------------------------------ credentials

    def credentials(self, role_arn: str, session: str) -> Credential:
        """Temporary credentials of the role session, for calls through the API endpoint:
        issued on first use, renewed ``renew_margin`` seconds (by default the
        :data:`~infra.local.iam.sessions.DEFAULT_RENEW_MARGIN` of every role session's holder)
        before they expire; raises :class:`UnknownRole`. Safe from several threads."""
        if self.sessions is None:
            raise RuntimeError("no role sessions are available to the rules engine")
        key = (role_arn, session)
        with self._lock:
            credential = self._credentials.get(key)
            if credential is not None and not self._renewal.due(credential):
                return credential
            role = self.roles.by_arn(role_arn)
            if role is None:
                raise UnknownRole(role_arn)
            credential = self.sessions.issue(role, session)
            self._credentials[key] = credential
            return credential
