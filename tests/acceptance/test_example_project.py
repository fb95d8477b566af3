"""examples/oms, the library-mode example, driven as a person would: its manage.py, its own
settings and database, `ulak worker` (as `python -m django worker`) and a real receiver."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.receivers import Receiver

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "oms"


@pytest.fixture
def example_env(tmp_path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ULAK_", "DATABASE_URL", "DJANGO_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="oms_site.settings",
        PYTHONPATH=str(EXAMPLE),
        OMS_DATA_DIR=str(tmp_path / "oms-data"),
        ULAK_ALLOWED_NETWORKS="127.0.0.0/8",
        ULAK_POLL_INTERVAL="0.05",
    )
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_the_examples_own_tests_pass(example_env):
    result = manage(example_env, "test", "packages", "-v", "2")
    assert "Ran 3 tests" in result.stderr and "OK" in result.stderr


def test_shipping_is_delivered_after_commit_and_not_after_a_rollback(example_env, tmp_path):
    manage(example_env, "migrate", "-v", "0")
    with Receiver() as receiver:
        subscribed = manage(example_env, "subscribe", receiver.url("/ok"), "--secret", "generate")
        assert "package.status.shipped -> http://127.0.0.1:" in subscribed.stdout

        # The rolled-back shipment first: had it left an event behind, that event would be due
        # before the committed one and reach the receiver first.
        rolled_back = manage(example_env, "ship", "P-ROLLED-BACK", "--rollback")
        assert "1 event(s) published" in rolled_back.stdout
        assert "rolled back" in rolled_back.stdout and "is waiting" in rolled_back.stdout
        committed = manage(example_env, "ship", "P-COMMITTED", "--city", "İZMİR")
        assert "package P-COMMITTED shipped; 1 event(s) published" in committed.stdout

        database = tmp_path / "oms-data" / "oms.sqlite3"
        with sqlite3.connect(database) as connection:
            rows = connection.execute("SELECT request_payload FROM ulak_webhookevent").fetchall()
        assert [json.loads(row[0])["payload"]["number"] for row in rows] == ["P-COMMITTED"]

        worker = subprocess.Popen(
            [sys.executable, "-m", "django", "worker"],
            cwd=EXAMPLE,
            env=example_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            received = receiver.wait_for(1, "/ok", timeout=20)
            assert len(received) == 1, "the committed shipment was not delivered"
            # Time for more than a few polls: nothing else may arrive.
            time.sleep(1.0)
        finally:
            worker.send_signal(signal.SIGTERM)
            output, _ = worker.communicate(timeout=30)
        assert worker.returncode == 0, output

    requests = receiver.received("/ok")
    assert len(requests) == 1
    request = requests[0]
    body = request.json
    assert body["event"]["type"] == "package.status.shipped"
    assert request.header("X-Whisperer-Event") == "package.status.shipped"
    payload = body["payload"]
    assert payload["number"] == "P-COMMITTED" and payload["status"] == "shipped"
    assert payload["city"] == "İZMİR"
    assert payload["state"]["translations"]["tr-tr"]["name"] == "Kargolanmış"
    assert request.header("webhook-id") == body["event"]["uuid"]

    # The example's API (ulak.urls included in its urls.py) shows it delivered.
    script = (
        "from django.test import Client; import json; "
        "from django.contrib.auth.models import User; from ulak.models import ApiToken; "
        "token = ApiToken.create_for(User.objects.create_superuser('ops')); "
        "c = Client(HTTP_AUTHORIZATION='Token ' + token); "
        "r = c.get('/api/v1/oms/settings/webhook_events/'); "
        "print(r.status_code, json.dumps(r.json()))"
    )
    listed = manage(example_env, "shell", "-v", "0", "-c", script).stdout.strip()
    status, _, data = listed.partition(" ")
    assert status == "200"
    events = json.loads(data)["results"]
    assert [
        (event["delivered"], event["request_payload"]["payload"]["number"]) for event in events
    ] == [(True, "P-COMMITTED")]
    assert events[0]["uuid"].replace("-", "") == body["event"]["uuid"]
