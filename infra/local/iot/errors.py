"""The IoT control plane's errors: the registry's and the rule store's, as AWS IoT answers them.

Status codes are the ones the AWS IoT API reference gives each error
(https://docs.aws.amazon.com/iot/latest/apireference/CommonErrors.html and each operation's
Errors section): not found 404, already exists 409, conflicts 409, certificate state 406.
"""

from __future__ import annotations

from infra.local.api.signed import ServiceError
from infra.local.registry import RegistryError

_STATUS = {
    "InvalidRequestException": 400,
    "ResourceNotFoundException": 404,
    "ResourceAlreadyExistsException": 409,
    "DeleteConflictException": 409,
    "CertificateStateException": 406,
    "LimitExceededException": 410,
    "SqlParseException": 400,
    "ConflictingResourceUpdateException": 409,
    "CertificateValidationException": 400,
    "MalformedPolicyException": 400,
    "VersionsLimitExceededException": 409,
}


def iot_error(code: str, message: str) -> ServiceError:
    return ServiceError(_STATUS.get(code, 400), code, message)


def from_registry(error: RegistryError) -> ServiceError:
    return iot_error(error.code, str(error))


def not_found(message: str) -> ServiceError:
    return iot_error("ResourceNotFoundException", message)


def invalid(message: str) -> ServiceError:
    return iot_error("InvalidRequestException", message)
