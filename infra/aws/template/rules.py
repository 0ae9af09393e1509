"""The topic rules, one ``AWS::IoT::TopicRule`` per ``iot_rules/rules`` file, and the Lambda
permissions that let each rule invoke the functions it names.
"""

from __future__ import annotations

import json
from typing import Any

from iot_rules.loader import RuleDefinition, action_references, load_rules
from policies.render import render_cloudformation

from .base import Template, TemplateError, logical_id, pascal_keys, rule_name


def add_rules(t: Template) -> None:
    """One topic rule per rule file, and the Lambda permissions its actions need."""
    # Validate as `iotchat up` does (botocore's model, the local engine's action types).
    load_rules(t.rules_dir, {"region": "us-east-1", "account": "0" * 12, "stack": t.stack})
    invoked: dict[str, list[tuple[str, str | None]]] = {}
    for path in sorted(t.rules_dir.glob("*.json")):
        raw = json.loads(path.read_text(encoding="utf-8"))
        stem = path.stem
        depends, condition = _rule_references(t, raw, stem, invoked)
        raw = _roles_by_getatt(t, raw)
        rule_id = logical_id("rule", stem)
        resource: dict[str, Any] = {
            "Type": "AWS::IoT::TopicRule",
            "DependsOn": sorted(depends),
            "Properties": {
                "RuleName": rule_name(t.stack, stem),
                "TopicRulePayload": pascal_keys(render_cloudformation(raw)),
            },
        }
        if condition:
            resource["Condition"] = condition
        t.add(rule_id, resource)
    for function, callers in sorted(invoked.items()):
        for rule_id, condition in callers:
            permission: dict[str, Any] = {
                "Type": "AWS::Lambda::Permission",
                "Properties": {
                    "Action": "lambda:InvokeFunction",
                    "FunctionName": {"Ref": t.functions[function]},
                    "Principal": "iot.amazonaws.com",
                    "SourceAccount": {"Ref": "AWS::AccountId"},
                    "SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]},
                },
            }
            if condition:
                permission["Condition"] = condition
            t.add(logical_id("allow", rule_id, "invoke", t.functions[function]), permission)


def _rule_references(
    t: Template, raw: dict[str, Any], stem: str, invoked: dict[str, list[tuple[str, str | None]]]
) -> tuple[set[str], str | None]:
    """What a rule's actions name (DependsOn), and its condition: a rule that feeds the
    stream exists only with the stream."""
    references = list(RuleDefinition(stem, raw).references())
    condition = "StreamEnabled" if any(r.kind == "stream" for r in references) else None
    depends: set[str] = set()
    for ref in references:
        if ref.kind == "topic":
            continue
        declared, missing = t.declared[ref.kind]
        if ref.name not in declared:
            raise TemplateError(f"rule {stem}: {ref.kind} {ref.name} {missing}")
        if ref.kind != "role":  # a role is referenced by GetAtt, which orders it already
            depends.add(declared[ref.name])
        if ref.kind == "function":
            invoked.setdefault(ref.name, []).append((logical_id("rule", stem), condition))
    return depends, condition


def _roles_by_getatt(t: Template, raw: dict[str, Any]) -> dict[str, Any]:
    """The rule with each action's ``roleArn`` as ``Fn::GetAtt`` of the stack's role: the roles
    have names CloudFormation generates (iam.py), so no ARN can be written down."""

    def action(one: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for kind, params in one.items():
            if isinstance(params, dict) and isinstance(params.get("roleArn"), str):
                (ref,) = [r for r in action_references({kind: params}) if r.kind == "role"]
                params = {**params, "roleArn": {"Fn::GetAtt": [t.roles[ref.name], "Arn"]}}
            out[kind] = params
        return out

    copy = dict(raw)
    copy["actions"] = [action(a) for a in raw.get("actions", [])]
    if raw.get("errorAction"):
        copy["errorAction"] = action(raw["errorAction"])
    return copy
