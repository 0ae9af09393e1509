"""The web server: what it serves, what it refuses, and the headers a browser enforces."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from client.webapp import content_security_policy
from infra.local.web import WebServer, config_from_stack
from tests.support.web import WebStack


def get(stack: WebStack, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """A request with ``path`` sent exactly as written (no client-side normalisation)."""
    url = urlsplit(stack.url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_the_page_its_modules_and_vendor_files_are_served(web_stack: WebStack) -> None:
    status, headers, body = get(web_stack, "/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert b'<script type="module" src="/js/app.js">' in body
    for path in ("/js/app.js", "/js/connection.js", "/style.css", "/vendor/mqtt.js"):
        status, headers, body = get(web_stack, path)
        assert status == 200, path
        assert headers["Content-Type"].split(";")[0] in ("text/javascript", "text/css"), path
    status, _, body = get(web_stack, "/vendor/aws4fetch.js")
    assert status == 200 and b"AwsV4Signer" in body
    status, headers, body = get(web_stack, "/config.json")
    assert status == 200 and headers["Cache-Control"] == "no-store"
    assert json.loads(body) == web_stack.config


def test_security_headers_on_every_response(web_stack: WebStack) -> None:
    for path in ("/", "/js/app.js", "/config.json", "/no-such-file"):
        _, headers, _ = get(web_stack, path)
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp, path
        assert "unsafe-eval" not in csp and "unsafe-inline" not in csp
        assert "default-src 'none'" in csp
        assert "frame-ancestors 'none'" in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
    _, headers, _ = get(web_stack, "/")
    connect = next(
        d for d in headers["Content-Security-Policy"].split("; ") if d.startswith("connect-src")
    )
    # The page may talk to this origin, the edge API and the gateway's WebSocket, nothing else.
    assert connect.split()[1:] == [
        "'self'",
        web_stack.config["apiEndpoint"],
        web_stack.config["iot"]["url"].removesuffix("/mqtt"),
    ]


@pytest.mark.parametrize(
    "path",
    [
        "/../pyproject.toml",
        "/..%2fpyproject.toml",
        "/%2e%2e/%2e%2e/pyproject.toml",
        "/js/../../../pyproject.toml",
        "/js/..%2f..%2f..%2fpyproject.toml",
        "//etc/passwd",
        "/package.json",
        "/package-lock.json",
        "/node_modules/mqtt/package.json",
        "/node_modules/aws4fetch/dist/aws4fetch.esm.js",
        "/js/",
        "/js",
        "/vendor/",
        "/JS/APP.JS",
    ],
)
def test_nothing_outside_the_app_is_served(web_stack: WebStack, path: str) -> None:
    status, headers, body = get(web_stack, path)
    assert status == 404, (path, body[:200])
    assert "Content-Security-Policy" in headers


def test_only_reading_is_allowed(web_stack: WebStack) -> None:
    assert get(web_stack, "/", "POST")[0] == 405
    assert get(web_stack, "/config.json", "PUT")[0] == 405


def test_config_from_a_stack_file_prefers_the_loopback_ws_listener() -> None:
    info = {
        "region": "us-east-1",
        "iot": {"host": "127.0.0.1", "wssPort": 8443, "wsPort": 8081},
        "api": {"endpoint": "http://127.0.0.1:4566"},
        "cognito": {"identityPoolId": "p", "userPoolId": "u", "userPoolClientId": "c"},
    }
    assert config_from_stack(info) == {
        "region": "us-east-1",
        "identityPoolId": "p",
        "userPoolId": "u",
        "userPoolClientId": "c",
        "apiEndpoint": "http://127.0.0.1:4566",
        "iot": {"url": "ws://127.0.0.1:8081/mqtt"},
    }
    del info["iot"]["wsPort"]
    assert config_from_stack(info)["iot"]["url"] == "wss://127.0.0.1:8443/mqtt"


def test_a_hostile_config_value_cannot_widen_the_policy() -> None:
    csp = content_security_policy(
        {"apiEndpoint": "http://x; script-src *", "iot": {"url": "javascript:alert(1)"}}
    )
    assert "script-src 'self'" in csp and "script-src *" not in csp
    assert "javascript" not in csp


def test_only_the_apps_own_regular_files_are_in_the_table(tmp_path: Path) -> None:
    """Dot files, symlinks (even with an app suffix), npm manifests and other suffixes stay
    out, whatever lands in the folder."""
    root = tmp_path / "web"
    (root / "js").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "node_modules" / "mqtt" / "dist").mkdir(parents=True)
    for name in ("index.html", "js/app.js", ".env.js", ".git/config.js", "notes.txt"):
        (root / name).write_text("x")
    (root / "package.json").write_text("{}")
    (root / "node_modules" / "mqtt" / "dist" / "mqtt.esm.js").write_text("x")
    (root / "node_modules" / "other.js").write_text("x")
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    (root / "js" / "link.js").symlink_to(secret)
    (root / "linked").symlink_to(tmp_path, target_is_directory=True)

    server = WebServer(dict, root=root)
    assert set(server.scan()) == {"/", "/index.html", "/js/app.js", "/vendor/mqtt.js"}


def test_start_and_stop_on_a_free_port(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html><title>t</title>")

    async def main() -> tuple[int, int]:
        server = WebServer(lambda: {"region": "us-east-1"}, root=tmp_path)
        port = await server.start("127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            status = int((await reader.readline()).split()[1])
            writer.close()
        finally:
            await server.stop()
        return port, status

    # Its own thread and loop: Playwright's sync API may hold this thread's loop.
    result: list[tuple[int, int]] = []
    thread = threading.Thread(target=lambda: result.append(asyncio.run(main())))
    thread.start()
    thread.join(30)
    port, status = result[0]
    assert port > 0 and status == 200
    with pytest.raises(OSError):  # stopped: nothing listens any more
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
