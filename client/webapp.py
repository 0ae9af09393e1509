"""The web app's own knowledge, shared by every place that serves it.

Which files of ``client/web`` are the app (and under which URL paths), their content types, the
page's ``config.json`` built from a stack file, and the Content-Security-Policy the page needs.
The local web server (``iotchat up``) and the AWS deploy (an S3 bucket behind CloudFront) both
serve exactly this, so it lives with the app rather than with either server. Nothing here
imports from ``infra`` or ``benchmarks``.

Only files that exist in ``client/web`` (outside ``node_modules``) are listed, by exact relative
path: a request path is never joined onto the file system. The two npm packages the page
imports are listed under fixed ``/vendor/`` paths, so no third-party file is copied into the
repository.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("iotchat.web")

WEB_ROOT = Path(__file__).resolve().parent / "web"
# URL path -> file under client/web/node_modules (the package's browser ES module build).
VENDOR_FILES = {
    "/vendor/mqtt.js": "mqtt/dist/mqtt.esm.js",
    "/vendor/aws4fetch.js": "aws4fetch/dist/aws4fetch.esm.js",
}
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
# Not the app: the npm manifests stay private even though they live next to index.html.
_NOT_SERVED = frozenset({"package.json", "package-lock.json"})


def served_files(root: Path = WEB_ROOT) -> dict[str, Path]:
    """URL path -> file, for the app's own files and the vendor files that exist.

    ``"/"`` maps to ``index.html``. Symlinks, dot files and folders, the npm manifests and
    files of an unknown type are left out.
    """
    root = root.resolve()
    files: dict[str, Path] = {}
    for folder, dirs, names in os.walk(root):  # symlinked folders are not entered
        # node_modules is reached only through VENDOR_FILES; dot folders never.
        dirs[:] = [d for d in dirs if d != "node_modules" and not d.startswith(".")]
        for name in names:
            path = Path(folder) / name
            if (
                name.startswith(".")
                or name in _NOT_SERVED
                or path.suffix not in CONTENT_TYPES
                or path.is_symlink()
                or not path.is_file()
            ):
                continue
            files["/" + path.relative_to(root).as_posix()] = path
    for url, vendored in VENDOR_FILES.items():
        path = root / "node_modules" / vendored
        if path.is_file():
            files[url] = path
        else:
            log.warning("%s is missing: run scripts/setup (npm ci in client/web)", path)
    files["/"] = files.get("/index.html", root / "index.html")
    return files


def config_from_stack(info: dict[str, Any]) -> dict[str, Any]:
    """The page's ``config.json`` from a stack file: a local stack's loopback ``ws`` listener
    when it has one (no local CA to trust in the browser), else the ``wss`` endpoint."""
    iot = info["iot"]
    host = iot.get("host", "127.0.0.1")
    if iot.get("wsPort"):
        url = f"ws://{host}:{iot['wsPort']}/mqtt"
    elif iot.get("wssPort") and iot["wssPort"] != 443:
        url = f"wss://{host}:{iot['wssPort']}/mqtt"
    else:
        url = f"wss://{host}/mqtt"
    cognito = info.get("cognito", {})
    return {
        "region": info["region"],
        "identityPoolId": cognito.get("identityPoolId"),
        "userPoolId": cognito.get("userPoolId"),
        "userPoolClientId": cognito.get("userPoolClientId"),
        "apiEndpoint": info.get("api", {}).get("endpoint"),
        "iot": {"url": url},
    }


def _origin(url: str | None) -> str | None:
    """``scheme://host[:port]`` of a URL, or None for anything that is not http(s)/ws(s)."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
        return None
    if any(c in parts.netloc for c in " ;,'\"*"):
        return None
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(config: dict[str, Any]) -> str:
    """Scripts and styles from this origin only; connections to this origin, the edge API and
    the IoT endpoint named in the config; no frames, plugins, forms elsewhere or ``<base>``."""
    connect = ["'self'"]
    for url in (config.get("apiEndpoint"), (config.get("iot") or {}).get("url")):
        origin = _origin(url)
        if origin is not None and origin not in connect:
            connect.append(origin)
    region = config.get("region")
    if not config.get("apiEndpoint") and isinstance(region, str) and region.isascii():
        # On AWS the page talks to Cognito's regional endpoints directly.
        for service in ("cognito-identity", "cognito-idp"):
            connect.append(f"https://{service}.{region}.amazonaws.com")
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            "connect-src " + " ".join(connect),
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        )
    )
