"""The error answers of the API endpoint, in the shapes AWS's protocols use.

rest-json services (iot-data) name the error in ``x-amzn-ErrorType``; JSON-protocol services
(DynamoDB, Kinesis, Cognito) in the body's ``__type``. botocore reads either into the error
code a caller sees.
"""

from __future__ import annotations

import uuid

from aiohttp import web


class ApiError(Exception):
    """An AWS-style error: HTTP status, error code (``x-amzn-ErrorType``) and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def rest_json_error(error: ApiError) -> web.Response:
    """The error shape of AWS's rest-json services, which botocore parses into the code."""
    return web.json_response(
        {"message": error.message},
        status=error.status,
        headers={"x-amzn-ErrorType": error.code, "x-amzn-RequestId": str(uuid.uuid4())},
    )


def json_protocol_error(status: int, code: str, message: str) -> web.Response:
    """The error shape of AWS's JSON-protocol services (``__type``)."""
    return web.json_response(
        {"__type": code, "message": message},
        status=status,
        content_type="application/x-amz-json-1.0",
        headers={"x-amzn-RequestId": str(uuid.uuid4())},
    )


def json_too_large(prefix: str, limit: int) -> web.Response:
    """A JSON-protocol request above the service's size limit, answered unread: HTTP 413
    with the ``ValidationException`` AWS rejects over-limit requests with (e.g. DynamoDB's
    BatchWriteItem over 16 MB, https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html).
    The connection is closed after the answer, so the unread body is never waited for."""
    response = json_protocol_error(
        413, prefix + "ValidationException", f"Request size exceeds the limit of {limit} bytes"
    )
    response.force_close()
    return response
