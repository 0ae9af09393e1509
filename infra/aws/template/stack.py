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
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from client.webapp import content_security_policy
from iot_rules.loader import RULES_DIR, RuleDefinition, load_rules
from lambdas.manifest import MANIFEST_PATH, Manifest
from policies.documents import load_document, policy_names
from policies.render import render_cloudformation

# Stack names end up in S3 bucket names (lowercase, 63 characters with the account and region
# appended) and in role and function names (64 characters), hence the tighter rule than
# CloudFormation's own.
STACK_NAME = re.compile(r"^[a-z][a-z0-9-]{0,22}[a-z0-9]$|^[a-z]$")
LAMBDA_RUNTIME = "python3.12"
# The messages table's TTL attribute: the store rule and the commands Lambda write it.
TTL_ATTRIBUTES = {"{stack}-messages": "expiresAt"}
SIGN_IN_HANDLER = "infra.aws.sign_in.handler"
# IAM policy files that are not deployed as roles, and why.
NOT_DEPLOYED = {
    "local-admin": "the local stack's admin principal; AWS has its own",
    "rule-lambda": "on AWS a rule's Lambda action is authorised by the function's resource "
    "policy (AWS::Lambda::Permission), not by a role",
}
# Managed CloudFront policies (ids are fixed by AWS).
CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 3653)


class TemplateError(ValueError):
    """The folders describe something the template cannot express; names what and why."""


def check_stack_name(name: str) -> str:
    if not STACK_NAME.match(name):
        raise TemplateError(
            f"stack name {name!r}: use 1-24 characters of a-z, 0-9 and '-', starting with a "
            "letter and not ending with '-' (it becomes part of bucket, role and function names)"
        )
    return name


def rule_name(stack: str, stem: str) -> str:
    """A topic rule's AWS name: ``<stack>_<file stem>`` (rule names allow no ``-``)."""
    return f"{stack.replace('-', '_')}_{stem}"


def logical_id(*parts: str) -> str:
    """``("rule", "chat_room_message")`` -> ``RuleChatRoomMessage``."""
    words = [w for part in parts for w in re.split(r"[^A-Za-z0-9]+", part) if w]
    return "".join(w[:1].upper() + w[1:] for w in words)


def short_name(templated: str, where: str) -> str:
    """``{stack}-commands`` -> ``commands``; a name without the prefix would collide."""
    if not templated.startswith("{stack}-"):
        raise TemplateError(
            f"{where}: {templated!r} must start with '{{stack}}-' so that two stacks do not "
            "share it"
        )
    return templated.removeprefix("{stack}-")


def sub(text: str) -> dict[str, str]:
    """A name with the project's placeholders, as CloudFormation ``Fn::Sub``."""
    rendered = render_cloudformation(text)
    return rendered if isinstance(rendered, dict) else {"Fn::Sub": text}


def pascal_keys(node: Any) -> Any:
    """A ``TopicRulePayload`` in API casing -> CloudFormation's property casing."""
    if isinstance(node, list):
        return [pascal_keys(item) for item in node]
    if isinstance(node, dict):
        return {
            (key if key.startswith("Fn::") else key[:1].upper() + key[1:]): (
                value if key.startswith("Fn::") else pascal_keys(value)
            )
            for key, value in node.items()
        }
    return node


def _skip(*checks: tuple[str, str]) -> dict[str, Any]:
    """Checkov suppressions, each with its reason (tests refuse an empty one)."""
    return {"checkov": {"skip": [{"id": check, "comment": reason} for check, reason in checks]}}


# ------------------------------------------------------------------------------ suppressions

