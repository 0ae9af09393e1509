"""The registry's errors, one class per AWS IoT error code the same control-plane call returns."""

from __future__ import annotations


class RegistryError(Exception):
    """A refused registry call; ``code`` is the AWS IoT error the same call would return."""

    code = "InvalidRequestException"


class InvalidRequest(RegistryError):
    """A malformed name, status, certificate or principal."""

    code = "InvalidRequestException"


class ResourceNotFound(RegistryError):
    """No such certificate, thing or attachment."""

    code = "ResourceNotFoundException"


class ResourceAlreadyExists(RegistryError):
    """The certificate or thing exists already (a thing with other attributes)."""

    code = "ResourceAlreadyExistsException"


class CertificateState(RegistryError):
    """The change is not allowed from the certificate's status (REVOKED is final)."""

    code = "CertificateStateException"


class LimitExceeded(RegistryError):
    """More policies on one target than AWS allows."""

    code = "LimitExceededException"


class DeleteConflict(RegistryError):
    """The certificate or thing is still attached to something."""

    code = "DeleteConflictException"
