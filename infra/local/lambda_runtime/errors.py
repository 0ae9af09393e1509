"""The Lambda runtime's errors: the AWS Lambda exceptions a local Invoke can raise."""

from __future__ import annotations


class ResourceNotFoundError(LookupError):
    """No such function (Lambda's ResourceNotFoundException)."""


class InvalidRequestContentError(ValueError):
    """The payload is not JSON (Lambda's InvalidRequestContentException)."""
