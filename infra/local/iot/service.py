"""The IoT control plane over the stack's own registry, policies and topic rules.

One method per operation, taking the request's input members (named as in botocore's ``iot``
model) and returning the output members. Things, certificates and attachments are the
registry's (:mod:`infra.local.registry`), so a certificate made here is the one the gateway
checks at the next TLS handshake, and ``UpdateCertificate`` away from ACTIVE closes its live
connections (the registry's ``watch_deactivations``). ``CreateKeysAndCertificate`` has the
local CA sign a new key, as AWS IoT's CA does. IoT policies are :class:`.policies.IotPolicies`
(the project's and created ones), topic rules :class:`.topic_rules.TopicRules`.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from infra.local.ca import LocalCA
from infra.local.registry import Registry
from infra.local.registry.service import ACTIVE, INACTIVE

from .errors import invalid, iot_error
from .policies import IotPolicies
from .topic_rules import TopicRules, topic_pattern

# The Common Name AWS IoT's CreateKeysAndCertificate gives the certificates it issues.
ISSUED_COMMON_NAME = "AWS IoT Certificate"
# DescribeEndpoint's types (https://docs.aws.amazon.com/iot/latest/apireference/API_DescribeEndpoint.html).
ENDPOINT_TYPES = frozenset({"iot:Data", "iot:Data-ATS", "iot:CredentialProvider", "iot:Jobs"})
Params = Mapping[str, Any]


def _epoch(iso: str) -> float:
    return datetime.datetime.fromisoformat(iso).timestamp()


@dataclass
class IotControlPlane:
    registry: Registry
    ca: LocalCA
    topic_rules: TopicRules
    policies: IotPolicies
    host: str
    names: Mapping[str, str]  # region, account, stack

    @property
    def region(self) -> str:
        return self.names["region"]

    @property
    def account(self) -> str:
        return self.names["account"]

    def _arn(self, kind: str, name: str) -> str:
        return f"arn:aws:iot:{self.region}:{self.account}:{kind}/{name}"

    # ------------------------------------------------------------------ endpoint

    def describe_endpoint(self, params: Params) -> dict[str, Any]:
        """Every endpoint type answers the local host (the gateway's listeners are there)."""
        kind = params.get("endpointType") or "iot:Data"
        if kind not in ENDPOINT_TYPES:
            raise invalid(f"unknown endpointType {kind!r}")
        return {"endpointAddress": self.host}

    # ------------------------------------------------------------------ things

    def _thing(self, name: str) -> dict[str, Any]:
        record = self.registry.describe_thing(name)
        return {
            "thingName": record.thing_name,
            "thingArn": record.thing_arn,
            "thingId": _stable_id(record.thing_arn),
            "attributes": record.attributes,
            "version": 1,
        }

    def create_thing(self, params: Params) -> dict[str, Any]:
        attributes = (params.get("attributePayload") or {}).get("attributes") or {}
        record = self.registry.create_thing(params.get("thingName", ""), attributes)
        thing = self._thing(record.thing_name)
        return {k: thing[k] for k in ("thingName", "thingArn", "thingId")}

    def describe_thing(self, params: Params) -> dict[str, Any]:
        thing = self._thing(params.get("thingName", ""))
        return {"defaultClientId": thing["thingName"], **thing}

    def list_things(self, params: Params) -> dict[str, Any]:
        things = [self._thing(name) for name in self.registry.list_things()]
        return {"things": [{k: v for k, v in t.items() if k != "thingId"} for t in things]}

    def delete_thing(self, params: Params) -> dict[str, Any]:
        self.registry.delete_thing(params.get("thingName", ""))
        return {}

    # ------------------------------------------------------------------ certificates

    def create_keys_and_certificate(self, params: Params) -> dict[str, Any]:
        """A new EC key and a certificate the local CA signs, registered ACTIVE or INACTIVE.
        The key is handed out once, as on AWS, and not kept."""
        scratch = Path(tempfile.mkdtemp(prefix="issue-", dir=self.ca.directory))
        try:
            issued = self.ca.issue_client_certificate(ISSUED_COMMON_NAME, scratch)
            key_pem = issued.key_path.read_bytes()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        key = load_pem_private_key(key_pem, password=None)
        public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        status = ACTIVE if params.get("setAsActive") else INACTIVE
        record = self.registry.register_certificate(issued.certificate_pem, status)
        return {
            "certificateArn": record.certificate_arn,
            "certificateId": record.certificate_id,
            "certificatePem": record.certificate_pem,
            "keyPair": {"PublicKey": public_pem.decode(), "PrivateKey": key_pem.decode()},
        }

    def create_certificate_from_csr(self, params: Params) -> dict[str, Any]:
        """The local CA signs the CSR's key; the key never leaves the device."""
        try:
            pem = self.ca.sign_request(
                str(params.get("certificateSigningRequest", "")).encode(), ISSUED_COMMON_NAME
            )
        except ValueError as exc:
            raise invalid(f"invalid certificateSigningRequest: {exc}") from None
        status = ACTIVE if params.get("setAsActive") else INACTIVE
        record = self.registry.register_certificate(pem, status)
        return {
            "certificateArn": record.certificate_arn,
            "certificateId": record.certificate_id,
            "certificatePem": record.certificate_pem,
        }

    def register_certificate(self, params: Params) -> dict[str, Any]:
        """Register a certificate the local CA signed (the only CA the mutual-TLS listener
        trusts, as a CA registered with AWS IoT is for ``RegisterCertificate``)."""
        pem = str(params.get("certificatePem", ""))
        if not self.ca.issued(pem.encode()):
            raise iot_error(
                "CertificateValidationException", "the certificate is not signed by the local CA"
            )
        status = params.get("status") or (ACTIVE if params.get("setAsActive") else INACTIVE)
        record = self.registry.register_certificate(pem, status)
        return {"certificateArn": record.certificate_arn, "certificateId": record.certificate_id}

    def describe_certificate(self, params: Params) -> dict[str, Any]:
        record = self.registry.describe_certificate(params.get("certificateId", ""))
        created = _epoch(record.creation_date)
        return {
            "certificateDescription": {
                "certificateArn": record.certificate_arn,
                "certificateId": record.certificate_id,
                "status": record.status,
                "certificatePem": record.certificate_pem,
                "ownedBy": self.account,
                "creationDate": created,
                "lastModifiedDate": created,
                "certificateMode": "DEFAULT",
            }
        }

    def list_certificates(self, params: Params) -> dict[str, Any]:
        return {
            "certificates": [
                {
                    "certificateArn": r.certificate_arn,
                    "certificateId": r.certificate_id,
                    "status": r.status,
                    "certificateMode": "DEFAULT",
                    "creationDate": _epoch(r.creation_date),
                }
                for r in self.registry.list_certificates()
            ]
        }

    def update_certificate(self, params: Params) -> dict[str, Any]:
        self.registry.update_certificate(
            params.get("certificateId", ""), params.get("newStatus", "")
        )
        return {}

    def delete_certificate(self, params: Params) -> dict[str, Any]:
        self.registry.delete_certificate(params.get("certificateId", ""))
        return {}

    # ------------------------------------------------------------------ principals

    def attach_thing_principal(self, params: Params) -> dict[str, Any]:
        self.registry.attach_thing_principal(
            params.get("thingName", ""), params.get("principal", "")
        )
        return {}

    def detach_thing_principal(self, params: Params) -> dict[str, Any]:
        self.registry.detach_thing_principal(
            params.get("thingName", ""), params.get("principal", "")
        )
        return {}

    def list_thing_principals(self, params: Params) -> dict[str, Any]:
        name = params.get("thingName", "")
        self.registry.describe_thing(name)
        return {"principals": self.registry.thing_principals(name)}

    def list_principal_things(self, params: Params) -> dict[str, Any]:
        return {"things": self.registry.principal_things(params.get("principal", ""))}

    # ------------------------------------------------------------------ policies

    def list_policies(self, params: Params) -> dict[str, Any]:
        return {
            "policies": [
                {"policyName": name, "policyArn": self._arn("policy", name)}
                for name in self.policies.names()
            ]
        }

    def get_policy(self, params: Params) -> dict[str, Any]:
        name = params.get("policyName", "")
        policy = self.policies.describe(name)
        return {
            "policyName": name,
            "policyArn": self._arn("policy", name),
            "policyDocument": policy["document"],
            "defaultVersionId": policy["defaultVersionId"],
            "creationDate": policy["versions"][0]["createDate"],
            "lastModifiedDate": policy["versions"][-1]["createDate"],
            "generationId": hashlib.sha256(policy["document"].encode()).hexdigest(),
        }

    def create_policy(self, params: Params) -> dict[str, Any]:
        name = params.get("policyName", "")
        policy = self.policies.create(name, str(params.get("policyDocument", "")))
        return {
            "policyName": name,
            "policyArn": self._arn("policy", name),
            "policyDocument": policy["document"],
            "policyVersionId": "1",
        }

    def create_policy_version(self, params: Params) -> dict[str, Any]:
        name = params.get("policyName", "")
        version = self.policies.create_version(
            name, str(params.get("policyDocument", "")), bool(params.get("setAsDefault"))
        )
        default = self.policies.describe(name)["defaultVersionId"]
        return {
            "policyArn": self._arn("policy", name),
            "policyDocument": version["document"],
            "policyVersionId": version["versionId"],
            "isDefaultVersion": default == version["versionId"],
        }

    def list_policy_versions(self, params: Params) -> dict[str, Any]:
        policy = self.policies.describe(params.get("policyName", ""))
        return {
            "policyVersions": [
                {
                    "versionId": v["versionId"],
                    "isDefaultVersion": v["versionId"] == policy["defaultVersionId"],
                    "createDate": v["createDate"],
                }
                for v in policy["versions"]
            ]
        }

    def attach_policy(self, params: Params) -> dict[str, Any]:
        name = params.get("policyName", "")
        self.policies.describe(name)  # ResourceNotFoundException for an unknown policy
        self.registry.attach_policy(name, params.get("target", ""))
        return {}

    def detach_policy(self, params: Params) -> dict[str, Any]:
        self.registry.detach_policy(params.get("policyName", ""), params.get("target", ""))
        return {}

    def list_attached_policies(self, params: Params) -> dict[str, Any]:
        names = self.registry.attached_policies(params.get("target", ""))
        return {"policies": [{"policyName": n, "policyArn": self._arn("policy", n)} for n in names]}

    def list_targets_for_policy(self, params: Params) -> dict[str, Any]:
        name = params.get("policyName", "")
        self.policies.describe(name)
        return {"targets": self.registry.policy_targets(name)}

    # ------------------------------------------------------------------ topic rules

    def list_topic_rules(self, params: Params) -> dict[str, Any]:
        rules = []
        for name, stored in self.topic_rules.rules().items():
            payload = stored.definition.payload
            if params.get("ruleDisabled") is not None and params["ruleDisabled"] != bool(
                payload.get("ruleDisabled", False)
            ):
                continue
            pattern = topic_pattern(payload["sql"])
            if params.get("topic") and params["topic"] != pattern:
                continue
            rules.append(
                {
                    "ruleArn": self._arn("rule", name),
                    "ruleName": name,
                    "topicPattern": pattern,
                    "createdAt": stored.created_at,
                    "ruleDisabled": bool(payload.get("ruleDisabled", False)),
                }
            )
        return {"rules": rules}

    def get_topic_rule(self, params: Params) -> dict[str, Any]:
        name = params.get("ruleName", "")
        stored = self.topic_rules.get(name)
        payload = stored.definition.payload
        rule = {
            "ruleName": name,
            "createdAt": stored.created_at,
            "ruleDisabled": bool(payload.get("ruleDisabled", False)),
            **{k: v for k, v in payload.items() if k != "ruleDisabled"},
        }
        return {"ruleArn": self._arn("rule", name), "rule": rule}

    def create_topic_rule(self, params: Params) -> dict[str, Any]:
        self.topic_rules.create(params.get("ruleName", ""), _payload(params))
        return {}

    def replace_topic_rule(self, params: Params) -> dict[str, Any]:
        self.topic_rules.replace(params.get("ruleName", ""), _payload(params))
        return {}

    def enable_topic_rule(self, params: Params) -> dict[str, Any]:
        self.topic_rules.set_disabled(params.get("ruleName", ""), False)
        return {}

    def disable_topic_rule(self, params: Params) -> dict[str, Any]:
        self.topic_rules.set_disabled(params.get("ruleName", ""), True)
        return {}

    def delete_topic_rule(self, params: Params) -> dict[str, Any]:
        self.topic_rules.delete(params.get("ruleName", ""))
        return {}


def _payload(params: Params) -> dict[str, Any]:
    payload = params.get("topicRulePayload")
    if not isinstance(payload, dict):
        raise invalid("topicRulePayload is required")
    return payload


def _stable_id(arn: str) -> str:
    """A thing id that stays the same for the same thing (AWS gives a UUID)."""
    digest = hashlib.sha256(arn.encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def _json_text(document: Any) -> str:
    return json.dumps(document, indent=2)


Operation = Callable[[Params], dict[str, Any]]
