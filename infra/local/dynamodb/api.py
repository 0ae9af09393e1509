"""DynamoDB on the edge API: every ``DynamoDB_20120810.*`` request goes verbatim to dynalite.

dynalite validates requests and answers in DynamoDB's own JSON error shape; when the edge
answers itself (dynalite down or failing) its error codes are qualified as DynamoDB's are.
"""

from __future__ import annotations

from infra.local.api.backend import Endpoint, ServiceBackend

from .service import TARGET_PREFIX

ERROR_PREFIX = "com.amazonaws.dynamodb.v20120810#"


def backend(endpoint: Endpoint) -> ServiceBackend:
    """DynamoDB as the edge API forwards it to dynalite at ``endpoint()``."""
    return ServiceBackend("DynamoDB", TARGET_PREFIX, endpoint, error_prefix=ERROR_PREFIX)
