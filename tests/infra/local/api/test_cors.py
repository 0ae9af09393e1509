"""CORS on the edge API: a page on a loopback origin may call Cognito, no other page may."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest

from infra.local.api.cors import is_loopback_origin
from tests.support.web import WebStack

GET_ID = "AWSCognitoIdentityService.GetId"


def request(
    stack: WebStack, method: str, headers: dict[str, str], body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    url = urlsplit(stack.config["apiEndpoint"])
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
    try:
        conn.request(method, "/", body=body, headers=headers)
        response = conn.getresponse()
        # Header names as a browser compares them: case-insensitively.
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def preflight(stack: WebStack, origin: str) -> tuple[int, dict[str, str], bytes]:
    return request(
        stack,
        "OPTIONS",
        {
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-amz-target,x-amz-user-agent",
        },
    )


def get_id(stack: WebStack, origin: str | None) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": GET_ID}
    if origin is not None:
        headers["Origin"] = origin
    body = json.dumps({"IdentityPoolId": stack.config["identityPoolId"]}).encode()
    return request(stack, "POST", headers, body)


def test_a_loopback_page_passes_the_preflight_and_reads_the_answer(web_stack: WebStack) -> None:
    origin = web_stack.url.rstrip("/")
    status, headers, _ = preflight(web_stack, origin)
    assert status == 204
    assert headers["access-control-allow-origin"] == origin
    assert "POST" in headers["access-control-allow-methods"]
    allowed = {h.strip() for h in headers["access-control-allow-headers"].split(",")}
    assert {
        "x-amz-target",
        "x-amz-user-agent",
        "content-type",
        "authorization",
        "x-amz-date",
        "x-amz-security-token",
    } <= allowed
    assert headers["vary"] == "Origin"

    status, headers, body = get_id(web_stack, origin)
    assert status == 200 and "IdentityId" in json.loads(body)
    assert headers["access-control-allow-origin"] == origin
    assert "x-amzn-RequestId" in headers["access-control-expose-headers"]


def test_errors_are_readable_too(web_stack: WebStack) -> None:
    """A browser must see Cognito's error (wrong password, bad code) to show it."""
    origin = "http://localhost:9999"
    status, headers, body = request(
        web_stack,
        "POST",
        {"Origin": origin, "X-Amz-Target": "AWSCognitoIdentityService.Nope"},
        b"{}",
    )
    assert status == 400 and b"UnknownOperationException" in body
    assert headers["access-control-allow-origin"] == origin


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "null", "http://127.0.0.1.evil.example:80"]
)
def test_other_origins_are_refused(web_stack: WebStack, origin: str) -> None:
    status, headers, _ = preflight(web_stack, origin)
    assert status == 403
    assert "access-control-allow-origin" not in headers
    # Served (SDKs and curl send no Origin and need no CORS) but unreadable from that page.
    status, headers, _ = get_id(web_stack, origin)
    assert status == 200
    assert "access-control-allow-origin" not in headers


def test_clients_without_an_origin_are_unaffected(web_stack: WebStack) -> None:
    status, headers, _ = get_id(web_stack, None)
    assert status == 200 and "access-control-allow-origin" not in headers


@pytest.mark.parametrize(
    ("origin", "loopback"),
    [
        ("http://127.0.0.1:8080", True),
        ("http://localhost", True),
        ("https://[::1]:8443", True),
        ("http://127.0.0.1.evil.example", False),
        ("http://localhost@evil.example", False),
        ("http://evil.example/127.0.0.1", False),
        ("file://", False),
        ("null", False),
        ("", False),
        (None, False),
        ("http://127.0.0.1:99999", False),
    ],
)
def test_loopback_origins(origin: str | None, loopback: bool) -> None:
    assert is_loopback_origin(origin) is loopback