NO_VPC = (
    "CKV_AWS_117",
    "The functions reach only regional AWS APIs (IoT data, DynamoDB, Kinesis); a VPC would add "
    "NAT or endpoint charges and no isolation.",
)
ENV_KMS = (
    "CKV_AWS_173",
    "The environment holds table and endpoint names, no secrets; Lambda encrypts it at rest "
    "with the AWS managed key.",
)
LOG_KMS = (
    "CKV_AWS_158",
    "Log groups are encrypted at rest by CloudWatch Logs by default; the chat logs no message "
    "text, and a customer managed key costs $1 a month per key.",
)
DYNAMO_CMK = (
    "CKV_AWS_119",
    "Tables are encrypted with the AWS managed DynamoDB key (SSE enabled); a customer managed "
    "key costs $1 a month and adds nothing for a chat.",
)
SIGN_IN_DLQ = (
    "CKV_AWS_116",
    "Invoked synchronously by the signed-in client, which sees and retries any error; a "
    "dead-letter queue applies to asynchronous invokes only.",
)
STREAM_DLQ = (
    "CKV_AWS_116",
    "Invoked by the Kinesis event source mapping (retries and bisection configured on the "
    "mapping); a function dead-letter queue applies to asynchronous invokes only.",
)
SIGN_IN_ANY = (
    "CKV_AWS_111",
    "iot:AttachPolicy to a Cognito identity is authorised on Resource '*' (the target is an "
    "identity id, not an ARN); the function attaches only the stack's user policy, to the "
    "identity Cognito derives from the caller's ID token.",
)
SIGN_IN_PERMISSIONS = (
    "CKV_AWS_109",
    "The sign-in step's purpose is iot:AttachPolicy (permissions management); see CKV_AWS_111 "
    "for its scope.",
)
GUEST_ACCESS = (
    "CKV_AWS_366",
    "Guests chat by design (docs/policies.md): the guest role grants only the chat's own "
    "topics, keyed on the identity id Cognito issued.",
)
BUCKET_LOGGING = (
    "CKV_AWS_18",
    "A static web app read only through CloudFront; access logging would need a second bucket "
    "and is left to the operator.",
)
CDN_WAF = (
    "CKV_AWS_68",
    "A web ACL costs at least $5 a month at rest; the distribution serves static files only "
    "(the chat traffic goes to AWS IoT Core, not through CloudFront).",
)
CDN_LOGGING = (
    "CKV_AWS_86",
    "Access logging needs a log bucket with ACLs enabled; left to the operator.",
)
CDN_TLS = (
    "CKV_AWS_174",
    "The default *.cloudfront.net certificate is used (no custom domain), for which "
    "CloudFront fixes the TLS policy; viewers are redirected to HTTPS.",
)
QUEUE_CMK = (
    "CKV_AWS_27",
    "The queue uses SQS managed server-side encryption; a KMS key adds cost and nothing else.",
)


# ------------------------------------------------------------------------------ the builder


