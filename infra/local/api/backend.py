"""How a JSON-protocol service forwarded by the edge API describes itself.

DynamoDB and Kinesis run as local emulators (dynalite, kinesalite) that speak the service's
own JSON protocol but check neither signatures nor permissions. Each service's folder says,
with one :class:`ServiceBackend` in its ``api.py``, which ``X-Amz-Target`` prefix is its own,
where its emulator listens (a Unix socket), how requests are signed, how large a request may
be, what IAM must allow for each request and what the edge must do after forwarding; the edge API
(:mod:`infra.local.api.server`) does the rest: size, signature, then IAM, then forwarding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The Unix socket the emulator listens on, or None while it is not running.
Endpoint = Callable[[], Path | None]
# (IAM action, resource ARN), e.g. ("dynamodb:Query", "arn:aws:dynamodb:...:table/t").
Access = tuple[str, str]
# Operation (the target after its prefix) and the request's JSON -> what IAM must allow.
RequiredAccess = Callable[[str, Mapping[str, Any]], Iterable[Access]]
# Operation, the request's JSON and the emulator's answer (bytes) after a 200.
AfterSuccess = Callable[[str, Mapping[str, Any], bytes], None]
# Operation -> the largest request body (bytes) the service takes for it.
RequestLimit = Callable[[str], int]

DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024


def default_request_limit(operation: str) -> int:
    """1 MiB for every operation, for a service that names no limits of its own."""
    return DEFAULT_MAX_REQUEST_BYTES


@dataclass(frozen=True)
class ServiceBackend:
    """A JSON-protocol service the edge forwards to a local emulator.

    ``error_prefix`` qualifies the edge's own error codes as the service does;
    ``auth_error_prefix`` qualifies its authentication and authorization errors (DynamoDB
    names them ``com.amazon.coral.service#...``, Kinesis not at all). With a
    ``signing_name``, the edge verifies each request's SigV4 signature before forwarding;
    with ``required_access`` too, it asks IAM for every (action, resource) the request needs.
    ``max_request_bytes`` is the service's own request size limit for each operation: the
    edge answers a larger ``Content-Length`` before reading the body, and stops reading a
    chunked body once it is larger.
    """

    name: str
    target_prefix: str
    endpoint: Endpoint
    error_prefix: str = ""
    auth_error_prefix: str = ""
    signing_name: str | None = None
    required_access: RequiredAccess | None = None
    # Called with the operation, the request and the answer after each successful request.
    on_success: AfterSuccess | None = None
    max_request_bytes: RequestLimit = default_request_limit
