"""The CloudFormation template, built from the repository's own rules, policies and manifest.

Nothing here restates a rule, a policy or a function: the topic rules come from
``iot_rules/rules``, the IoT and IAM policy documents from ``policies/``, the functions, tables,
streams and event source mappings from ``lambdas/manifest.json``. Their ``{region}``,
``{account}`` and ``{stack}`` placeholders become ``Fn::Sub`` (``policies.render``), so the
template is the local stack's definitions with AWS's pseudo parameters filled in. What only AWS
needs is added here: role trust policies, Lambda resource policies for the rules, log groups,
the Cognito pools, the sign-in step (``infra/aws/sign_in.py``), the dead-letter queue and the
web app's private bucket behind CloudFront.

Every physical name derives from the stack name, so several stacks live in one account and
region. Topic rule names cannot hold ``-`` and ``Fn::Sub`` cannot replace characters, so the
template is built for one stack name: :func:`build_template` takes it.

One module per resource group: ``iam`` (IoT policies, roles and their trust), ``functions``
(the manifest's tables, streams, functions, mappings; the dead-letter queue), ``rules`` (topic
rules and their Lambda permissions), ``cognito`` (pools and the sign-in step), ``cloudfront``
(the web app's bucket and distribution); ``base`` holds the naming helpers they share,
``suppressions`` the reasoned checkov suppressions, ``stack`` the parameters and the order.
"""

from .base import TemplateError, check_stack_name, rule_name
from .cloudfront import web_csp
from .cognito import SIGN_IN_HANDLER
from .iam import NOT_DEPLOYED
from .stack import build_template, reserved_concurrency, template_json

__all__ = [
    "NOT_DEPLOYED",
    "SIGN_IN_HANDLER",
    "TemplateError",
    "build_template",
    "check_stack_name",
    "reserved_concurrency",
    "rule_name",
    "template_json",
    "web_csp",
]
