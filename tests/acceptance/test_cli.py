"""The ``ulak`` command line as a user runs it: real processes, real servers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.processes import free_port

ULAK = [sys.executable, "-m", "ulak.cli"]


def run_ulak(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([*ULAK, *args], env=env, capture_output=True, text=True, timeout=60)


def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Token {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.mark.django_db(transaction=True)
def test_token_create_prints_only_the_key_and_revoke_ends_it(subprocess_env, client):
    created = run_ulak(["token", "create", "--username", "carrier", "--superuser"], subprocess_env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert created.stdout == key + "\n"
    assert len(key) >= 32 and all(c.isalnum() or c in "-_" for c in key)

    url = "/api/v1/oms/settings/webhooks/registry/"
    assert client.get(url, HTTP_AUTHORIZATION=f"Token {key}").status_code == 200

    revoked = run_ulak(["token", "revoke", "--username", "carrier"], subprocess_env)
    assert revoked.returncode == 0, revoked.stderr
    response = client.get(url, HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Token"


@pytest.mark.django_db(transaction=True)
def test_token_revoke_of_unknown_user_is_a_clear_error(subprocess_env):
    result = run_ulak(["token", "revoke", "--username", "nobody"], subprocess_env)
    assert result.returncode != 0
    assert "nobody" in result.stderr


@pytest.mark.django_db(transaction=True)
def test_other_subcommands_are_django_management_commands(subprocess_env):
    result = run_ulak(
        ["shell", "-c", "import ulak; print('ulak', ulak.__version__)"], subprocess_env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("ulak 0.")
    unknown = run_ulak(["no-such-command"], subprocess_env)
    assert unknown.returncode != 0
    assert "Unknown command" in unknown.stderr


def start_serve(home: Path, port: int) -> tuple[subprocess.Popen, list[str]]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "ULAK_SQLITE_PATH"}}
    env["ULAK_HOME"] = str(home)
    # Output to a file, as when the service runs under a supervisor: the token must be flushed.
    log = open(home.parent / f"serve-{port}.log", "w+")
    process = subprocess.Popen(
        [*ULAK, "serve", "--port", str(port), "--workers", "1", "--threads", "2"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        log.seek(0)
        lines = log.read().splitlines()
        status, _ = get(f"http://127.0.0.1:{port}/healthz") if _port_open(port) else (0, b"")
        if status == 200 and any(line.startswith("  Data:") for line in lines):
            return process, lines
        if process.poll() is not None:
            break
        time.sleep(0.2)
    process.kill()
    log.seek(0)
    raise AssertionError("ulak serve did not start:\n" + log.read())


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop_serve(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGINT)
    return process.wait(timeout=40)


def test_serve_prints_a_working_token_stops_on_ctrl_c_and_keeps_data(tmp_path):
    home = tmp_path / "home"
    port = free_port()
    process, lines = start_serve(home, port)
    try:
        tokens = [line.split(" ", 1)[1] for line in lines if line.startswith("Token: ")]
        assert len(tokens) == 1
        token = tokens[0]
        url = f"http://127.0.0.1:{port}/api/v1/oms/settings/undelivered_webhooks/"
        status, body = get(url, token)
        assert status == 200, body
        assert b'"results"' in body
        assert get(url)[0] == 401
        # Admin and docs pages load their static files from the same server.
        assert get(f"http://127.0.0.1:{port}/static/admin/css/base.css")[0] == 200
        assert get(f"http://127.0.0.1:{port}/api/docs/")[0] == 200
    finally:
        assert stop_serve(process) == 0
    assert (home / "ulak.sqlite3").exists()

    # Started again: same data, no new token, and the first token still works.
    process, lines = start_serve(home, port)
    try:
        assert not any(line.startswith("Token: ") for line in lines)
        status, _ = get(f"http://127.0.0.1:{port}/api/v1/oms/settings/undelivered_webhooks/", token)
        assert status == 200
    finally:
        assert stop_serve(process) == 0
