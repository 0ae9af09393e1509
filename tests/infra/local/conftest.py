"""Fixtures shared by the local stack's service tests.

``web_stack`` (a stack in a thread serving the web app, with the page's ``config.json``) is
the browser tests' fixture; the API endpoint's CORS tests and the web server's tests use it too.
"""

from tests.support.web import web_stack

__all__ = ["web_stack"]
