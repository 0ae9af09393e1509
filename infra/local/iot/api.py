"""The IoT control plane on the API endpoint: botocore's ``iot`` model names the operations,
:class:`.service.IotControlPlane` answers them.

Registry calls take a file lock and may wait for another process (``iotchat device``), so they
run on a worker thread; topic-rule calls run on the event loop, where the rules engine lives,
so a change is in force before the answer leaves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from infra.local.api.signed import Call, OperationHandler, SignedService
from infra.local.registry import RegistryError

from .access import required_access
from .errors import from_registry
from .service import IotControlPlane, Operation

REGISTRY_OPERATIONS = (
    "CreateThing",
    "DescribeThing",
    "ListThings",
    "DeleteThing",
    "CreateKeysAndCertificate",
    "CreateCertificateFromCsr",
    "RegisterCertificate",
    "DescribeCertificate",
    "ListCertificates",
    "UpdateCertificate",
    "DeleteCertificate",
    "AttachThingPrincipal",
    "DetachThingPrincipal",
    "ListThingPrincipals",
    "ListPrincipalThings",
    "ListPolicies",
    "GetPolicy",
    "CreatePolicy",
    "CreatePolicyVersion",
    "ListPolicyVersions",
    "AttachPolicy",
    "DetachPolicy",
    "ListAttachedPolicies",
    "ListTargetsForPolicy",
)
LOOP_OPERATIONS = (
    "DescribeEndpoint",
    "ListTopicRules",
    "GetTopicRule",
    "CreateTopicRule",
    "ReplaceTopicRule",
    "EnableTopicRule",
    "DisableTopicRule",
    "DeleteTopicRule",
)


def _method_name(operation: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")


def _on_thread(method: Operation) -> OperationHandler:
    async def handle(call: Call) -> dict[str, Any]:
        try:
            return await asyncio.to_thread(method, call.params)
        except RegistryError as error:
            raise from_registry(error) from None

    return handle


def _on_loop(method: Operation) -> Callable[[Call], dict[str, Any]]:
    def handle(call: Call) -> dict[str, Any]:
        try:
            return method(call.params)
        except RegistryError as error:
            raise from_registry(error) from None

    return handle


def service(plane: IotControlPlane) -> SignedService:
    """The control plane as the edge serves it."""
    operations: dict[str, OperationHandler] = {}
    for name in REGISTRY_OPERATIONS:
        operations[name] = _on_thread(getattr(plane, _method_name(name)))
    for name in LOOP_OPERATIONS:
        operations[name] = _on_loop(getattr(plane, _method_name(name)))
    return SignedService("iot", operations, required_access(plane.region, plane.account))
