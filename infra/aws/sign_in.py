"""The sign-in step on AWS: attach the stack's user IoT policy to a signed-in identity.

AWS IoT Core lets a signed-in Cognito identity connect only when an IoT policy is attached to
its identity id (docs/policies.md). A Cognito trigger cannot do it: user pool triggers run
before the identity pool has issued (or even looked up) an identity id. So the client, right
after it signs in, invokes the function ``<stack>-sign-in`` with its ID token, using the
signed-in role's credentials (the only principal allowed to invoke it). The function never
trusts an identity id from the caller: it asks Cognito for the identity that the token belongs
to (``GetId`` with the token as login) and attaches ``<stack>-user`` to that identity.
AttachPolicy is idempotent, so calling it on every sign-in is safe. The local stack does the
same on a signed-in identity's first ``GetCredentialsForIdentity`` (docs/cognito.md).

This module is packaged into the Lambda zip and imports only the standard library and boto3.
"""

from __future__ import annotations

import json
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


class SignInError(RuntimeError):
    """The sign-in step refused or failed; the message says why."""


def attach_user_policy(
    *,
    region: str,
    function_name: str,
    id_token: str,
    access_key_id: str,
    secret_key: str,
    session_token: str,
) -> str:
    """Client side, right after sign-in: invoke the sign-in step with the signed-in identity's
    credentials; returns the identity id the policy is now attached to."""
    import boto3

    client = boto3.session.Session(
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_key,
        aws_session_token=session_token,
        region_name=region,
    ).client("lambda")
    response = client.invoke(
        FunctionName=function_name, Payload=json.dumps({"idToken": id_token}).encode()
    )
    body = json.loads(response["Payload"].read() or b"{}")
    if response.get("FunctionError") or "error" in body or "identityId" not in body:
        raise SignInError(f"sign-in step failed: {body.get('message') or body}")
    return str(body["identityId"])
