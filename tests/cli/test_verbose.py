"""``-v`` shows the stack's own debug lines, ``-vv`` third-party libraries' too."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from cli.options import CHATTY_LIBRARIES, OWN_LOGGERS, setup_logging


@pytest.fixture
def restored_levels() -> Iterator[None]:
    names = ["", *OWN_LOGGERS, *CHATTY_LIBRARIES]
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize(
    ("verbose", "own_debug", "library_info", "library_debug"),
    [(0, False, False, False), (1, True, False, False), (2, True, True, True)],
)
def test_each_v_opens_one_more_level(
    restored_levels: None, verbose: int, own_debug: bool, library_info: bool, library_debug: bool
) -> None:
    setup_logging(verbose)
    assert logging.getLogger("iotchat.rules").isEnabledFor(logging.DEBUG) is own_debug
    assert logging.getLogger("infra.local.registry.watch").isEnabledFor(logging.DEBUG) is own_debug
    assert logging.getLogger("iotchat.stack").isEnabledFor(logging.INFO)
    assert logging.getLogger("botocore.credentials").isEnabledFor(logging.INFO) is library_info
    assert logging.getLogger("websockets.server").isEnabledFor(logging.DEBUG) is library_debug
