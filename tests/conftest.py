"""Shared fixtures and hooks; the helpers they use live in :mod:`tests.support`.

The gateway fixtures run a real gateway on loopback ports in its own thread and loop; tests
talk to it only over sockets, with real clients (paho-mqtt, awsiotsdk), exactly as a user's
client would.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from infra.local.ca import LocalCA
from infra.local.gateway import Limits
from tests.support.stack import GatewayHandle, gateway_in_thread

if sys.version_info < (3, 11, 8):
    # CPython 3.11 before 3.11.8 (gh-106905) keeps one AST recursion counter per interpreter:
    # two threads building ASTs at once fail with "SystemError: AST constructor recursion
    # depth mismatch". Our stacks run in background threads and log exceptions, and 3.11's
    # traceback formatting parses each source line to place its carets, while pytest parses
    # modules it imports in the main thread. Tracebacks without carets avoid the race.
    traceback._extract_caret_anchors_from_line_segment = lambda segment: None  # type: ignore[attr-defined]  # private CPython 3.11 helper, absent from typeshed


@pytest.fixture(scope="session")
def local_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    ca = LocalCA.load_or_create(tmp_path_factory.mktemp("ca"))
    ca.server_certificate(hostnames=("localhost",), ips=("127.0.0.1",))
    return ca


@pytest.fixture
def start_gateway(
    local_ca: LocalCA, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., GatewayHandle]]:
    """Factory: ``start_gateway(limits=Limits(...))`` runs a gateway with all three listeners."""
    with ExitStack() as running:

        def start(limits: Limits | None = None, authorizer: Any = None) -> GatewayHandle:
            registry_dir = tmp_path_factory.mktemp("registry")
            return running.enter_context(
                gateway_in_thread(local_ca, registry_dir, limits, authorizer)
            )

        yield start


@pytest.fixture
def gateway(start_gateway: Callable[..., GatewayHandle]) -> GatewayHandle:
    """A gateway with AWS's default limits."""
    return start_gateway()


@pytest.fixture
def tmp_state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"
