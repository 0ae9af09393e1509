"""The registry's errors, one class per AWS IoT error code the same control-plane call returns."""

from __future__ import annotations


class RegistryError(Exception):
    """A refused registry call; ``code`` is the AWS IoT error the same call would return."""

    code = "InvalidRequestException"


class InvalidRequest(RegistryError):
    code = "InvalidRequestException"


class ResourceNotFound(RegistryError):
    code = "ResourceNotFoundException"


class ResourceAlreadyExists(RegistryError):
    code = "ResourceAlreadyExistsException"


class CertificateState(RegistryError):
    code = "CertificateStateException"


class LimitExceeded(RegistryError):
    code = "LimitExceededException"
