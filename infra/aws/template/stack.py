"""The whole template: its parameters, and the order in which the parts are added (policies and
roles first, since the functions, rules and Cognito refer to them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from iot_rules.loader import RULES_DIR
from lambdas.manifest import MANIFEST_PATH

from .base import Template
from .cloudfront import add_web
from .cognito import add_cognito, add_sign_in
from .functions import add_failure_queue, add_manifest
from .iam import add_iot_policies, add_roles
from .rules import add_rules

LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 3653)


PARAMETERS: dict[str, Any] = {
    "CodeBucket": {
        "Type": "String",
        "Description": "Bucket holding the Lambda code zip (deploy uploads it)",
        "MinLength": 3,
    },
    "CodeKey": {
        "Type": "String",
        "Description": "Key of the Lambda code zip (content-addressed)",
        "MinLength": 1,
    },
    "IotDataEndpoint": {
        "Type": "String",
        "Description": "The account's AWS IoT data endpoint (iot:Data-ATS), for the Lambdas",
        "AllowedPattern": r"^[a-z0-9]+-ats\.iot\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$",
    },
    "EnableStream": {
        "Type": "String",
        "Description": "Create the Kinesis stream path (a shard bills by the hour)",
        "AllowedValues": ["true", "false"],
        "Default": "false",
    },
    "LogRetentionDays": {
        "Type": "Number",
        "Description": "Days the Lambdas' logs are kept",
        "AllowedValues": [str(days) for days in LOG_RETENTION_DAYS],
        "Default": "30",
    },
}


def _build(t: Template) -> dict[str, Any]:
    add_iot_policies(t)
    add_roles(t)
    add_manifest(t)
    add_failure_queue(t)
    add_rules(t)
    add_cognito(t)
    add_sign_in(t)
    add_web(t)
    t.output("IotDataEndpoint", {"Ref": "IotDataEndpoint"}, "AWS IoT data endpoint (ATS)")
    t.output("StreamEnabled", {"Ref": "EnableStream"}, "Whether the Kinesis path exists")
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"iotchat stack {t.stack}: AWS IoT Core chat (rules, policies, "
        "Lambdas and tables from the iotchat repository)",
        "Metadata": {"iotchat": {"stackName": t.stack}},
        "Parameters": PARAMETERS,
        "Conditions": {"StreamEnabled": {"Fn::Equals": [{"Ref": "EnableStream"}, "true"]}},
        "Resources": t.resources,
        "Outputs": t.outputs,
    }


def build_template(
    stack: str = "iotchat",
    *,
    manifest_path: Path = MANIFEST_PATH,
    rules_dir: Path = RULES_DIR,
    reserve_concurrency: bool = False,
) -> dict[str, Any]:
    """The whole stack for ``stack``, as a JSON-serialisable template; functions reserve
    concurrency (the manifest's ``reservedConcurrency``) only with ``reserve_concurrency``."""
    return _build(
        Template(stack, manifest_path, rules_dir, reserve_concurrency=reserve_concurrency)
    )


def reserved_concurrency(template: dict[str, Any]) -> dict[str, int]:
    """Function name -> the units its resource reserves, for the stack the template is for."""
    stack = template["Metadata"]["iotchat"]["stackName"]
    reserved = {}
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Lambda::Function" and "ReservedConcurrentExecutions" in props:
            name = props["FunctionName"]["Fn::Sub"].replace("${AWS::StackName}", stack)
            reserved[name] = int(props["ReservedConcurrentExecutions"])
    return reserved


def template_json(template: dict[str, Any]) -> str:
    return json.dumps(template, indent=1, sort_keys=False) + "\n"
