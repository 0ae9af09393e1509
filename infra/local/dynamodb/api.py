"""DynamoDB on the edge API: ``DynamoDB_20120810.*`` requests, signed and allowed, go to dynalite.

dynalite validates requests and answers in DynamoDB's own JSON error shape, but checks no
signature and no permission. So the edge first verifies the SigV4 signature (signing name
``dynamodb``), then asks IAM for every (action, table ARN) the request needs
(:mod:`.access`), and only then forwards it. Refusals are DynamoDB's: HTTP 400 with
``com.amazon.coral.service#UnrecognizedClientException``, ``#InvalidSignatureException``,
``#ExpiredTokenException`` or ``#AccessDeniedException`` as ``__type`` (what DynamoDB
answers, e.g. ``{"__type": "com.amazon.coral.service#AccessDeniedException", "Message": "User:
arn:... is not authorized to perform: dynamodb:ListTables on resource: *"}``); botocore reads
the part after ``#``. When the edge answers for dynalite itself (down or failing), its error
codes are qualified as DynamoDB's own are (``com.amazonaws.dynamodb.v20120810#``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from infra.local.api.backend import Access, Endpoint, ServiceBackend

from .access import required_access
from .service import TARGET_PREFIX

SIGNING_NAME = "dynamodb"
# The largest DynamoDB request: BatchWriteItem "can transmit up to 16MB of data over the
# network" (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html);
# the edge answers a larger Content-Length unread.
MAX_REQUEST_BYTES = 16 * 1024 * 1024
ERROR_PREFIX = "com.amazonaws.dynamodb.v20120810#"
AUTH_ERROR_PREFIX = "com.amazon.coral.service#"


def backend(endpoint: Endpoint, *, region: str, account: str) -> ServiceBackend:
    """DynamoDB as the edge API forwards it to dynalite at ``endpoint()``; table ARNs are
    in ``region`` and ``account``."""

    def access(operation: str, request: Mapping[str, Any]) -> list[Access]:
        return required_access(operation, request, region=region, account=account)

    return ServiceBackend(
        "DynamoDB",
        TARGET_PREFIX,
        endpoint,
        error_prefix=ERROR_PREFIX,
        auth_error_prefix=AUTH_ERROR_PREFIX,
        signing_name=SIGNING_NAME,
        required_access=access,
        max_request_bytes=lambda operation: MAX_REQUEST_BYTES,
    )
