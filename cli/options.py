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
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v")]


def setup_logging(verbose: bool) -> None:
    """One log format for the long-running commands (``up``, ``edge run``)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # One line per WebSocket open/close is noise at INFO, and costs CPU under connect load.
    logging.getLogger("websockets").setLevel(logging.DEBUG if verbose else logging.WARNING)
