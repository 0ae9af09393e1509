"""Fixtures shared by the gateway's tests: paho client factories and the bystander."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.infra.local.gateway.peers import Bystander, Peer
from tests.support.paho import factory_fixture
from tests.support.stack import GatewayHandle

clients = pytest.fixture(name="clients")(factory_fixture)


@pytest.fixture
def peers() -> Iterator[Any]:
    """Factory for peers that are all closed at the end of the test."""
    made: list[Peer] = []

    def make(gw: GatewayHandle, client_id: str, **kwargs: Any) -> Peer:
        peer = Peer(gw, client_id, **kwargs)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        peer.close()


@pytest.fixture
def bystander(gateway: GatewayHandle) -> Iterator[Bystander]:
    by = Bystander(gateway)
    yield by
    by.peer.close()
