"""What IAM must allow for each IoT control-plane request: the action is ``iot:<Operation>``
and the resource the thing, certificate, policy or rule it names, ``*`` for the calls that
name none (Service Authorization Reference, "Actions, resources, and condition keys for AWS
IoT", https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsiot.html).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from infra.local.api.signed import Access, RequiredAccess

# Operation -> (resource type, input member naming it).
_RESOURCE = {
    "CreateThing": ("thing", "thingName"),
    "DescribeThing": ("thing", "thingName"),
    "DeleteThing": ("thing", "thingName"),
    "AttachThingPrincipal": ("thing", "thingName"),
    "DetachThingPrincipal": ("thing", "thingName"),
    "ListThingPrincipals": ("thing", "thingName"),
    "DescribeCertificate": ("cert", "certificateId"),
    "UpdateCertificate": ("cert", "certificateId"),
    "DeleteCertificate": ("cert", "certificateId"),
    "GetPolicy": ("policy", "policyName"),
    "CreatePolicy": ("policy", "policyName"),
    "CreatePolicyVersion": ("policy", "policyName"),
    "ListPolicyVersions": ("policy", "policyName"),
    "AttachPolicy": ("policy", "policyName"),
    "DetachPolicy": ("policy", "policyName"),
    "ListTargetsForPolicy": ("policy", "policyName"),
    "GetTopicRule": ("rule", "ruleName"),
    "CreateTopicRule": ("rule", "ruleName"),
    "ReplaceTopicRule": ("rule", "ruleName"),
    "EnableTopicRule": ("rule", "ruleName"),
    "DisableTopicRule": ("rule", "ruleName"),
    "DeleteTopicRule": ("rule", "ruleName"),
}


def required_access(region: str, account: str) -> RequiredAccess:
    """The control plane's ``required_access`` for one account and region."""

    def access(operation: str, params: Mapping[str, Any]) -> Iterable[Access]:
        resource = "*"
        if operation in _RESOURCE:
            kind, member = _RESOURCE[operation]
            resource = f"arn:aws:iot:{region}:{account}:{kind}/{params.get(member, '')}"
        return [(f"iot:{operation}", resource)]

    return access
