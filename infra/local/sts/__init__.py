"""The local STS: ``GetCallerIdentity`` for every principal the stack knows (``api``)."""

from .api import service

__all__ = ["service"]
