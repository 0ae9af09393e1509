"""The context object a handler receives, with the attributes of AWS's Python runtime.

One more, local: ``trace_id``, the trace of the message that caused the invocation (the stack's
trace id; on AWS the X-Ray trace is in the ``_X_AMZN_TRACE_ID`` variable, which the worker sets
too: https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html).
"""

from __future__ import annotations

import os
import time


class LambdaContext:
    """Per-invocation facts; ``get_remaining_time_in_millis`` counts down to the timeout."""

    def __init__(self, request_id: str, timeout_ms: int, trace_id: str | None = None) -> None:
        self._deadline = time.monotonic() + timeout_ms / 1000
        self.aws_request_id = request_id
        self.trace_id = trace_id
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = os.environ.get("IOTCHAT_LAMBDA_FUNCTION_ARN", "")
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))

    def __repr__(self) -> str:
        return f"LambdaContext({self.function_name!r}, request_id={self.aws_request_id!r})"
