"""The local AWS IoT registry: device certificates, things, and what is attached to what.

``service`` holds the registry itself (one JSON document under the state dir, shared with the
CLI's processes), ``errors`` the AWS IoT error each refused call maps to, ``credentials`` the
gateway's credential store that lets only registered ACTIVE certificates in, and ``devices``
the create and revoke flows of ``iotchat device``, ``watch`` what disconnects live
connections of certificates that left ACTIVE. The IoT control plane on the API endpoint
(``infra/local/iot/``) serves it to the AWS CLI and boto3.
"""

from .credentials import RegistryCredentialStore
from .devices import DeviceFiles, create_device, revoke_device
from .errors import (
    CertificateState,
    DeleteConflict,
    InvalidRequest,
    LimitExceeded,
    RegistryError,
    ResourceAlreadyExists,
    ResourceNotFound,
)
from .service import (
    CERTIFICATE_ID_VARIABLE,
    INACTIVE,
    THING_ATTACHED_VARIABLE,
    THING_NAME_VARIABLE,
    Registry,
    RegistryChange,
)
from .watch import watch_deactivations

__all__ = [
    "CERTIFICATE_ID_VARIABLE",
    "INACTIVE",
    "THING_ATTACHED_VARIABLE",
    "THING_NAME_VARIABLE",
    "CertificateState",
    "DeleteConflict",
    "DeviceFiles",
    "InvalidRequest",
    "LimitExceeded",
    "Registry",
    "RegistryChange",
    "RegistryCredentialStore",
    "RegistryError",
    "ResourceAlreadyExists",
    "ResourceNotFound",
    "create_device",
    "revoke_device",
    "watch_deactivations",
]
