"""DynamoDB for the local stack: dynalite (npm) as a supervised child process, data on disk.

``service`` runs dynalite and creates the manifest's tables; ``errors`` holds its start error.
Requests reach dynalite through the edge API, which forwards ``DynamoDB_20120810.*`` verbatim.
"""

from .errors import DynamoDBStartError
from .service import DynamoDBLocal, ensure_tables

__all__ = ["DynamoDBLocal", "DynamoDBStartError", "ensure_tables"]
