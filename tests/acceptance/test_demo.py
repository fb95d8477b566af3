"""``ulak demo`` as a user runs it: a real process with its worker and receivers, end to end."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.processes import free_port

ULAK = [sys.executable, "-m", "ulak.cli"]
RECEIVERS = ("healthy", "failing", "slow", "flaky")
COLUMNS = ("events", "attempts", "delivered", "failed", "retries", "waiting", "exhausted")


def demo_env(tmp_path: Path) -> dict[str, str]:
    """The caller's environment, with a ULAK_HOME of its own that the demo must not touch.

    DATABASE_URL (set when the suite runs on PostgreSQL) is kept on purpose: the demo must
    ignore it and run on its own SQLite database.
    """
    env = dict(os.environ)
    env["ULAK_HOME"] = str(tmp_path / "users-own-home")
    env.pop("ULAK_SQLITE_PATH", None)
    return env


def final_table(output: str) -> dict[str, dict[str, int]]:
    """The last table the demo printed: {receiver: {column: number}}."""
    lines = output.splitlines()
    header = max(i for i, line in enumerate(lines) if line.startswith("receiver   retry policy"))
    table = {}
    for line in lines[header + 1 : header + 1 + len(RECEIVERS)]:
        name = line.split()[0]
        numbers = [int(value) for value in line.split()[-len(COLUMNS) :]]
        table[name] = dict(zip(COLUMNS, numbers, strict=True))
    return table


def started_parts(output: str) -> tuple[int, dict[str, int]]:
    worker_pid = int(re.search(r"Worker started \(pid (\d+)\)", output).group(1))
    ports = {
        name: int(port)
        for name, port in re.findall(r"Receiver (\w+)\s+http://127\.0\.0\.1:(\d+)/", output)
    }
    return worker_pid, ports


def processes_using(home: Path) -> list[int]:
    """Pids of processes whose environment names ``home`` as ULAK_HOME (the demo's children)."""
    marker = f"ULAK_HOME={home}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ + b"\0":
            found.append(int(entry.name))
    return found


def assert_nothing_left_running(home: Path, worker_pid: int, ports: dict[str, int]) -> None:
    try:
        os.kill(worker_pid, 0)
    except ProcessLookupError:
        pass
    else:
        raise AssertionError(f"the demo's worker (pid {worker_pid}) is still running")
    for name, port in ports.items():
        with socket.socket() as sock:
            sock.settimeout(1)
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"{name} receiver still listening"
    if Path("/proc/self/environ").exists():
        assert processes_using(home) == []


def test_short_demo_reports_deliveries_failures_and_the_undelivered_list(tmp_path):
    home = tmp_path / "demo"
    env = demo_env(tmp_path)
    result = subprocess.run(
        [*ULAK, "demo", "--short", "--home", str(home)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout
    assert result.returncode == 0, output + result.stderr
    assert "Traceback" not in result.stderr, result.stderr

    # Its own data, on SQLite, never the user's home nor DATABASE_URL.
    assert (home / "ulak.sqlite3").exists()
    assert not Path(env["ULAK_HOME"]).exists()

    table = final_table(output)
    assert set(table) == set(RECEIVERS)
    healthy, failing, slow, flaky = (table[name] for name in RECEIVERS)
    # Four packages, one event per package for each webhook.
    assert all(row["events"] == 4 for row in table.values())
    assert healthy == dict(healthy, attempts=4, delivered=4, failed=0, retries=0, exhausted=0)
    assert slow["delivered"] == 4 and slow["failed"] == 0
    # The failing receiver: three automatic attempts per event (max_retry_count 3), then exhausted.
    assert failing == dict(
        failing, attempts=12, delivered=0, failed=12, retries=8, waiting=0, exhausted=4
    )
    # The flaky one answers 503 + Retry-After to each event's first try, then 200.
    assert flaky["delivered"] == 4 and flaky["failed"] == 4 and flaky["retries"] == 4
    assert "Signatures checked by the healthy receiver: 4 of 4 requests valid" in output
    assert "Totals: 28 attempts, 12 deliveries, 16 failed attempts" in output
    # Not a log flood: a handful of summary lines, then the table.
    assert len(output.splitlines()) < 400

    # The undelivered list as the API gives it: four events, all the failing receiver's.
    assert "GET /api/v1/oms/settings/undelivered_webhooks/ answered 200:" in output
    assert '"count": 4, "next": null, "previous": null' in output
    full = output.split('"results"[0] of 4, in full:\n', 1)[1].split("\nThe other 3", 1)[0]
    first = json.loads(full)
    assert list(first) == [
        "id",
        "webhook",
        "created_date",
        "modified_date",
        "uuid",
        "request_payload",
        "response_content",
        "response_http_status",
        "delivered",
        "request_datetimes",
        "retry_count",
        "object_id",
        "content_type",
    ]
    assert (
        first["webhook"]["target_url"]
        == f"http://127.0.0.1:{started_parts(output)[1]['failing']}/failing"
    )
    assert first["webhook"]["retry_countdown_config"]["choice"] == "exponential"
    assert first["response_content"] == "b'500 Internal Server Error'"
    assert first["response_http_status"] == 500 and first["retry_count"] == 3
    assert len(first["request_datetimes"]) == 3
    body = first["request_payload"]
    assert body["event"] == {
        "type": "package.status.shipped",
        "uuid": first["uuid"].replace("-", ""),
    }
    assert body["payload"]["state"]["translations"]["tr-tr"]["name"] == "Kargolanmış"
    assert first["object_id"] == body["payload"]["id"]
    others = re.findall(
        r"^  id=\d+ webhook=\d+ \((\S+)\) .* response_http_status=500$", output, re.M
    )
    assert len(others) == 3 and all(url.endswith("/failing") for url in others)

    worker_pid, ports = started_parts(output)
    assert set(ports) == set(RECEIVERS)
    assert_nothing_left_running(home, worker_pid, ports)

    # The printed commands work: `ulak serve` on the demo's home, then the curl line.
    serve_line = re.search(r"^  ULAK_HOME=(\S+) .*serve$", output, re.M)
    curl_line = re.search(
        r'^  (curl -H "Authorization: Token [\w-]+" http://127\.0\.0\.1:8000/api/v1/oms/settings/undelivered_webhooks/)$',
        output,
        re.M,
    )
    assert serve_line and curl_line, output[-1500:]
    assert Path(serve_line.group(1)) == home
    port = free_port()
    serve_env = dict(env, ULAK_HOME=str(home))
    serve_env.pop("DATABASE_URL", None)
    server = subprocess.Popen(
        [*ULAK, "serve", "--port", str(port), "--workers", "1", "--threads", "2"],
        env=serve_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_healthy(port)
        curl = subprocess.run(
            curl_line.group(1).replace(":8000/", f":{port}/") + " --silent --show-error --fail",
            shell=True,
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert curl.returncode == 0, curl.stderr
        assert json.loads(curl.stdout)["count"] == 4
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=40)


def start_full_demo(tmp_path: Path, home: Path, out) -> subprocess.Popen:
    """``ulak demo`` at full length, its output (both streams) into ``out``."""
    return subprocess.Popen(
        [*ULAK, "demo", "--home", str(home)],
        env=demo_env(tmp_path),
        stdout=out,
        stderr=subprocess.STDOUT,
    )


def test_ctrl_c_stops_the_demo_and_everything_it_started(tmp_path):
    home = tmp_path / "demo"
    log = tmp_path / "demo.log"
    with open(log, "w") as out:
        # The full demo (a minute or two): interrupted while the worker is busy.
        process = start_full_demo(tmp_path, home, out)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and process.poll() is None:
                # A progress line with some attempts made: the worker and receivers are busy.
                if re.search(r"^\[ *[\d.]+s\] healthy [1-9]", log.read_text(), re.M):
                    break
                time.sleep(0.1)
            assert process.poll() is None, log.read_text()
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=30) == 130
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    output = log.read_text()
    assert "Interrupted: the worker and the receivers are stopped." in output
    assert "Traceback" not in output
    worker_pid, ports = started_parts(output)
    assert len(ports) == 4
    assert_nothing_left_running(home, worker_pid, ports)


def wait_until_healthy(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"ulak serve did not answer on port {port}")


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's"
)
def test_a_killed_demo_takes_its_worker_with_it(tmp_path):
    home = tmp_path / "demo"
    log = tmp_path / "demo.log"
    with open(log, "w") as out:
        process = start_full_demo(tmp_path, home, out)
        try:
            deadline = time.monotonic() + 30
            while "Worker started" not in log.read_text() and time.monotonic() < deadline:
                assert process.poll() is None, log.read_text()
                time.sleep(0.1)
            worker_pid, _ = started_parts(log.read_text())
        finally:
            # No chance to clean up: the kernel's SIGTERM to the worker must do it.
            process.kill()
            process.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(worker_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(worker_pid, signal.SIGKILL)
        raise AssertionError("the worker outlived the killed demo")
    assert processes_using(home) == []
