"""ARNs, built and read one way for every folder that names an AWS resource.

The builders give the resources AWS IoT authorises (for the evaluator and its callers). The
readers are the project's only ARN parsers: the Lambda runtime resolves ``FunctionName`` with
:func:`lambda_function_name`, and the rule checker and the CloudFormation template read the
function and role a rule action names with :func:`arn_resource_name`. They live here, not in
``lambdas/``, because ``iot_rules/`` needs them too and already imports ``policies/`` (for the
placeholder renderer), while ``iot_rules/`` and ``lambdas/`` stay independent of each other.
"""

from __future__ import annotations

import re
from typing import NamedTuple


def _iot_arn(region: str, account: str, kind: str, name: str) -> str:
    return f"arn:aws:iot:{region}:{account}:{kind}/{name}"


def client_arn(region: str, account: str, client_id: str) -> str:
    """Resource of ``iot:Connect``."""
    return _iot_arn(region, account, "client", client_id)


def topic_arn(region: str, account: str, topic: str) -> str:
    """Resource of ``iot:Publish``, ``iot:Receive`` and ``iot:RetainPublish``."""
    return _iot_arn(region, account, "topic", topic)


def topicfilter_arn(region: str, account: str, topic_filter: str) -> str:
    """Resource of ``iot:Subscribe``: the filter as written, ``+`` and ``#`` included."""
    return _iot_arn(region, account, "topicfilter", topic_filter)


def lambda_function_arn(name: str, region: str, account: str) -> str:
    return f"arn:aws:lambda:{region}:{account}:function:{name}"


class Arn(NamedTuple):
    """``arn:<partition>:<service>:<region>:<account>:<resource>``, split at its colons."""

    partition: str
    service: str
    region: str
    account: str
    resource: str


def parse_arn(text: str) -> Arn | None:
    """The six parts of an ARN, or None for anything else.

    The fields are not validated, so an ARN that still holds the definition files'
    ``{region}``/``{account}``/``{stack}`` placeholders splits the same way.
    """
    parts = text.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return None
    return Arn(*parts[1:])


def arn_resource_name(text: str, service: str, resource_type: str) -> str | None:
    """The name in a ``<service>`` ARN of ``<resource_type>``, or None for any other text.

    ``...:function:<name>[:<qualifier>]`` and ``...:role/[<path>/]<name>`` both give ``<name>``.
    """
    arn = parse_arn(text)
    if arn is None or arn.service != service:
        return None
    kind, separator, rest = arn.resource.partition(":")
    if not separator:
        kind, separator, rest = arn.resource.partition("/")
    if kind != resource_type or not rest:
        return None
    return rest.split(":", 1)[0].rsplit("/", 1)[-1] or None


# name | account:function:name | arn:aws:lambda:region:account:function:name, each with an
# optional :qualifier ($LATEST, a version or an alias).
_LAMBDA_FORMS = re.compile(
    r"^(?:arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]+:)?(?:\d{12}:function:)?"
    r"(?P<name>[A-Za-z0-9_-]{1,64})(?::(?P<qualifier>\$LATEST|[A-Za-z0-9_-]{1,128}))?$"
)


def lambda_function_name(name_or_arn: str) -> str | None:
    """The bare function name in any form Lambda's ``FunctionName`` accepts, or None if the
    string is no such form (strict: this guards the local Lambda API)."""
    if name_or_arn.startswith("arn:") and ":function:" not in name_or_arn:
        return None
    match = _LAMBDA_FORMS.match(name_or_arn)
    return match.group("name") if match else None
