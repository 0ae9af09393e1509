"""DynamoDB for the local stack: dynalite as a supervised child process."""

from .service import (
    DYNALITE_CLI,
    TARGET_PREFIX,
    DynamoDBLocal,
    DynamoDBStartError,
    ensure_tables,
)

__all__ = [
    "DYNALITE_CLI",
    "TARGET_PREFIX",
    "DynamoDBLocal",
    "DynamoDBStartError",
    "ensure_tables",
]
