"""Resolve what CloudFormation would: ``Fn::Sub`` of pseudo parameters, ``${!x}`` escapes.

Enough of CloudFormation's substitution to compare the template with what ``iotchat up``
loads: strings are substituted with the stack's region, account and name, other intrinsic
functions are left as they are.
"""

from __future__ import annotations

import re
from typing import Any

_VARIABLE = re.compile(r"\$\{(!?)([^}]*)\}")


def values(stack: str, region: str = "eu-west-1", account: str = "123456789012") -> dict:
    return {
        "AWS::StackName": stack,
        "AWS::Region": region,
        "AWS::AccountId": account,
        "AWS::Partition": "aws",
    }


def resolve(node: Any, names: dict[str, str]) -> Any:
    if isinstance(node, list):
        return [resolve(item, names) for item in node]
    if isinstance(node, dict):
        if set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):
            return _sub(node["Fn::Sub"], names)
        if set(node) == {"Ref"} and node["Ref"] in names:
            return names[node["Ref"]]
        return {key: resolve(value, names) for key, value in node.items()}
    return node


def _sub(text: str, names: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(1):
            return "${" + match.group(2) + "}"
        return names.get(match.group(2), match.group(0))

    return _VARIABLE.sub(replace, text)


def camel_keys(node: Any) -> Any:
    """CloudFormation's property casing back to the API's (``Sql`` -> ``sql``)."""
    if isinstance(node, list):
        return [camel_keys(item) for item in node]
    if isinstance(node, dict):
        return {key[:1].lower() + key[1:]: camel_keys(value) for key, value in node.items()}
    return node
