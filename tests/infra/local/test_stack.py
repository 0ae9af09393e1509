"""`iotchat up` as a user runs it: a foreground process, a stack file, health, clean stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.infra.local.stack_process import ROOT, running_stack, start_stack, up_command
from tests.support.stack import run_stack_in_thread, stack_options
from tests.support.waiting import wait_for


@pytest.fixture
def stack(tmp_path: Path):
    state_dir = tmp_path / "state"
    with running_stack(state_dir) as (proc, info):
        yield proc, state_dir, info


def test_stack_file_has_the_contract_keys(stack):
    _, state_dir, info = stack
    assert info["kind"] == "local"
    assert info["region"] == "us-east-1"
    assert info["accountId"] == "000000000000"
    iot = info["iot"]
    assert iot["host"] == "127.0.0.1"
    for key in ("wssPort", "mqttsPort", "mqttPort"):
        assert isinstance(iot[key], int) and iot[key] > 0
    assert Path(iot["caFile"]).is_absolute() and Path(iot["caFile"]).exists()
    assert Path(iot["caFile"]).is_relative_to(state_dir.resolve())
    assert info["api"]["endpoint"].startswith("http://127.0.0.1:")
    assert info["admin"] == {"accessKeyId": "test", "secretAccessKey": "test"}


def test_health_answers_200_with_json(stack):
    _, _, info = stack
    with urllib.request.urlopen(info["api"]["endpoint"] + "/_iotchat/health", timeout=5) as resp:
        assert resp.status == 200
        body = json.loads(resp.read())
    assert body["status"] == "ok"
    assert body["components"]["gateway"] == "ok"


def test_admin_can_use_the_gateway_from_the_stack_file(stack):
    _, _, info = stack
    got: list[bytes] = []
    subacks: list[int] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="stack-user")
    client.username_pw_set(info["admin"]["accessKeyId"], info["admin"]["secretAccessKey"])
    client.on_message = lambda c, u, m: got.append(m.payload)
    client.on_subscribe = lambda c, u, mid, codes, props: subacks.append(mid)
    client.connect(info["iot"]["host"], info["iot"]["mqttPort"])
    client.loop_start()
    try:
        wait_for(client.is_connected)
        _, mid = client.subscribe("t/1", qos=1)
        wait_for(lambda: mid in subacks)
        client.publish("t/1", b"hello", qos=1).wait_for_publish(5)
        wait_for(lambda: got == [b"hello"])
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stops_cleanly_on_signal_and_removes_stack_file(stack, sig):
    proc, state_dir, info = stack
    port = info["iot"]["mqttPort"]
    proc.send_signal(sig)
    assert proc.wait(15) == 0
    assert not (state_dir / "stack.json").exists()
    # The port is free again: a new stack could bind it.
    import socket

    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))


def test_ca_survives_restart(tmp_path: Path):
    state_dir = tmp_path / "state"
    first_ca = None
    for _ in range(2):
        proc = start_stack(state_dir)
        try:
            wait_for(lambda p=proc: (state_dir / "stack.json").exists() or p.poll() is not None, 30)
            info = json.loads((state_dir / "stack.json").read_text())
            ca = Path(info["iot"]["caFile"]).read_bytes()
            if first_ca is None:
                first_ca = ca
            else:
                assert ca == first_ca
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(15)


def test_busy_port_gives_a_clear_error(tmp_path: Path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        busy = sock.getsockname()[1]
        proc = subprocess.run(
            up_command(tmp_path / "s", mqtt=busy),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    assert proc.returncode == 1
    # The option to change, and who holds the port (this test's own process).
    message = proc.stderr.strip()
    assert message.startswith(f"iotchat up: port {busy} (--mqtt-port) is already in use by ")
    assert message.endswith(
        f"(pid {os.getpid()}); pass --mqtt-port 0 (any free port) or another port"
    )
    assert not (tmp_path / "s" / "stack.json").exists()


def test_stack_file_names_the_web_app_and_the_plain_websocket(tmp_path: Path) -> None:
    """The web app is served by the stack with a config.json that points at the stack's own
    endpoints (the loopback ``ws`` listener, the edge API for Cognito)."""
    import urllib.request

    with run_stack_in_thread(stack_options(tmp_path / "state")) as handle:
        info = json.loads(handle.stack.stack_file.read_text())
        assert info["iot"]["wsPort"] > 0
        with urllib.request.urlopen(info["web"]["url"] + "config.json", timeout=10) as response:
            config = json.loads(response.read())
        assert config["iot"]["url"] == f"ws://127.0.0.1:{info['iot']['wsPort']}/mqtt"
        assert config["apiEndpoint"] == info["api"]["endpoint"]
        assert config["identityPoolId"] == info["cognito"]["identityPoolId"]