class _Builder:
    def __init__(self, stack: str, manifest_path: Path, rules_dir: Path) -> None:
        self.stack = check_stack_name(stack)
        self.manifest_path = manifest_path
        self.rules_dir = rules_dir
        self.resources: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, dict[str, Any]] = {}
        # Templated names ({stack}-x) -> logical id, to turn a rule's references into DependsOn.
        self.roles: dict[str, str] = {}
        self.functions: dict[str, str] = {}
        self.tables: dict[str, str] = {}
        self.streams: dict[str, str] = {}
        # A rule reference's kind -> (templated name -> logical id, what to say when missing).
        self._declared = {
            "function": (self.functions, "is not in the manifest"),
            "table": (self.tables, "is not in the manifest"),
            "stream": (self.streams, "is not in the manifest"),
            "role": (self.roles, "has no policies/iam file"),
        }

    def add(self, name: str, resource: dict[str, Any]) -> str:
        if name in self.resources:
            raise TemplateError(f"two resources would be called {name}")
        self.resources[name] = resource
        return name

    def output(self, name: str, value: Any, description: str, condition: str | None = None):
        out: dict[str, Any] = {"Description": description, "Value": value}
        if condition:
            out["Condition"] = condition
        self.outputs[name] = out

    # ---------------------------------------------------------------------- policies

    def iot_policies(self) -> None:
        for name in policy_names("iot"):
            self.add(
                logical_id("iot", "policy", name),
                {
                    "Type": "AWS::IoT::Policy",
                    "Properties": {
                        "PolicyName": sub(f"{{stack}}-{name}"),
                        "PolicyDocument": render_cloudformation(load_document("iot", name)),
                    },
                },
            )

    def roles_from_policies(self) -> None:
        for name in policy_names("iam"):
            if name in NOT_DEPLOYED:
                continue
            trust = self._trust(name)
            role_id = self.add(
                logical_id(name, "role") if not name.endswith("-role") else logical_id(name),
                {
                    "Type": "AWS::IAM::Role",
                    "Properties": {
                        "RoleName": sub(f"{{stack}}-{name}"),
                        "Description": f"iotchat: policies/iam/{name}.json",
                        "AssumeRolePolicyDocument": trust,
                        "Policies": [
                            {
                                "PolicyName": name,
                                "PolicyDocument": render_cloudformation(load_document("iam", name)),
                            }
                        ],
                    },
                },
            )
            self.roles[f"{{stack}}-{name}"] = role_id

    def _trust(self, name: str) -> dict[str, Any]:
        if name in ("guest-role", "user-role"):
            amr = "authenticated" if name == "user-role" else "unauthenticated"
            return _document(
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": "cognito-identity.amazonaws.com"},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {
                            "cognito-identity.amazonaws.com:aud": {"Ref": "IdentityPool"}
                        },
                        "ForAnyValue:StringLike": {"cognito-identity.amazonaws.com:amr": amr},
                    },
                }
            )
        if name == "backend-lambda":
            return _service_trust("lambda.amazonaws.com")
        if name.startswith("rule-"):
            return _document(
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "iot.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                    "Condition": {
                        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
                        "ArnLike": {
                            "aws:SourceArn": {
                                "Fn::Sub": "arn:${AWS::Partition}:iot:${AWS::Region}:"
                                "${AWS::AccountId}:rule/" + rule_name(self.stack, "*")
                            }
                        },
                    },
                }
            )
        raise TemplateError(
            f"policies/iam/{name}.json: no trust policy is defined for it in infra/aws/template.py "
            "(who may assume the role?)"
        )

    # ---------------------------------------------------------------------- manifest

    def manifest(self) -> None:
        # Validate with the loader the local stack uses; build from the raw, templated file.
        Manifest.load(self.manifest_path, stack=self.stack)
        raw = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        for table in raw.get("tables", []):
            self.table(table)
        for stream in raw.get("streams", []):
            self.stream(stream)
        for function in raw.get("functions", []):
            self.function(function)
        for mapping in raw.get("eventSourceMappings", []):
            self.mapping(mapping)

    def table(self, request: dict[str, Any]) -> None:
        name = request["TableName"]
        table_id = self.add(logical_id("table", short_name(name, "tables")), {})
        props: dict[str, Any] = {
            "TableName": sub(name),
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": request["KeySchema"],
            "AttributeDefinitions": request["AttributeDefinitions"],
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True},
        }
        for key in ("LocalSecondaryIndexes", "GlobalSecondaryIndexes"):
            if request.get(key):
                props[key] = [
                    {k: v for k, v in index.items() if k != "ProvisionedThroughput"}
                    for index in request[key]
                ]
        if name in TTL_ATTRIBUTES:
            props["TimeToLiveSpecification"] = {
                "AttributeName": TTL_ATTRIBUTES[name],
                "Enabled": True,
            }
        self.resources[table_id] = {
            "Type": "AWS::DynamoDB::Table",
            "DeletionPolicy": "Delete",
            "UpdateReplacePolicy": "Retain",
            "Metadata": _skip(DYNAMO_CMK),
            "Properties": props,
        }
        self.tables[name] = table_id
        self.output(
            logical_id(short_name(name, "tables"), "table"), {"Ref": table_id}, "DynamoDB table"
        )

    def stream(self, request: dict[str, Any]) -> None:
        name = request["StreamName"]
        stream_id = self.add(
            logical_id("kinesis", short_name(name, "streams")),
            {
                "Type": "AWS::Kinesis::Stream",
                "Condition": "StreamEnabled",
                "DeletionPolicy": "Delete",
                "UpdateReplacePolicy": "Delete",
                "Properties": {
                    "Name": sub(name),
                    "ShardCount": request.get("ShardCount", 1),
                    "RetentionPeriodHours": 24,
                    "StreamModeDetails": {"StreamMode": "PROVISIONED"},
                    "StreamEncryption": {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"},
                },
            },
        )
        self.streams[name] = stream_id

    def function(self, spec: dict[str, Any]) -> None:
        name = spec["name"]
        short = short_name(name, "functions")
        environment = dict(render_cloudformation(spec.get("environment", {})))
        environment["IOT_DATA_ENDPOINT"] = {"Ref": "IotDataEndpoint"}
        consumer = self._is_stream_consumer(name)
        function_id = self._lambda(
            short,
            handler=spec["handler"],
            role={"Fn::GetAtt": [self.roles["{stack}-backend-lambda"], "Arn"]},
            environment=environment,
            timeout=spec.get("timeout", 3),
            memory=spec.get("memorySize", 128),
            concurrency=spec.get("reservedConcurrency"),
            dead_letters=not consumer,
            skips=(STREAM_DLQ,) if consumer else (),
        )
        self.functions[name] = function_id

    def _is_stream_consumer(self, name: str) -> bool:
        raw = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        return any(m.get("FunctionName") == name for m in raw.get("eventSourceMappings", []))

    def _lambda(
        self,
        short: str,
        *,
        handler: str,
        role: Any,
        environment: dict[str, Any],
        timeout: int,
        memory: int,
        concurrency: int | None,
        dead_letters: bool,
        skips: tuple[tuple[str, str], ...] = (),
    ) -> str:
        function_id = logical_id("function", short)
        log_id = self.add(
            logical_id("log", "group", short),
            {
                "Type": "AWS::Logs::LogGroup",
                "DeletionPolicy": "Delete",
                "UpdateReplacePolicy": "Delete",
                "Metadata": _skip(LOG_KMS),
                "Properties": {
                    "LogGroupName": {"Fn::Sub": f"/aws/lambda/${{AWS::StackName}}-{short}"},
                    "RetentionInDays": {"Ref": "LogRetentionDays"},
                },
            },
        )
        props: dict[str, Any] = {
            "FunctionName": {"Fn::Sub": f"${{AWS::StackName}}-{short}"},
            "Description": f"iotchat {short}",
            "Runtime": LAMBDA_RUNTIME,
            "Architectures": ["arm64"],
            "Handler": handler,
            "Code": {"S3Bucket": {"Ref": "CodeBucket"}, "S3Key": {"Ref": "CodeKey"}},
            "Role": role,
            "Timeout": timeout,
            "MemorySize": memory,
            "Environment": {"Variables": environment},
            "LoggingConfig": {"LogGroup": {"Ref": log_id}, "LogFormat": "Text"},
        }
        if concurrency is not None:
            props["ReservedConcurrentExecutions"] = concurrency
        checks = [NO_VPC, ENV_KMS, *skips]
        if dead_letters:
            props["DeadLetterConfig"] = {"TargetArn": {"Fn::GetAtt": ["FailureQueue", "Arn"]}}
        self.add(
            function_id,
            {
                "Type": "AWS::Lambda::Function",
                "Metadata": _skip(*checks),
                "Properties": props,
            },
        )
        return function_id

    def mapping(self, request: dict[str, Any]) -> None:
        function = request["FunctionName"]
        stream_match = re.search(r"stream/(.+)$", request["EventSourceArn"])
        stream = stream_match.group(1) if stream_match else ""
        if function not in self.functions or stream not in self.streams:
            raise TemplateError(f"eventSourceMappings: {function} <- {stream} is not declared")
        props = pascal_keys(render_cloudformation(request))
        props["FunctionName"] = {"Ref": self.functions[function]}
        props["EventSourceArn"] = {"Fn::GetAtt": [self.streams[stream], "Arn"]}
        self.add(
            logical_id("mapping", short_name(function, "mapping"), short_name(stream, "mapping")),
            {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Condition": "StreamEnabled",
                "Properties": props,
            },
        )

    # ---------------------------------------------------------------------- rules

    def rules(self) -> None:
        # Validate as `iotchat up` does (botocore's model, the local engine's action types).
        load_rules(
            self.rules_dir, {"region": "us-east-1", "account": "0" * 12, "stack": self.stack}
        )
        invoked: dict[str, list[tuple[str, str | None]]] = {}
        for path in sorted(self.rules_dir.glob("*.json")):
            raw = json.loads(path.read_text(encoding="utf-8"))
            stem = path.stem
            depends, condition = self._rule_references(raw, stem, invoked)
            rule_id = logical_id("rule", stem)
            resource: dict[str, Any] = {
                "Type": "AWS::IoT::TopicRule",
                "DependsOn": sorted(depends),
                "Properties": {
                    "RuleName": rule_name(self.stack, stem),
                    "TopicRulePayload": pascal_keys(render_cloudformation(raw)),
                },
            }
            if condition:
                resource["Condition"] = condition
            self.add(rule_id, resource)
        for function, callers in sorted(invoked.items()):
            for rule_id, condition in callers:
                permission: dict[str, Any] = {
                    "Type": "AWS::Lambda::Permission",
                    "Properties": {
                        "Action": "lambda:InvokeFunction",
                        "FunctionName": {"Ref": self.functions[function]},
                        "Principal": "iot.amazonaws.com",
                        "SourceAccount": {"Ref": "AWS::AccountId"},
                        "SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]},
                    },
                }
                if condition:
                    permission["Condition"] = condition
                self.add(
                    logical_id("allow", rule_id, "invoke", self.functions[function]), permission
                )

    def _rule_references(
        self, raw: dict[str, Any], stem: str, invoked: dict[str, list[tuple[str, str | None]]]
    ) -> tuple[set[str], str | None]:
        """What a rule's actions name (DependsOn), and its condition: a rule that feeds the
        stream exists only with the stream."""
        references = list(RuleDefinition(stem, raw).references())
        condition = "StreamEnabled" if any(r.kind == "stream" for r in references) else None
        depends: set[str] = set()
        for ref in references:
            if ref.kind == "topic":
                continue
            declared, missing = self._declared[ref.kind]
            if ref.name not in declared:
                raise TemplateError(f"rule {stem}: {ref.kind} {ref.name} {missing}")
            depends.add(declared[ref.name])
            if ref.kind == "function":
                invoked.setdefault(ref.name, []).append((logical_id("rule", stem), condition))
        return depends, condition

    # ---------------------------------------------------------------------- AWS-only parts

    def failure_queue(self) -> None:
        self.add(
            "FailureQueue",
            {
                "Type": "AWS::SQS::Queue",
                "DeletionPolicy": "Delete",
                "UpdateReplacePolicy": "Delete",
                "Metadata": _skip(QUEUE_CMK),
                "Properties": {
                    "QueueName": {"Fn::Sub": "${AWS::StackName}-lambda-failures"},
                    "MessageRetentionPeriod": 1209600,
                    "SqsManagedSseEnabled": True,
                },
            },
        )
        role = self.resources[self.roles["{stack}-backend-lambda"]]
        role["Properties"]["Policies"].append(
            {
                "PolicyName": "aws-dead-letters",
                "PolicyDocument": _document(
                    {
                        "Sid": "FailedAsyncInvokes",
                        "Effect": "Allow",
                        "Action": "sqs:SendMessage",
                        "Resource": {"Fn::GetAtt": ["FailureQueue", "Arn"]},
                    }
                ),
            }
        )
        self.output("FailureQueueUrl", {"Ref": "FailureQueue"}, "Failed asynchronous invokes")

    def cognito(self) -> None:
        self.add(
            "UserPool",
            {
                "Type": "AWS::Cognito::UserPool",
                "DeletionPolicy": "Delete",
                "UpdateReplacePolicy": "Retain",
                "Properties": {
                    "UserPoolName": {"Fn::Sub": "${AWS::StackName}-users"},
                    "UsernameAttributes": ["email"],
                    "AutoVerifiedAttributes": ["email"],
                    "UserAttributeUpdateSettings": {
                        "AttributesRequireVerificationBeforeUpdate": ["email"]
                    },
                    "VerificationMessageTemplate": {"DefaultEmailOption": "CONFIRM_WITH_CODE"},
                    "AccountRecoverySetting": {
                        "RecoveryMechanisms": [{"Name": "verified_email", "Priority": 1}]
                    },
                    "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": False},
                    "Policies": {
                        "PasswordPolicy": {
                            "MinimumLength": 8,
                            "RequireUppercase": True,
                            "RequireLowercase": True,
                            "RequireNumbers": True,
                            "RequireSymbols": True,
                            "TemporaryPasswordValidityDays": 7,
                        }
                    },
                    "MfaConfiguration": "OFF",
                    "DeletionProtection": "INACTIVE",
                },
            },
        )
        self.add(
            "UserPoolClient",
            {
                "Type": "AWS::Cognito::UserPoolClient",
                "Properties": {
                    "ClientName": {"Fn::Sub": "${AWS::StackName}-clients"},
                    "UserPoolId": {"Ref": "UserPool"},
                    "GenerateSecret": False,
                    "ExplicitAuthFlows": ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
                    "PreventUserExistenceErrors": "ENABLED",
                    "EnableTokenRevocation": True,
                    "AccessTokenValidity": 60,
                    "IdTokenValidity": 60,
                    "RefreshTokenValidity": 30,
                    "TokenValidityUnits": {
                        "AccessToken": "minutes",
                        "IdToken": "minutes",
                        "RefreshToken": "days",
                    },
                },
            },
        )
        self.add(
            "IdentityPool",
            {
                "Type": "AWS::Cognito::IdentityPool",
                "Metadata": _skip(GUEST_ACCESS),
                "Properties": {
                    "AllowUnauthenticatedIdentities": True,
                    "AllowClassicFlow": False,
                    "CognitoIdentityProviders": [
                        {
                            "ClientId": {"Ref": "UserPoolClient"},
                            "ProviderName": {"Fn::GetAtt": ["UserPool", "ProviderName"]},
                            "ServerSideTokenCheck": True,
                        }
                    ],
                },
            },
        )
        self.add(
            "IdentityPoolRoles",
            {
                "Type": "AWS::Cognito::IdentityPoolRoleAttachment",
                "Properties": {
                    "IdentityPoolId": {"Ref": "IdentityPool"},
                    "Roles": {
                        "authenticated": {"Fn::GetAtt": [self.roles["{stack}-user-role"], "Arn"]},
                        "unauthenticated": {
                            "Fn::GetAtt": [self.roles["{stack}-guest-role"], "Arn"]
                        },
                    },
                },
            },
        )
        self.output("IdentityPoolId", {"Ref": "IdentityPool"}, "Cognito identity pool")
        self.output("UserPoolId", {"Ref": "UserPool"}, "Cognito user pool")
        self.output("UserPoolClientId", {"Ref": "UserPoolClient"}, "Cognito app client")

    def sign_in(self) -> None:
        """The AWS-only sign-in step: attach the user IoT policy to a signed-in identity."""
        user_policy = logical_id("iot", "policy", "user")
        self.add(
            "SignInRole",
            {
                "Type": "AWS::IAM::Role",
                "Metadata": _skip(SIGN_IN_ANY, SIGN_IN_PERMISSIONS),
                "Properties": {
                    "RoleName": {"Fn::Sub": "${AWS::StackName}-sign-in"},
                    "Description": "iotchat: the sign-in step (infra/aws/sign_in.py)",
                    "AssumeRolePolicyDocument": _service_trust("lambda.amazonaws.com"),
                    "Policies": [
                        {
                            "PolicyName": "sign-in",
                            "PolicyDocument": _document(
                                {
                                    "Sid": "AttachTheUserPolicy",
                                    "Effect": "Allow",
                                    "Action": "iot:AttachPolicy",
                                    "Resource": "*",
                                },
                                {
                                    "Sid": "IdentityFromToken",
                                    "Effect": "Allow",
                                    "Action": "cognito-identity:GetId",
                                    "Resource": {
                                        "Fn::Sub": "arn:${AWS::Partition}:cognito-identity:"
                                        "${AWS::Region}:${AWS::AccountId}:identitypool/"
                                        "${IdentityPool}"
                                    },
                                },
                                {
                                    "Sid": "OwnLogs",
                                    "Effect": "Allow",
                                    "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                                    "Resource": {
                                        "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:"
                                        "${AWS::AccountId}:log-group:/aws/lambda/"
                                        "${AWS::StackName}-sign-in:*"
                                    },
                                },
                            ),
                        }
                    ],
                },
            },
        )
        function_id = self._lambda(
            "sign-in",
            handler=SIGN_IN_HANDLER,
            role={"Fn::GetAtt": ["SignInRole", "Arn"]},
            environment={
                "IDENTITY_POOL_ID": {"Ref": "IdentityPool"},
                "USER_POOL_PROVIDER": {"Fn::GetAtt": ["UserPool", "ProviderName"]},
                "USER_POLICY_NAME": {"Ref": user_policy},
            },
            timeout=10,
            memory=128,
            concurrency=2,
            dead_letters=False,
            skips=(SIGN_IN_DLQ,),
        )
        # The signed-in role may call it; AWS-only, so not part of policies/iam/user-role.json.
        user_role = self.resources[self.roles["{stack}-user-role"]]
        user_role["Properties"]["Policies"].append(
            {
                "PolicyName": "aws-sign-in",
                "PolicyDocument": _document(
                    {
                        "Sid": "SignInStep",
                        "Effect": "Allow",
                        "Action": "lambda:InvokeFunction",
                        "Resource": {"Fn::GetAtt": [function_id, "Arn"]},
                    }
                ),
            }
        )
        self.output("SignInFunction", {"Ref": function_id}, "Attaches the user IoT policy")
        self.output("UserPolicyName", {"Ref": user_policy}, "IoT policy of signed-in users")
        self.output(
            "DevicePolicyName",
            {"Ref": logical_id("iot", "policy", "device")},
            "IoT policy for device certificates",
        )

    def web(self) -> None:
        self.add(
            "WebBucket",
            {
                "Type": "AWS::S3::Bucket",
                "DeletionPolicy": "Delete",
                "UpdateReplacePolicy": "Delete",
                "Metadata": _skip(BUCKET_LOGGING),
                "Properties": {
                    "BucketEncryption": {
                        "ServerSideEncryptionConfiguration": [
                            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                        ]
                    },
                    "PublicAccessBlockConfiguration": {
                        "BlockPublicAcls": True,
                        "BlockPublicPolicy": True,
                        "IgnorePublicAcls": True,
                        "RestrictPublicBuckets": True,
                    },
                    "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
                    "VersioningConfiguration": {"Status": "Enabled"},
                    "Tags": [{"Key": "iotchat:stack", "Value": {"Ref": "AWS::StackName"}}],
                },
            },
        )
        self.add(
            "WebOriginAccess",
            {
                "Type": "AWS::CloudFront::OriginAccessControl",
                "Properties": {
                    "OriginAccessControlConfig": {
                        "Name": {"Fn::Sub": "${AWS::StackName}-web"},
                        "Description": "CloudFront reads the private web bucket",
                        "OriginAccessControlOriginType": "s3",
                        "SigningBehavior": "always",
                        "SigningProtocol": "sigv4",
                    }
                },
            },
        )
        self.add(
            "WebHeaders",
            {
                "Type": "AWS::CloudFront::ResponseHeadersPolicy",
                "Properties": {
                    "ResponseHeadersPolicyConfig": {
                        "Name": {"Fn::Sub": "${AWS::StackName}-web"},
                        "SecurityHeadersConfig": {
                            "ContentSecurityPolicy": {
                                "ContentSecurityPolicy": {"Fn::Sub": web_csp()},
                                "Override": True,
                            },
                            "ContentTypeOptions": {"Override": True},
                            "FrameOptions": {"FrameOption": "DENY", "Override": True},
                            "ReferrerPolicy": {"ReferrerPolicy": "no-referrer", "Override": True},
                            "StrictTransportSecurity": {
                                "AccessControlMaxAgeSec": 63072000,
                                "IncludeSubdomains": True,
                                "Override": True,
                            },
                        },
                        "CustomHeadersConfig": {
                            "Items": [
                                {
                                    "Header": "Cross-Origin-Opener-Policy",
                                    "Value": "same-origin",
                                    "Override": True,
                                },
                                {
                                    "Header": "Cross-Origin-Resource-Policy",
                                    "Value": "same-origin",
                                    "Override": True,
                                },
                            ]
                        },
                    }
                },
            },
        )
        behaviour = {
            "TargetOriginId": "web",
            "ViewerProtocolPolicy": "redirect-to-https",
            "AllowedMethods": ["GET", "HEAD"],
            "CachedMethods": ["GET", "HEAD"],
            "Compress": True,
            "ResponseHeadersPolicyId": {"Ref": "WebHeaders"},
        }
        self.add(
            "WebDistribution",
            {
                "Type": "AWS::CloudFront::Distribution",
                "Metadata": _skip(CDN_WAF, CDN_LOGGING, CDN_TLS),
                "Properties": {
                    "DistributionConfig": {
                        "Enabled": True,
                        "Comment": {"Fn::Sub": "iotchat ${AWS::StackName} web app"},
                        "DefaultRootObject": "index.html",
                        "HttpVersion": "http2and3",
                        "IPV6Enabled": True,
                        "PriceClass": "PriceClass_100",
                        "Origins": [
                            {
                                "Id": "web",
                                "DomainName": {"Fn::GetAtt": ["WebBucket", "RegionalDomainName"]},
                                "S3OriginConfig": {"OriginAccessIdentity": ""},
                                "OriginAccessControlId": {"Fn::GetAtt": ["WebOriginAccess", "Id"]},
                            }
                        ],
                        "DefaultCacheBehavior": {**behaviour, "CachePolicyId": CACHING_OPTIMIZED},
                        "CacheBehaviors": [
                            {
                                **behaviour,
                                "PathPattern": "/config.json",
                                "CachePolicyId": CACHING_DISABLED,
                            }
                        ],
                        "ViewerCertificate": {"CloudFrontDefaultCertificate": True},
                    }
                },
            },
        )
        self.add(
            "WebBucketPolicy",
            {
                "Type": "AWS::S3::BucketPolicy",
                "Properties": {
                    "Bucket": {"Ref": "WebBucket"},
                    "PolicyDocument": _document(
                        {
                            "Sid": "CloudFrontReadsThroughOriginAccessControl",
                            "Effect": "Allow",
                            "Principal": {"Service": "cloudfront.amazonaws.com"},
                            "Action": "s3:GetObject",
                            "Resource": {"Fn::Sub": "${WebBucket.Arn}/*"},
                            "Condition": {
                                "StringEquals": {
                                    "AWS:SourceArn": {
                                        "Fn::Sub": "arn:${AWS::Partition}:cloudfront::"
                                        "${AWS::AccountId}:distribution/${WebDistribution}"
                                    }
                                }
                            },
                        },
                        {
                            "Sid": "TlsOnly",
                            "Effect": "Deny",
                            "Principal": "*",
                            "Action": "s3:*",
                            "Resource": [
                                {"Fn::GetAtt": ["WebBucket", "Arn"]},
                                {"Fn::Sub": "${WebBucket.Arn}/*"},
                            ],
                            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                        },
                    ),
                },
            },
        )
        self.output("WebBucketName", {"Ref": "WebBucket"}, "Private bucket of the web app")
        self.output("WebDistributionId", {"Ref": "WebDistribution"}, "CloudFront distribution")
        self.output(
            "WebUrl",
            {"Fn::Sub": "https://${WebDistribution.DomainName}/"},
            "The web app (HTTPS only)",
        )

    def build(self) -> dict[str, Any]:
        self.iot_policies()
        self.roles_from_policies()
        self.manifest()
        self.failure_queue()
        self.rules()
        self.cognito()
        self.sign_in()
        self.web()
        self.output("IotDataEndpoint", {"Ref": "IotDataEndpoint"}, "AWS IoT data endpoint (ATS)")
        self.output("StreamEnabled", {"Ref": "EnableStream"}, "Whether the Kinesis path exists")
        return {
            "AWSTemplateFormatVersion": "2010-09-09",
            "Description": f"iotchat stack {self.stack}: AWS IoT Core chat (rules, policies, "
            "Lambdas and tables from the iotchat repository)",
            "Metadata": {"iotchat": {"stackName": self.stack}},
            "Parameters": PARAMETERS,
            "Conditions": {"StreamEnabled": {"Fn::Equals": [{"Ref": "EnableStream"}, "true"]}},
            "Resources": self.resources,
            "Outputs": self.outputs,
        }


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


def _document(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _service_trust(service: str) -> dict[str, Any]:
    return _document(
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    )


def web_csp() -> str:
    """The web app's Content-Security-Policy as an ``Fn::Sub`` string: the app's own policy
    (the one the local server sends) for an AWS config, plus the Lambda endpoint the sign-in
    step calls."""
    policy = content_security_policy(
        {"region": "${AWS::Region}", "iot": {"url": "wss://${IotDataEndpoint}/mqtt"}}
    )
    return policy.replace(
        "connect-src ", "connect-src https://lambda.${AWS::Region}.amazonaws.com ", 1
    )


def build_template(
    stack: str = "iotchat",
    *,
    manifest_path: Path = MANIFEST_PATH,
    rules_dir: Path = RULES_DIR,
) -> dict[str, Any]:
    """The whole stack for ``stack``, as a JSON-serialisable template."""
    return _Builder(stack, manifest_path, rules_dir).build()


def template_json(template: dict[str, Any]) -> str:
    return json.dumps(template, indent=1, sort_keys=False) + "\n"
