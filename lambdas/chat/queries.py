"""The queries Lambda: small reads (``who``, ``whois``) kept apart from the commands Lambda.

AWS IoT invokes a rule's Lambda asynchronously, and Lambda queues those events per function
(https://docs.aws.amazon.com/lambda/latest/dg/services-iot.html,
https://docs.aws.amazon.com/lambda/latest/dg/invocation-async.html). A flood of history pages
from one person therefore waits in the commands function's queue, and so would anyone's ``who``
queued behind it. The rule ``chat_queries`` sends these reads to their own function, with its
own queue and concurrency, so they answer while the commands function works through (and
refuses, budget first) a flood.

The checks and answers are the commands Lambda's own (``Commands``): the same door, budget and
membership rules; this function only refuses every other type.
"""

from __future__ import annotations

from .commands import Commands
from .publisher import Publisher
from .store import ChatStore

# What rule chat_queries routes here; everything else on chat/out goes to chat_commands.
QUERY_TYPES = frozenset({"who", "whois"})


def queries(store: ChatStore, publisher: Publisher) -> Commands:
    """A request handler that answers only the query types (UNKNOWN_TYPE for anything else)."""
    handler = Commands(store, publisher)
    handler.handlers = {kind: h for kind, h in handler.handlers.items() if kind in QUERY_TYPES}
    return handler
