"""The one error type of the local Cognito: an AWS JSON-protocol error code and message."""

from __future__ import annotations


class CognitoError(Exception):
    """Raised by the pools; the API layer turns it into ``{"__type": code, "message": ...}``."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def invalid_parameter(message: str) -> CognitoError:
    return CognitoError("InvalidParameterException", message)


def not_authorized(message: str) -> CognitoError:
    return CognitoError("NotAuthorizedException", message)


def not_found(message: str) -> CognitoError:
    return CognitoError("ResourceNotFoundException", message)
