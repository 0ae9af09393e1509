"""What moto's CloudFormation can run of the real template, and a way to make it fail.

moto creates S3 buckets, IAM roles, Lambda functions, tables, queues, log groups and IoT
policies from a template, but not Cognito pools, CloudFront or topic rules. ``moto_subset``
keeps the resources moto can create and replaces the outputs that name the others with the
literal values given (a function's environment variable that names one gets a literal too), so
a test can run the whole deploy path (upload, change set, execute, outputs, web upload, stack
file) against moto. IoT policies are left out too: moto's ``Ref``
to one is the Python object's repr, and deleting the stack then fails inside moto.
"""

from __future__ import annotations

import copy
import json
from typing import Any


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else value.split(".")[0])
            elif key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                found.update(part.split("}")[0].split(".")[0] for part in text.split("${")[1:])
            found |= _refs(value)
    elif isinstance(node, list):
        for item in node:
            found |= _refs(item)
    return found


def moto_subset(template: dict[str, Any], literal_outputs: dict[str, str]) -> dict[str, Any]:
    from moto.cloudformation.parsing import resource_class_from_type

    result = copy.deepcopy(template)
    resources = result["Resources"]
    keep = {
        name
        for name, res in resources.items()
        if resource_class_from_type(res["Type"]) and res["Type"] != "AWS::IoT::Policy"
    }
    # A function's environment may name a resource moto cannot create (the commands Lambda's
    # identity pool): the function stays, with a literal in that variable.
    for name in keep:
        if resources[name]["Type"] == "AWS::Lambda::Function":
            variables = resources[name]["Properties"].get("Environment", {}).get("Variables", {})
            for key, value in variables.items():
                if (_refs(value) & set(resources)) - keep:
                    variables[key] = f"{key.lower()}-not-in-moto"
    changed = True
    while changed:
        changed = False
        for name in sorted(keep):
            if (_refs(resources[name].get("Properties", {})) & set(resources)) - keep:
                keep.discard(name)
                changed = True
    result["Resources"] = {name: resources[name] for name in resources if name in keep}
    for res in result["Resources"].values():
        if "DependsOn" in res:
            res["DependsOn"] = [d for d in res["DependsOn"] if d in keep]
    for name, output in result["Outputs"].items():
        if (_refs(output["Value"]) & set(resources)) - keep:
            output["Value"] = literal_outputs[name]
    json.dumps(result)
    return result


def outputs_after_change_sets(monkeypatch: Any) -> None:
    """moto applies a change set's resources but never recomputes the stack's outputs (AWS
    does); make it, so the deploy path can read them as it does on AWS."""
    from moto.cloudformation.models import ChangeSet

    original = ChangeSet.apply

    def apply(self: Any) -> None:
        original(self)
        self.stack.template_dict = self.template_dict
        self.stack.output_map = self.stack._create_output_map()

    monkeypatch.setattr(ChangeSet, "apply", apply)


def neutral_bucket_policies(monkeypatch: Any) -> None:
    """moto turns a Deny statement whose condition does not match (the TLS-only statement:
    ``aws:SecureTransport`` is ``false``) into a denial of every request; AWS does not. Tests
    check the policy documents instead of moto's evaluation of them."""
    from moto.iam.access_control import PermissionResult
    from moto.s3.models import FakeBucket

    monkeypatch.setattr(
        FakeBucket, "get_permission", lambda self, *a, **k: PermissionResult.NEUTRAL
    )
