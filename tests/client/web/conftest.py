"""The browser fixtures for the web client's module tests (the same as the browser scenarios')."""

from tests.e2e.web.conftest import artifacts, browser, tabs, web_stack

__all__ = ["artifacts", "browser", "tabs", "web_stack"]
