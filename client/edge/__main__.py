"""``python -m client.edge``: how the Greengrass recipe (and systemd, if preferred) starts it."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .runner import DEFAULT_INTERVAL, DEFAULT_ROOM, EdgeError, EdgeSettings, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m client.edge", description="Join this device to an iotchat room."
    )
    parser.add_argument("--room", default=DEFAULT_ROOM)
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL, help="seconds")
    parser.add_argument("--device-dir", type=Path, help="direct mode: iotchat device files")
    parser.add_argument("--stack-file", type=Path, help="direct mode: endpoint override")
    parser.add_argument("--thing-name", help="Greengrass mode: default $AWS_IOT_THING_NAME")
    parser.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    settings = EdgeSettings(
        room=args.room,
        interval=args.interval,
        device_dir=args.device_dir,
        stack_file=args.stack_file,
        thing_name=args.thing_name or None,
    )
    try:
        run(settings)
    except EdgeError as exc:
        print(f"iotchat edge: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
