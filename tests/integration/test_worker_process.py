"""``ulak worker`` as a process: SIGKILL loses nothing, SIGTERM drains, NOTIFY wakes it,
two workers never send one event at once, and it survives its connections being killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest
from django.db import connection

from tests.processes import wait_until
from tests.receivers import make_events, make_webhook
from ulak.models import WebhookEvent, WorkerHeartbeat

pytestmark = pytest.mark.django_db(transaction=True)


class WorkerProcess:
    """``python -m django worker`` with the test's database, its output kept in a file."""

    def __init__(self, env: dict[str, str], **settings: object):
        self.env = {**env, **{name: str(value) for name, value in settings.items()}}
        self.log = tempfile.NamedTemporaryFile(prefix="ulak-worker-", suffix=".log", delete=False)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "django", "worker"],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        with open(self.log.name, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def signal(self, signum: int) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.log.close()
        os.unlink(self.log.name)


@pytest.fixture
def workers(subprocess_env):
    started: list[WorkerProcess] = []

    def start(**settings: object) -> WorkerProcess:
        settings.setdefault("ULAK_POLL_INTERVAL", 0.1)
        worker = WorkerProcess(subprocess_env, **settings)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def delivered_count() -> int:
    return WebhookEvent.objects.filter(delivered=True).count()


def test_sigkill_mid_batch_loses_nothing(receiver, workers):
    webhook = make_webhook(receiver.url("/slow/100"), config={"timeout": 1})
    events = make_events(webhook, 60)
    settings = {"ULAK_LEASE_SECONDS": 2, "ULAK_TARGET_CONCURRENCY": 4, "ULAK_WORKER_BATCH_SIZE": 8}
    for _ in range(3):
        already = len(receiver.received())
        worker = workers(**settings)
        # Kill it while it has attempts in flight (a few more requests have arrived).
        wait_until(lambda: len(receiver.received()) >= already + 6, 30, "requests")  # noqa: B023
        worker.signal(signal.SIGKILL)
        assert worker.wait(10) == -signal.SIGKILL, worker.output()
    leased = WebhookEvent.objects.filter(lease_owner__isnull=False, delivered=False).count()
    assert leased > 0  # the killed workers left leases behind
    survivor = workers(**settings)
    wait_until(lambda: delivered_count() == len(events), 60, "every event delivered")
    received = set(receiver.uuids())
    assert received == {event.uuid.hex for event in events}
    # No event was sent twice at the same time, even across the killed workers' expired leases.
    assert receiver.overlaps == []
    survivor.signal(signal.SIGTERM)
    assert survivor.wait(15) == 0, survivor.output()
    assert WebhookEvent.objects.filter(lease_owner__isnull=False).count() == 0


def test_sigterm_drains_in_flight_attempts_and_releases_the_rest(receiver, workers):
    webhook = make_webhook(receiver.url("/slow/1500"), config={"timeout": 5})
    events = make_events(webhook, 6)
    worker = workers(ULAK_TARGET_CONCURRENCY=2, ULAK_DRAIN_SECONDS=4)
    wait_until(lambda: len(receiver.received()) >= 2, 20, "two attempts in flight")
    # Two in flight (the per-target limit) and more claimed, waiting for a free lane.
    leased = WebhookEvent.objects.filter(lease_owner__isnull=False)
    wait_until(lambda: leased.count() >= 4, 20, "more events claimed")
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0, worker.output()
    assert len(receiver.received()) == 2  # nothing new started after SIGTERM
    rows = WebhookEvent.objects.filter(pk__in=[event.pk for event in events])
    assert rows.filter(delivered=True).count() == 2  # the two in flight finished and were recorded
    assert rows.filter(retry_count=0).count() == 4  # the others were never attempted
    assert rows.filter(lease_owner__isnull=False).count() == 0  # ... and are free again
    [heartbeat] = WorkerHeartbeat.objects.all()
    assert heartbeat.pid == worker.process.pid
    assert heartbeat.stats["delivered"] == 2
    # Everything claimed but not started was given back.
    assert heartbeat.stats["released"] >= 2
    assert heartbeat.stats["released"] == heartbeat.stats["claimed"] - 2


def test_sigterm_gives_up_on_attempts_past_the_drain_deadline(receiver, workers):
    webhook = make_webhook(receiver.url("/hang"), config={"timeout": 30})
    [event] = make_events(webhook)
    worker = workers(ULAK_DRAIN_SECONDS=1)
    wait_until(lambda: len(receiver.received()) == 1, 20, "the attempt in flight")
    started = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0, worker.output()
    assert time.monotonic() - started < 8
    event.refresh_from_db()
    assert (event.retry_count, event.lease_owner, event.lease_expires_at) == (0, None, None)
    assert event.next_attempt_at is not None


@pytest.mark.postgres_only
def test_notify_wakes_the_worker_long_before_its_poll(receiver, workers):
    import ulak

    make_webhook(receiver.url("/ok"))
    worker = workers(ULAK_POLL_INTERVAL=60)
    wait_until(lambda: WorkerHeartbeat.objects.exists(), 20, "the worker's first heartbeat")
    time.sleep(0.5)  # its first claim found nothing: now it sleeps for a minute
    [event] = ulak.publish("package.created", {"id": 1})
    found = receiver.wait_for(1, timeout=10)
    assert [r.json["event"]["uuid"] for r in found] == [event.uuid.hex], worker.output()


@pytest.mark.postgres_only
def test_two_workers_never_attempt_one_event_at_once(receiver, workers):
    hooks = [make_webhook(receiver.url(f"/slow/{20 + index}")) for index in range(3)]
    events = [event for hook in hooks for event in make_events(hook, 100)]
    first = workers(ULAK_WORKER_BATCH_SIZE=16, ULAK_TARGET_CONCURRENCY=8)
    second = workers(ULAK_WORKER_BATCH_SIZE=16, ULAK_TARGET_CONCURRENCY=8)
    wait_until(lambda: delivered_count() == len(events), 60, "every event delivered")
    assert receiver.overlaps == []
    assert sorted(receiver.uuids()) == sorted(event.uuid.hex for event in events)  # once each
    for worker in (first, second):
        worker.signal(signal.SIGTERM)
        assert worker.wait(15) == 0, worker.output()
    stats = [heartbeat.stats for heartbeat in WorkerHeartbeat.objects.all()]
    assert sum(s.get("delivered", 0) for s in stats) == len(events)


@pytest.mark.postgres_only
def test_worker_survives_its_database_connections_being_killed(receiver, workers):
    webhook = make_webhook(receiver.url("/ok"))
    make_events(webhook, 10)
    worker = workers()
    wait_until(lambda: delivered_count() == 10, 30, "the first events delivered")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        assert cursor.fetchone()[0] >= 1
    make_events(webhook, 10)
    wait_until(lambda: delivered_count() == 20, 30, "the events made after the outage")
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0, worker.output()
    assert "database unavailable" in worker.output() or "LISTEN connection lost" in worker.output()
