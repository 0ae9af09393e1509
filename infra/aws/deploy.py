"""``iotchat deploy``, ``outputs`` and ``destroy``: one CloudFormation stack per stack name.

Deploy packages the Lambdas, uploads the zip and the template to a private artifacts bucket
(``<stack>-artifacts-<account>-<region>``, created on first deploy), then creates or updates
the stack through a change set: the change set is printed and applied only when the caller
confirms (``--yes`` or the prompt). While CloudFormation works, every new stack event is
printed. On failure the failing resources and CloudFormation's reasons are reported and the
stack file is left as it was; only after the stack is complete and the web app uploaded is the
stack file written, atomically. Destroy empties what deploy filled (the web and artifacts
buckets, the IoT policies' attachments), deletes the stack and then the artifacts bucket.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .concurrency import ConcurrencyRefused, check_reservations
from .package import LambdaPackage, build_package
from .template import build_template, check_stack_name, reserved_concurrency, template_json
from .web import empty_bucket, upload_web

Echo = Callable[[str], None]
Confirm = Callable[[str], bool]

SUCCESS = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"}
FAILURE = {
    "CREATE_FAILED",
    "ROLLBACK_COMPLETE",
    "ROLLBACK_FAILED",
    "UPDATE_FAILED",
    "UPDATE_ROLLBACK_COMPLETE",
    "UPDATE_ROLLBACK_FAILED",
    "DELETE_FAILED",
    "IMPORT_ROLLBACK_COMPLETE",
    "IMPORT_ROLLBACK_FAILED",
}
# Statuses from which a new change set cannot be applied until the stack is deleted.
NEEDS_DELETE = {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED", "DELETE_FAILED"}
# Events a little older than our own clock still belong to the operation we started.
CLOCK_SKEW = timedelta(seconds=5)
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
IOT_MQTTS_PORT = 8883
IOT_WSS_PORT = 443


class DeployError(RuntimeError):
    """Deploy, outputs or destroy failed; the message is for the user."""


class Cancelled(DeployError):
    """The user declined the change set."""


@dataclass
class Progress:
    """Prints the stack events that are new since the operation started."""

    echo: Echo
    since: datetime
    seen: set[str] = field(default_factory=set)
    failures: list[dict[str, Any]] = field(default_factory=list)

    def poll(self, cfn: Any, stack: str) -> None:
        fresh: list[dict[str, Any]] = []
        for page in cfn.get_paginator("describe_stack_events").paginate(StackName=stack):
            done = False
            for event in page["StackEvents"]:
                if event["EventId"] in self.seen or event["Timestamp"] < self.since:
                    done = True
                    break
                fresh.append(event)
            if done:
                break
        for event in reversed(fresh):
            self.seen.add(event["EventId"])
            status = event.get("ResourceStatus", "")
            reason = event.get("ResourceStatusReason") or ""
            line = (
                f"  {event['Timestamp']:%H:%M:%S} {status:<28} "
                f"{event.get('ResourceType', '')} {event.get('LogicalResourceId', '')}"
            )
            self.echo(f"{line}  {reason}" if reason else line)
            if status.endswith("_FAILED") and "cancelled" not in reason.lower():
                self.failures.append(event)

    def failure_report(self) -> str:
        if not self.failures:
            return "no resource reported a failure (see the stack's events in the console)"
        return "\n".join(
            f"  {e.get('LogicalResourceId')} ({e.get('ResourceType')}): "
            f"{e.get('ResourceStatusReason') or e.get('ResourceStatus')}"
            for e in self.failures
        )


def artifact_bucket_name(stack: str, account: str, region: str) -> str:
    return f"{stack}-artifacts-{account}-{region}"


def stack_file_content(
    stack: str, region: str, account: str, outputs: dict[str, str]
) -> dict[str, Any]:
    """The stack file, the same shape ``iotchat up`` writes (``kind`` ``aws``, no ``api``)."""
    return {
        "kind": "aws",
        "stackName": stack,
        "region": region,
        "accountId": account,
        "iot": {
            "host": outputs["IotDataEndpoint"],
            "wssPort": IOT_WSS_PORT,
            "mqttsPort": IOT_MQTTS_PORT,
            "userPolicyName": outputs["UserPolicyName"],
            "devicePolicyName": outputs["DevicePolicyName"],
        },
        "cognito": {
            "identityPoolId": outputs["IdentityPoolId"],
            "userPoolId": outputs["UserPoolId"],
            "userPoolClientId": outputs["UserPoolClientId"],
            "signInFunction": outputs["SignInFunction"],
        },
        "web": {"url": outputs["WebUrl"]},
        "stream": {"enabled": outputs.get("StreamEnabled") == "true"},
    }


def write_stack_file(path: Path, content: dict[str, Any]) -> None:
    """All or nothing: a temporary file next to it, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(content, indent=2) + "\n")
    os.replace(tmp, path)


