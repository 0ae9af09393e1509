"""IAM for the local stack: the project's roles, their temporary credentials, and one authorizer.

Every door of the stack (the API endpoint's services, rule actions, Lambda code) asks
:class:`IamAuthorizer` whether a principal may perform an action on a resource ARN, as AWS
IAM decides it from the role policies in ``policies/iam/``. The MQTT door keeps its own
authorizer (``infra.local.gateway.policy_authorizer``) because AWS IoT also requires the IoT
policies attached to an identity or certificate there; both evaluate with the same
``policies.evaluator``.

- ``roles.py``: the roles the template creates, one per ``policies/iam/*.json``.
- ``sessions.py``: temporary credentials for a role session (what ``sts:AssumeRole`` hands out).
- ``authorizer.py``: principal -> policies -> decision, cached; AWS's AccessDenied message.
"""

from .authorizer import AccessDenied, IamAuthorizer, caller_arn
from .roles import Role, Roles
from .sessions import RoleSessions

__all__ = ["AccessDenied", "IamAuthorizer", "Role", "RoleSessions", "Roles", "caller_arn"]
