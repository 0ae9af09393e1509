"""A local stack serving the web app, for the web server's tests and the browser scenarios.

The stack runs in its own thread exactly as ``iotchat up`` wires it: the gateway's loopback
``ws`` listener on, so a page served over http connects without trusting the local CA, and the
web server at the stack file's ``web.url`` with ``config.json`` built from the stack file. A
test folder gets the fixture by importing it into its conftest.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra.local.web import config_from_stack
from tests.support.stack import InProcessStack, run_stack_in_thread, stack_options


@dataclass
class WebStack:
    stack: InProcessStack
    url: str
    config: dict[str, Any]

    @property
    def state_dir(self) -> Path:
        return self.stack.stack.state_dir


@pytest.fixture(scope="package")
def web_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebStack]:
    """One stack per test folder, with its web app served."""
    options = stack_options(tmp_path_factory.mktemp("web") / "state")
    with run_stack_in_thread(options) as stack:
        info = stack.info
        assert info["iot"].get("wsPort") and info.get("web"), "the stack serves no web app"
        yield WebStack(stack, info["web"]["url"], config_from_stack(info))


__all__ = ["WebStack", "web_stack"]
