"""Kinesis Data Streams for the local stack: kinesalite as a supervised child process."""

from .service import (
    KINESALITE_DIR,
    LOCAL_ACCOUNT_ID,
    LOCAL_REGION,
    TARGET_PREFIX,
    KinesisLocal,
    KinesisStartError,
    ensure_streams,
)

__all__ = [
    "KINESALITE_DIR",
    "LOCAL_ACCOUNT_ID",
    "LOCAL_REGION",
    "TARGET_PREFIX",
    "KinesisLocal",
    "KinesisStartError",
    "ensure_streams",
]
