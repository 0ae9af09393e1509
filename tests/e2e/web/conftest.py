"""Fixtures for the browser tests: a real local stack serving the web app
(:mod:`tests.support.web`), and Debian's chromium, which Playwright drives headless (never a
downloaded browser).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.web import WebStack, web_stack

# Imported at collection, not lazily in a fixture while a stack thread runs: pytest rewrites
# a test module's asserts with ast.parse on first import, and CPython 3.11's AST recursion
# check can misfire ("recursion depth mismatch") when another thread builds ASTs meanwhile.
try:
    from tests.e2e.web.pages import Tab
except ImportError:  # no playwright: the browser fixture skips every browser test
    Tab = Any  # type: ignore[misc,assignment]  # a stand-in: every browser test skips then

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "web"


__all__ = ["WebStack", "artifacts", "browser", "chromium_path", "tabs", "web_stack"]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("Debian's chromium is not installed (scripts/setup installs it)")
    return path


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev extra")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="package")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def tabs(
    browser: Any, web_stack: WebStack, artifacts: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Tab]]:
    """Factory: ``tabs("alice")`` opens a new tab in its own browser context (``viewport=(w,
    h)`` for another size than the desktop one). At the end every
    open tab is screenshotted into test-artifacts/web/ and must have logged no console error
    (a CSP violation or a refused eval would be one), page error or dialog."""
    opened: list[Tab] = []

    def new_tab(label: str, **options: Any) -> Tab:
        tab = Tab(browser, web_stack.url, label, **options)
        opened.append(tab)
        return tab

    yield new_tab
    problems: dict[str, list[str]] = {}
    for tab in opened:
        try:
            tab.screenshot(artifacts, request.node.name)
        finally:
            problems[tab.label] = tab.problems()
            tab.close()
    assert not any(problems.values()), problems
