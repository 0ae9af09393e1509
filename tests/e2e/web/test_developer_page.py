"""The developer page (``/_iotchat/``) in chromium: the local admin signs in, sees the chat's
rules, functions, tables and clients, and a message sent meanwhile in the live trace; anyone
else, and any other door, is refused."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from iot_rules.loader import RULES_DIR
from lambdas.manifest import Manifest
from tests.e2e.chat.conftest import People, room_topic, unique
from tests.e2e.web.conftest import WebStack

pytestmark = pytest.mark.timeout(120)

CHAT_RULES = sorted(path.stem for path in RULES_DIR.glob("*.json"))


def admin(web_stack: WebStack) -> dict[str, str]:
    info = json.loads((web_stack.state_dir / "stack.json").read_text())
    return info["admin"]


def http(
    url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as refused:
        return refused.code, dict(refused.headers), refused.read()


def test_the_admin_sees_rules_functions_tables_clients_and_the_live_trace(
    browser: Any, web_stack: WebStack, artifacts: Path
) -> None:
    keys = admin(web_stack)
    context = browser.new_context()
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    crowd = People(web_stack.stack)
    try:
        page.goto(web_stack.url + "_iotchat/")
        page.fill("#key-id", keys["accessKeyId"])
        page.fill("#secret", "not the secret")
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("#login-error:has-text('not the local admin')")
        assert page.locator("#dashboard").is_hidden()
        assert len(problems) == 1 and "401" in problems[0]  # the refused sign-in, nothing else
        problems.clear()

        page.fill("#secret", keys["secretAccessKey"])
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("#dashboard:not([hidden])")
        page.wait_for_function("document.querySelectorAll('#rules tbody tr').length > 0")
        rules = page.locator("#rules tbody tr td:first-child").all_text_contents()
        assert sorted(rules) == CHAT_RULES
        functions = page.locator("#functions tbody tr td:first-child").all_text_contents()
        assert sorted(functions) == sorted(Manifest.load().names())
        tables = page.locator("#tables tbody tr td:first-child").all_text_contents()
        assert "iotchat-messages" in tables

        ada = crowd.connect("Ada")
        room = unique("room")
        assert ada.subscribe(room_topic(room)) == [1]
        page.fill("#topic-filter", room_topic(room))
        page.click("#trace-form button[type=submit]")
        said = ada.say(room, "<b>seen in the trace</b>")
        page.wait_for_selector(f"#trace li:has-text('{said}')")
        # The store's outcome follows its message by a poll or two.
        page.wait_for_selector("#trace li:has-text('chat_room_store -> dynamoDBv2')")
        lines = page.locator("#trace li").all_text_contents()
        first = next(line for line in lines if said in line)
        assert f"publish {room_topic(room)} from n/a" in first and ", rule)" in first
        assert "<b>seen in the trace</b>" in first  # text, never markup
        assert page.locator("#trace b").count() == 0
        assert any("chat_room_store -> dynamoDBv2 iotchat-messages ok" in line for line in lines)
        assert not any("publish chat/out" in line for line in lines)  # filtered out

        page.wait_for_function(
            "id => [...document.querySelectorAll('#clients td:first-child')]"
            ".some(td => td.textContent === id)",
            arg=ada.client_id,
        )
        row = page.locator("#clients tbody tr", has_text=ada.client_id)
        assert room_topic(room) in row.text_content()
        page.screenshot(path=str(artifacts / "developer-page.png"), full_page=True)
        assert not problems, problems
    finally:
        crowd.close()
        context.close()


def test_the_page_s_data_needs_the_admin_and_loopback(web_stack: WebStack) -> None:
    base = web_stack.url + "_iotchat/"
    keys = admin(web_stack)
    status, headers, body = http(base)
    assert status == 200 and b"Sign in as the local admin" in body
    assert "script-src 'self'" in headers["Content-Security-Policy"]

    assert http(base + "api/overview")[0] == 401
    assert http(base + "api/trace")[0] == 401
    wrong = {"accessKeyId": keys["accessKeyId"], "secretAccessKey": "guess"}
    assert http(base + "login", wrong)[0] == 401
    other_origin = {"Origin": "http://evil.example"}
    assert http(base + "login", keys | {}, other_origin)[0] == 403

    login = {"accessKeyId": keys["accessKeyId"], "secretAccessKey": keys["secretAccessKey"]}
    status, headers, _ = http(base + "login", login)
    assert status == 204
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/_iotchat/" in cookie
    session = {"Cookie": cookie.split(";", 1)[0]}
    status, _, body = http(base + "api/overview", headers=session)
    assert status == 200 and sorted(r["name"] for r in json.loads(body)["rules"]) == CHAT_RULES
    assert http(base + "api/trace?after=x", headers=session)[0] == 400

    # A Host that is not a loopback name is refused, before any session is looked at.
    assert http(base + "api/overview", headers=session | {"Host": "chat.example"})[0] == 403
