"""DynamoDB for the local stack: dynalite (npm) as a supervised child process, data on disk.

``service`` runs dynalite and creates the manifest's tables; ``api`` tells the edge API how
to forward ``DynamoDB_20120810.*`` requests to it (verbatim); ``access`` says what each
request asks IAM for; ``errors`` holds its start error.
"""

from .errors import DynamoDBStartError
from .service import DynamoDBLocal, ensure_tables

__all__ = ["DynamoDBLocal", "DynamoDBStartError", "ensure_tables"]
