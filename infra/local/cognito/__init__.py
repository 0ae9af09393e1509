"""The local Cognito: a user pool and an identity pool, served on the edge API."""

from .api import IDENTITY_TARGET_PREFIX, IDP_TARGET_PREFIX, CognitoAPI
from .attachments import PolicyAttachments
from .errors import CognitoError
from .identity_pool import USER_POLICY_NAME, IdentityPool
from .limits import CognitoLimits
from .service import LocalCognito
from .tokens import TokenError, TokenSigner
from .user_pool import UserPool

__all__ = [
    "IDENTITY_TARGET_PREFIX",
    "IDP_TARGET_PREFIX",
    "USER_POLICY_NAME",
    "CognitoAPI",
    "CognitoError",
    "CognitoLimits",
    "IdentityPool",
    "LocalCognito",
    "PolicyAttachments",
    "TokenError",
    "TokenSigner",
    "UserPool",
]
