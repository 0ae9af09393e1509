"""The CloudFormation template (being split into one module per resource group)."""

from .stack import (
    NOT_DEPLOYED,
    SIGN_IN_HANDLER,
    TemplateError,
    build_template,
    check_stack_name,
    rule_name,
    template_json,
    web_csp,
)

__all__ = [
    "NOT_DEPLOYED",
    "SIGN_IN_HANDLER",
    "TemplateError",
    "build_template",
    "check_stack_name",
    "rule_name",
    "template_json",
    "web_csp",
]
