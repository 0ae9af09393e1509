"""The local server of the web app in ``client/web``: serves the app's files and config.json.

The app's own knowledge (which files, their types, the config and the CSP) lives in
:mod:`client.webapp`; ``config_from_stack`` is re-exported because the stack and the tests
build the served config from a stack file through this package.
"""

from client.webapp import config_from_stack

from .server import WebServer

__all__ = ["WebServer", "config_from_stack"]
