"""The sign-in step on AWS: attach the stack's user IoT policy to a signed-in identity.

AWS IoT Core lets a signed-in Cognito identity connect only when an IoT policy is attached to
its identity id (docs/policies.md). A Cognito trigger cannot do it: user pool triggers run
before the identity pool has issued (or even looked up) an identity id. So the client, right
after it signs in, invokes the function ``<stack>-sign-in`` with its ID token, using the
signed-in role's credentials (the only principal allowed to invoke it). The function never
trusts an identity id from the caller: it asks Cognito for the identity that the token belongs
to (``GetId`` with the token as login) and attaches ``<stack>-user`` to that identity.
AttachPolicy is idempotent, so calling it on every sign-in is safe. The local stack does the
same on a signed-in identity's first ``GetCredentialsForIdentity`` (docs/cognito.md). The client
side of the step is in ``client/identity.py``.

This module is packaged into the Lambda zip and imports only the standard library and boto3.
"""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger("iotchat.sign_in")
log.setLevel(logging.INFO)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``{"idToken": "<jwt>"}`` -> ``{"identityId": ..., "policyName": ...}`` or an error."""
    import boto3

    token = event.get("idToken") if isinstance(event, dict) else None
    if not isinstance(token, str) or not token:
        return {"error": "BAD_REQUEST", "message": "idToken is required"}
    identity = boto3.client("cognito-identity")
    try:
        identity_id = identity.get_id(
            IdentityPoolId=os.environ["IDENTITY_POOL_ID"],
            Logins={os.environ["USER_POOL_PROVIDER"]: token},
        )["IdentityId"]
    except identity.exceptions.NotAuthorizedException as exc:
        return {"error": "NOT_AUTHORIZED", "message": str(exc)}
    policy = os.environ["USER_POLICY_NAME"]
    boto3.client("iot").attach_policy(policyName=policy, target=identity_id)
    log.info("attached %s to %s", policy, identity_id)
    return {"identityId": identity_id, "policyName": policy}
