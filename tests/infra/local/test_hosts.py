"""Only loopback Host names (and configured ones) are answered."""

from __future__ import annotations

import pytest

from infra.local.hosts import LOOPBACK_ONLY, HostAllowList, host_name


@pytest.mark.parametrize(
    "header",
    [
        "127.0.0.1",
        "127.0.0.1:4566",
        "127.1.2.3:80",
        "localhost",
        "LOCALHOST:8080",
        "[::1]:8443",
        "::1",
        "app.localhost:8080",
        "localhost.",
    ],
)
def test_loopback_names_are_answered(header: str) -> None:
    assert LOOPBACK_ONLY.allows(header)


@pytest.mark.parametrize(
    "header",
    [
        "rebind.example:4566",
        "rebind.example",
        "127.0.0.1.evil.example",
        "localhost.evil.example",
        "10.0.0.1:80",
        "[::2]:80",
        "",
        None,
        "0.0.0.0:4566",
        "[::1",
    ],
)
def test_other_names_are_refused(header: str | None) -> None:
    assert not LOOPBACK_ONLY.allows(header)


def test_configured_names_are_answered_too() -> None:
    hosts = HostAllowList(["Chat.Test"])
    assert hosts.allows("chat.test:8080") and hosts.allows("chat.test.")
    assert not hosts.allows("other.test")


def test_host_name_strips_port_and_brackets() -> None:
    assert host_name("[::1]:443") == "::1"
    assert host_name("Example.com:80") == "example.com"
    assert host_name("::1") == "::1"
