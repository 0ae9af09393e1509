"""One local stack for the client tests, and chat clients connected to it from its stack file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from client.chat_client import ChatClient
from client.identity import Identity, SessionFile
from client.stack_file import StackInfo, load_stack_file
from tests.support.stack import InProcessStack, run_stack_in_thread, stack_options


@pytest.fixture(scope="module")
def chat_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessStack]:
    root = tmp_path_factory.mktemp("client-stack")
    with run_stack_in_thread(stack_options(root / "state", lambda_retry_delays=(0.1, 0.1))) as h:
        yield h


@pytest.fixture
def stack_info(chat_stack: InProcessStack) -> StackInfo:
    return load_stack_file(chat_stack.stack.stack_file)


@pytest.fixture
def new_client(stack_info: StackInfo, tmp_path: Path) -> Iterator[Callable[..., ChatClient]]:
    started: list[ChatClient] = []

    def make(
        protocol: str = "mqtt5", identity: Identity | None = None, **kwargs: Any
    ) -> ChatClient:
        sessions = SessionFile(tmp_path / f"sessions-{len(started)}.json")
        client = ChatClient(
            stack_info,
            identity or Identity.guest(stack_info, sessions),
            protocol=protocol,
            **kwargs,
        )
        started.append(client.start())
        return client

    yield make
    for client in started:
        client.stop()
