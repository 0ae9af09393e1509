"""CloudWatch Logs of the local stack: ``service`` reads the functions' and the rules engine's
log files as log groups, ``api`` serves them on the API endpoint with what IAM must allow."""

from .api import LogsAPI, service
from .service import LocalLogs

__all__ = ["LocalLogs", "LogsAPI", "service"]