def check_stack_file_target(path: Path, stack: str) -> None:
    """Refuse to replace a running local stack's file or another AWS stack's file."""
    try:
        current = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return
    if current.get("kind") == "local":
        raise DeployError(
            f"{path} belongs to a running local stack (`iotchat up`); pass --stack-file to "
            "write the AWS stack's file elsewhere"
        )
    if current.get("kind") == "aws" and current.get("stackName") not in (None, stack):
        raise DeployError(
            f"{path} describes AWS stack {current.get('stackName')!r}; pass --stack-file"
        )


@dataclass(eq=False)
class Deployment:
    """One stack in one account and region, through a boto3 session.

    ``echo`` and ``confirm`` talk to the user; ``sleep``, ``package`` and ``template`` are
    seams for tests (no waiting, a stand-in zip, the subset of the template moto runs).
    """

    session: Any
    stack: str
    _: KW_ONLY
    echo: Echo = print
    confirm: Confirm | None = None
    poll_seconds: float = 5.0
    sleep: Callable[[float], None] = time.sleep
    package: Callable[[], LambdaPackage] = build_package
    template: Callable[..., dict[str, Any]] = build_template
    region: str = field(init=False)
    cfn: Any = field(init=False, repr=False)
    s3: Any = field(init=False, repr=False)
    _report: str = field(init=False, default="", repr=False)

    def __post_init__(self) -> None:
        self.stack = check_stack_name(self.stack)
        self.region = self.session.region_name
        if not self.region:
            raise DeployError("no region: pass --region (or set AWS_REGION)")
        self.cfn = self.session.client("cloudformation")
        self.s3 = self.session.client("s3")

    # ------------------------------------------------------------------ queries

    def account(self) -> str:
        return self.session.client("sts").get_caller_identity()["Account"]

    def describe(self) -> dict[str, Any] | None:
        try:
            return self.cfn.describe_stacks(StackName=self.stack)["Stacks"][0]
        except self.cfn.exceptions.ClientError as exc:
            if "does not exist" in str(exc):
                return None
            raise

    def outputs(self) -> dict[str, str]:
        stack = self.describe()
        if stack is None:
            raise DeployError(f"stack {self.stack} does not exist in {self.region}")
        return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}

    # ------------------------------------------------------------------ deploy

    def deploy(
        self,
        *,
        stream: bool | None,
        yes: bool,
        stack_file: Path,
        reserve_concurrency: bool = False,
    ) -> dict[str, Any]:
        """``stream`` None keeps the stack's current setting (off for a new stack).
        ``reserve_concurrency`` reserves the manifest's units, after checking the account can
        spare them; without it the functions reserve nothing."""
        check_stack_file_target(stack_file, self.stack)
        template = self._template(reserve_concurrency)
        if stream is None:
            current = self.describe() or {}
            params = {p["ParameterKey"]: p["ParameterValue"] for p in current.get("Parameters", [])}
            stream = params.get("EnableStream") == "true"
        account = self.account()
        endpoint = self.session.client("iot").describe_endpoint(endpointType="iot:Data-ATS")[
            "endpointAddress"
        ]
        bucket = artifact_bucket_name(self.stack, account, self.region)
        self._ensure_artifact_bucket(bucket, account)
        code = self.package()
        self._put_once(bucket, code.key, code.data)
        self.echo(f"Lambda code: {len(code.files)} files, s3://{bucket}/{code.key}")
        body = template_json(template).encode()
        template_key = f"templates/{self.stack}-{_sha(body)}.json"
        self._put_once(bucket, template_key, body)
        url = f"https://{bucket}.s3.{self.region}.amazonaws.com/{template_key}"
        self.cfn.validate_template(TemplateURL=url)
        parameters = {
            "CodeBucket": bucket,
            "CodeKey": code.key,
            "IotDataEndpoint": endpoint,
            "EnableStream": "true" if stream else "false",
        }
        applied = self._change_set(url, parameters, yes)
        outputs = self.outputs()
        content = stack_file_content(self.stack, self.region, account, outputs)
        count = upload_web(self.s3, outputs["WebBucketName"], content)
        self._invalidate(outputs["WebDistributionId"])
        self.echo(f"web app: {count} files in s3://{outputs['WebBucketName']}")
        write_stack_file(stack_file, content)
        self.echo(f"stack file: {stack_file}" + ("" if applied else " (stack unchanged)"))
        self.echo(f"web app: {outputs['WebUrl']}")
        return content

    def _template(self, reserve_concurrency: bool) -> dict[str, Any]:
        if not reserve_concurrency:
            return self.template(self.stack)
        template = self.template(self.stack, reserve_concurrency=True)
        try:
            self.echo(
                check_reservations(self.session.client("lambda"), reserved_concurrency(template))
            )
        except ConcurrencyRefused as refused:
            raise DeployError(str(refused)) from None
        return template

    def _ensure_artifact_bucket(self, bucket: str, account: str) -> None:
        try:
            self.s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=account)
            return
        except self.s3.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code not in ("404", "NoSuchBucket", "NotFound"):
                raise DeployError(f"artifacts bucket {bucket}: {exc}") from exc
        request: dict[str, Any] = {"Bucket": bucket}
        if self.region != "us-east-1":
            request["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        self.s3.create_bucket(**request)
        self.s3.put_public_access_block(
            Bucket=bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        self.s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
        self.s3.put_bucket_policy(
            Bucket=bucket,
            Policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "TlsOnly",
                            "Effect": "Deny",
                            "Principal": "*",
                            "Action": "s3:*",
                            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                        }
                    ],
                }
            ),
        )
        self.echo(f"created artifacts bucket {bucket}")

    def _put_once(self, bucket: str, key: str, body: bytes) -> None:
        try:
            self.s3.head_object(Bucket=bucket, Key=key)
        except self.s3.exceptions.ClientError:
            self.s3.put_object(Bucket=bucket, Key=key, Body=body)

    def _change_set(self, url: str, parameters: dict[str, str], yes: bool) -> bool:
        """Create, show, confirm and execute a change set; False when nothing changed."""
        current = self.describe()
        status = current["StackStatus"] if current else None
        if status in NEEDS_DELETE:
            raise DeployError(
                f"stack {self.stack} is {status} (its creation failed); remove it with "
                f"`iotchat destroy --stack {self.stack} --region {self.region}` and deploy again"
            )
        if status and status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
            raise DeployError(f"stack {self.stack} is busy ({status}); try again when it is done")
        kind = "UPDATE" if status and status != "REVIEW_IN_PROGRESS" else "CREATE"
        name = f"iotchat-{datetime.now(UTC):%Y%m%d-%H%M%S}"
        created = self.cfn.create_change_set(
            StackName=self.stack,
            ChangeSetName=name,
            ChangeSetType=kind,
            TemplateURL=url,
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            # The roles have generated names (template/iam.py): CAPABILITY_IAM suffices.
            Capabilities=["CAPABILITY_IAM"],
            Tags=[{"Key": "iotchat:stack", "Value": self.stack}],
        )
        change_set = self._wait_change_set(created["Id"])
        if change_set["Status"] == "FAILED":
            reason = change_set.get("StatusReason", "")
            if any(text in reason for text in NO_CHANGES):
                self.cfn.delete_change_set(ChangeSetName=created["Id"])
                self.echo(f"stack {self.stack}: no changes")
                return False
            raise DeployError(f"change set failed: {reason}")
        self.echo(f"change set {name} ({kind.lower()} {self.stack} in {self.region}):")
        for line in describe_changes(change_set):
            self.echo(line)
        if not yes and not (self.confirm and self.confirm("Apply these changes?")):
            self.cfn.delete_change_set(ChangeSetName=created["Id"])
            if kind == "CREATE":
                self.cfn.delete_stack(StackName=self.stack)
            raise Cancelled("not applied; the change set was deleted")
        started = datetime.now(UTC)
        self.cfn.execute_change_set(ChangeSetName=created["Id"])
        final = self._wait_stack(started)
        if final not in SUCCESS:
            raise DeployError(f"stack {self.stack} is {final}; failed:\n" + self._report)
        return True

    def _wait_change_set(self, change_set_id: str) -> dict[str, Any]:
        while True:
            change_set = self.cfn.describe_change_set(ChangeSetName=change_set_id)
            if change_set["Status"] in ("CREATE_COMPLETE", "FAILED"):
                return change_set
            self.sleep(self.poll_seconds / 2)

    def _wait_stack(self, since: datetime, *, gone_ok: bool = False) -> str:
        """Poll the stack with progress until it is no longer in progress; its status."""
        progress = Progress(self.echo, since - CLOCK_SKEW)
        while True:
            try:
                progress.poll(self.cfn, self.stack)
            except self.cfn.exceptions.ClientError as exc:
                if gone_ok and "does not exist" in str(exc):
                    return "DELETE_COMPLETE"
                raise
            stack = self.describe()
            if stack is None:
                if gone_ok:
                    return "DELETE_COMPLETE"
                raise DeployError(f"stack {self.stack} disappeared")
            status = stack["StackStatus"]
            if not status.endswith("_IN_PROGRESS"):
                progress.poll(self.cfn, self.stack)
                self._report = progress.failure_report()
                return status
            self.sleep(self.poll_seconds)

    def _invalidate(self, distribution: str) -> None:
        self.session.client("cloudfront").create_invalidation(
            DistributionId=distribution,
            InvalidationBatch={
                "Paths": {"Quantity": 1, "Items": ["/*"]},
                "CallerReference": f"iotchat-{time.time_ns()}",
            },
        )

    # ------------------------------------------------------------------ destroy

    def destroy(self, *, yes: bool, stack_file: Path | None = None) -> None:
        stack = self.describe()
        account = self.account()
        bucket = artifact_bucket_name(self.stack, account, self.region)
        if not yes and not (
            self.confirm
            and self.confirm(
                f"Delete stack {self.stack} in {self.region}, its tables and users, "
                "and the web and artifacts buckets?"
            )
        ):
            raise Cancelled("nothing deleted")
        if stack is not None:
            outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
            if outputs.get("WebBucketName"):
                removed = empty_bucket(self.s3, outputs["WebBucketName"])
                self.echo(f"emptied s3://{outputs['WebBucketName']} ({removed} versions)")
            for key in ("UserPolicyName", "DevicePolicyName"):
                if outputs.get(key):
                    self._detach_all(outputs[key])
            started = datetime.now(UTC)
            self.cfn.delete_stack(StackName=self.stack)
            final = self._wait_stack(started, gone_ok=True)
            if final != "DELETE_COMPLETE":
                raise DeployError(f"stack {self.stack} is {final}; failed:\n" + self._report)
            self.echo(f"stack {self.stack} deleted")
        else:
            self.echo(f"stack {self.stack} does not exist in {self.region}")
        try:
            empty_bucket(self.s3, bucket)
            self.s3.delete_bucket(Bucket=bucket)
            self.echo(f"deleted artifacts bucket {bucket}")
        except self.s3.exceptions.ClientError as exc:
            if "NoSuchBucket" not in str(exc):
                raise
        if stack_file is not None:
            try:
                current = json.loads(stack_file.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                return
            if (
                current.get("kind") == "aws"
                and current.get("stackName") == self.stack
                and current.get("region") == self.region
            ):
                stack_file.unlink()
                self.echo(f"removed {stack_file}")

    def _detach_all(self, policy: str) -> None:
        """IoT refuses to delete a policy that is still attached (to identities, certificates)."""
        iot = self.session.client("iot")
        targets: list[str] = []
        try:
            for page in iot.get_paginator("list_targets_for_policy").paginate(policyName=policy):
                targets += page.get("targets", [])
        except iot.exceptions.ResourceNotFoundException:
            return
        for target in targets:
            iot.detach_policy(policyName=policy, target=target)
        if targets:
            self.echo(f"detached {policy} from {len(targets)} identities/certificates")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def describe_changes(change_set: dict[str, Any]) -> list[str]:
    """One line per change: action, type, logical id, and whether it replaces the resource."""
    lines = []
    for change in change_set.get("Changes", []):
        rc = change.get("ResourceChange", {})
        replacement = rc.get("Replacement")
        note = "  (replaces it)" if replacement == "True" else ""
        if replacement == "Conditional":
            note = "  (may replace it)"
        lines.append(
            f"  {rc.get('Action', '?'):<8} {rc.get('ResourceType', ''):<40} "
            f"{rc.get('LogicalResourceId', '')}{note}"
        )
    return lines or ["  (no resource changes listed)"]
