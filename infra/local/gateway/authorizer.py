"""May this principal do this: the device gateway's authorization seam.

The gateway never decides on its own whether an action is allowed. Once a connection is
authenticated to a :class:`~infra.local.identity.Principal`, it asks an :class:`Authorizer`
about every connect, publish, subscribe and delivery; the policy-backed one is
:class:`~infra.local.gateway.policy_authorizer.PolicyAuthorizer`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from infra.local.identity import Principal


class Authorizer(Protocol):
    """Allow or deny each action; called on every connect, publish, subscribe and delivery,
    and on the iot-data API's retained-message reads."""

    def can_connect(self, principal: Principal, client_id: str, source_ip: str) -> bool: ...

    def can_publish(
        self, principal: Principal, client_id: str, topic: str, retain: bool
    ) -> bool: ...

    def can_subscribe(self, principal: Principal, client_id: str, topic_filter: str) -> bool: ...

    def can_receive(self, principal: Principal, client_id: str, topic: str) -> bool: ...

    def can_get_retained(self, principal: Principal, topic: str) -> bool:
        """iot-data GetRetainedMessage: ``iot:GetRetainedMessage`` on the topic's ARN."""
        ...

    def can_list_retained(self, principal: Principal) -> bool:
        """iot-data ListRetainedMessages: ``iot:ListRetainedMessages`` on ``*``."""
        ...


@dataclass
class AdminOnlyAuthorizer:
    """Until the policy engine lands: the admin may do anything, everyone else nothing.

    ``trusted`` lists further principal identifiers treated like the admin (tests use it for
    a device certificate, the way a policy attachment would later).
    """

    trusted: set[str] = field(default_factory=set)

    def _allowed(self, principal: Principal) -> bool:
        return principal.is_admin or principal.identifier in self.trusted

    def can_connect(self, principal: Principal, client_id: str, source_ip: str) -> bool:
        return self._allowed(principal)

    def can_publish(self, principal: Principal, client_id: str, topic: str, retain: bool) -> bool:
        return self._allowed(principal)

    def can_subscribe(self, principal: Principal, client_id: str, topic_filter: str) -> bool:
        return self._allowed(principal)

    def can_receive(self, principal: Principal, client_id: str, topic: str) -> bool:
        return self._allowed(principal)

    def can_get_retained(self, principal: Principal, topic: str) -> bool:
        return self._allowed(principal)

    def can_list_retained(self, principal: Principal) -> bool:
        return self._allowed(principal)
