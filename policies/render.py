"""Fill a policy file's ``{region}``, ``{account}`` and ``{stack}`` placeholders.

Policy files are written once and used twice: locally with concrete values
(:func:`render`), and in CloudFormation as ``Fn::Sub`` with ``${AWS::Region}``,
``${AWS::AccountId}`` and ``${AWS::StackName}`` (:func:`render_cloudformation`), where the
policy variables already in the text (``${iot:ClientId}``) are escaped as ``${!...}`` so
CloudFormation leaves them for IAM and IoT to evaluate. Braces without a leading ``$`` are
the project's placeholders; ``${...}`` is always a policy variable.
"""

from __future__ import annotations

import re
from typing import Any

PLACEHOLDERS = {"region": "AWS::Region", "account": "AWS::AccountId", "stack": "AWS::StackName"}

# What the placeholders mean on the local stack unless told otherwise.
LOCAL_NAMES = {"region": "us-east-1", "account": "000000000000", "stack": "iotchat"}
_PLACEHOLDER = re.compile(r"(?<!\$)\{([A-Za-z]+)\}")


class RenderError(ValueError):
    """A placeholder the renderer does not know."""


def _walk(node: Any, leaf: Any) -> Any:
    if isinstance(node, dict):
        return {key: _walk(value, leaf) for key, value in node.items()}
    if isinstance(node, list):
        return [_walk(value, leaf) for value in node]
    if isinstance(node, str):
        return leaf(node)
    return node


def _check(text: str) -> None:
    for name in _PLACEHOLDER.findall(text):
        if name not in PLACEHOLDERS:
            raise RenderError(f"unknown placeholder {{{name}}} in {text!r}")


def placeholders(document: Any) -> set[str]:
    """Which placeholders a document uses (refusing unknown ones)."""
    found: set[str] = set()

    def leaf(text: str) -> str:
        _check(text)
        found.update(_PLACEHOLDER.findall(text))
        return text

    _walk(document, leaf)
    return found


def render(document: Any, *, region: str, account: str, stack: str) -> Any:
    """A copy of ``document`` with the placeholders filled in, for the local stack."""
    values = {"region": region, "account": account, "stack": stack}

    def leaf(text: str) -> str:
        _check(text)
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)

    return _walk(document, leaf)


def render_cloudformation(document: Any) -> Any:
    """A copy for a CloudFormation template: strings with placeholders become ``Fn::Sub``."""

    def leaf(text: str) -> Any:
        _check(text)
        if not _PLACEHOLDER.search(text):
            return text
        escaped = text.replace("${", "${!")
        return {
            "Fn::Sub": _PLACEHOLDER.sub(lambda m: "${" + PLACEHOLDERS[m.group(1)] + "}", escaped)
        }

    return _walk(document, leaf)
