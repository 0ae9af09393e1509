"""Kinesis Data Streams for the local stack: kinesalite (npm) as a supervised child process.

``service`` runs kinesalite and creates the manifest's streams; ``api`` tells the edge API how
to forward ``Kinesis_20131202.*`` requests to it (signature checked first, then verbatim);
``access`` says what each request asks IAM for; ``errors`` holds its start error.
"""

from .errors import KinesisStartError
from .service import KinesisLocal, ensure_streams

__all__ = ["KinesisLocal", "KinesisStartError", "ensure_streams"]
