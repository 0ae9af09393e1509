"""The gateway's authorizer backed by the project's policy files, as AWS IoT Core decides.

Which policies a principal must pass:
- the local admin: everything (LocalStack's ``test``/``test``);
- a Cognito guest (unauthenticated identity): the identity pool's guest role alone;
- a signed-in Cognito identity: the signed-in role AND the IoT policies attached to the
  identity (AttachPolicy with the identity id as target); with none attached it may do nothing;
- a device certificate: the IoT policies attached to the certificate;
- a role session (a Lambda's execution role, a rule's role): that role's IAM policy.

Every decision goes through :class:`policies.evaluator.CachedEvaluator`; call
:meth:`PolicyAuthorizer.invalidate` when a policy or an attachment changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from infra.local.iam.roles import Roles
from infra.local.identity import LOCAL_ACCOUNT_ID, LOCAL_REGION, Principal
from policies.arns import client_arn, topic_arn, topicfilter_arn
from policies.documents import load_policy
from policies.evaluator import CachedEvaluator
from policies.model import Policy

SUB = "cognito-identity.amazonaws.com:sub"
AMR = "cognito-identity.amazonaws.com:amr"

# Attached IoT policy names -> the project's policy files (policies/iot/<file>.json).
IOT_POLICY_FILES = {"iotchat-user": "user", "iotchat-device": "device"}


class PolicyAuthorizer:
    def __init__(
        self,
        *,
        region: str = LOCAL_REGION,
        account: str = LOCAL_ACCOUNT_ID,
        stack: str = "iotchat",
        roles: Roles | None = None,
        attached_policies: Callable[[str], Sequence[str]] = lambda target: (),
        connection_attributes: Callable[[Principal, str], dict[str, str]] | None = None,
        created_policy: Callable[[str], Policy | None] = lambda name: None,
    ) -> None:
        """``attached_policies(target)`` lists IoT policy names attached to an identity id or
        a certificate ARN; ``connection_attributes(principal, client_id)`` gives the thing
        variables (``iot:Connection.Thing.*``) of a device connection; ``created_policy(name)``
        an IoT policy made with ``CreatePolicy`` (the project's are loaded here). With
        ``roles`` (the stack's role table), its region, account and stack name are used."""
        self.roles = roles or Roles(region=region, account=account, stack=stack)
        region, account, stack = self.roles.region, self.roles.account, self.roles.stack
        self.region = region
        self.account = account
        self._attached = attached_policies
        self._connection_attributes = connection_attributes
        self._created_policy = created_policy
        self._iot = {
            policy_name: load_policy("iot", file, region=region, account=account, stack=stack)
            for policy_name, file in IOT_POLICY_FILES.items()
        }
        self._principals: dict[str, Principal] = {}
        self._source_ips: dict[str, str] = {}
        self.evaluator = CachedEvaluator(self._resolve)

    def invalidate(self, principal_key: str | None = None) -> None:
        self.evaluator.invalidate(principal_key)

    # ------------------------------------------------------------------ policy sets

    def _certificate_arn(self, certificate_id: str) -> str:
        return f"arn:aws:iot:{self.region}:{self.account}:cert/{certificate_id}"

    def _attached_iot(self, target: str) -> list[Policy]:
        found = (
            self._iot.get(name) or self._created_policy(name) for name in self._attached(target)
        )
        return [policy for policy in found if policy is not None]

    def _resolve(self, principal_key: str) -> Sequence[Sequence[Policy]]:
        principal = self._principals[principal_key]
        if principal.kind == "cognito":
            if principal.attribute(AMR) == "authenticated":
                user_role = self.roles.by_file("user-role").policy
                return [[user_role], self._attached_iot(principal.identifier)]
            return [[self.roles.by_file("guest-role").policy]]
        if principal.kind == "certificate":
            return [self._attached_iot(self._certificate_arn(principal.identifier))]
        if principal.kind == "role":  # a Lambda's or a rule's role session: its IAM policy
            role = self.roles.by_arn(principal.identifier)
            return [[role.policy]] if role is not None else []
        return []  # any other principal has no policy locally: implicit deny

    # ------------------------------------------------------------------ decisions

    def _key(self, principal: Principal) -> str:
        key = f"{principal.kind}:{principal.identifier}"
        if key not in self._principals:
            self._principals[key] = principal
        return key

    def _context(self, principal: Principal, client_id: str) -> dict[str, str]:
        context = {"iot:ClientId": client_id}
        sub = principal.attribute(SUB)
        if sub is not None:
            context[SUB] = sub
        ip = self._source_ips.get(client_id)
        if ip is not None:
            context["aws:SourceIp"] = ip
        if principal.kind == "certificate" and self._connection_attributes is not None:
            context.update(self._connection_attributes(principal, client_id))
        return context

    def _allowed(self, principal: Principal, client_id: str, action: str, resource: str) -> bool:
        if principal.is_admin:
            return True
        decision = self.evaluator.decide(
            self._key(principal), action, resource, self._context(principal, client_id)
        )
        return decision.allowed

    def can_connect(self, principal: Principal, client_id: str, source_ip: str) -> bool:
        self._source_ips[client_id] = source_ip
        arn = client_arn(self.region, self.account, client_id)
        return self._allowed(principal, client_id, "iot:Connect", arn)

    def can_publish(self, principal: Principal, client_id: str, topic: str, retain: bool) -> bool:
        arn = topic_arn(self.region, self.account, topic)
        if not self._allowed(principal, client_id, "iot:Publish", arn):
            return False
        return not retain or self._allowed(principal, client_id, "iot:RetainPublish", arn)

    def can_subscribe(self, principal: Principal, client_id: str, topic_filter: str) -> bool:
        arn = topicfilter_arn(self.region, self.account, topic_filter)
        return self._allowed(principal, client_id, "iot:Subscribe", arn)

    def can_receive(self, principal: Principal, client_id: str, topic: str) -> bool:
        arn = topic_arn(self.region, self.account, topic)
        return self._allowed(principal, client_id, "iot:Receive", arn)

    # The retained-message reads of the iot-data API, with AWS's resources for them:
    # https://docs.aws.amazon.com/iot/latest/developerguide/iot-policy-actions.html
    # (ListRetainedMessages: "The resource ARN specified for this action must be *").
    # An HTTP caller has no MQTT client id; iot-data Publish uses "n/a" the same way.

    def can_get_retained(self, principal: Principal, topic: str) -> bool:
        arn = topic_arn(self.region, self.account, topic)
        return self._allowed(principal, "n/a", "iot:GetRetainedMessage", arn)

    def can_list_retained(self, principal: Principal) -> bool:
        return self._allowed(principal, "n/a", "iot:ListRetainedMessages", "*")
