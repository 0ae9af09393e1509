"""What several command groups share: the ``--stack-file`` option and ``--verbose`` logging.

Kept apart from the groups so each group's module imports only typer at ``--help`` time.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

StackFileOption = Annotated[
    Path | None,
    typer.Option(
        "--stack-file", help="Stack file (default: $IOTCHAT_STACK_FILE, else .iotchat/stack.json)."
    ),
]
VerboseOption = Annotated[
    int,
    typer.Option(
        "--verbose",
        "-v",
        count=True,
        help="-v: the stack's own steps at debug level; -vv: third-party libraries' too.",
    ),
]

# The project's own loggers ("iotchat.gateway", "infra.local.registry.watch", ...).
OWN_LOGGERS = ("iotchat", "infra", "client", "cli", "lambdas")
# Libraries whose INFO lines are noise in a running stack (one per WebSocket, per credential
# lookup); shown with -vv only.
CHATTY_LIBRARIES = ("websockets", "botocore", "boto3", "urllib3", "aiohttp.access")


def setup_logging(verbose: int) -> None:
    """One log format for the long-running commands (``up``, ``edge run``): INFO by default,
    the project's own debug lines with ``-v``, everything's with ``-vv``."""
    logging.basicConfig(
        level=logging.DEBUG if verbose >= 2 else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose >= 1 else logging.INFO)
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose >= 2 else logging.WARNING)
