"""Fixtures of the chat domain's unit tests: the manifest's tables in moto, a recording
publisher, and Cognito's GetId stood in for."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from lambdas.chat.publisher import RecordingPublisher
from lambdas.chat.store import ChatStore
from lambdas.manifest import Manifest
from tests.lambdas.fakes import Tokens


@pytest.fixture
def store() -> Iterator[ChatStore]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        for table in Manifest.load().tables:
            client.create_table(**table)
        yield ChatStore(client, "iotchat-messages", "iotchat-state")


@pytest.fixture
def published() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def tokens() -> Tokens:
    return Tokens()
