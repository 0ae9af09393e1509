"""Kinesis Data Streams for the local stack: kinesalite (npm) as a supervised child process.

``service`` runs kinesalite and creates the manifest's streams; ``errors`` holds its start
error. Requests reach kinesalite through the edge API, which checks their SigV4 signature and
forwards ``Kinesis_20131202.*`` verbatim.
"""

from .errors import KinesisStartError
from .service import KinesisLocal, ensure_streams

__all__ = ["KinesisLocal", "KinesisStartError", "ensure_streams"]
