"""``ulak purge``: a large table purged in bounded batches while a worker delivers."""

from __future__ import annotations

import datetime as dt
import io
import signal
import time
import uuid

import pytest
from django.core.management import call_command
from django.utils import timezone

from tests.processes import running_worker, wait_until
from tests.receivers import Receiver, make_events, make_webhook
from ulak.maintenance import purge_events
from ulak.models import WebhookEvent

pytestmark = pytest.mark.django_db(transaction=True)

OLD_DELIVERED = 20_000


def insert_old(webhook, count: int, *, delivered: bool, days: int = 10) -> None:
    WebhookEvent.objects.bulk_create(
        [
            WebhookEvent(
                webhook=webhook,
                uuid=uuid.uuid4(),
                request_payload='{"event":{},"payload":{}}',
                delivered=delivered,
                next_attempt_at=None,
                is_exhausted=not delivered,
                retry_count=1,
            )
            for _ in range(count)
        ],
        batch_size=2000,
    )
    WebhookEvent.objects.filter(created_date__gte=timezone.now() - dt.timedelta(minutes=5)).filter(
        delivered=delivered, next_attempt_at__isnull=True
    ).update(created_date=timezone.now() - dt.timedelta(days=days))


def test_purge_in_batches_while_the_worker_delivers(subprocess_env):
    with Receiver() as receiver:
        archive = make_webhook("https://archive.example.com/hook")
        insert_old(archive, OLD_DELIVERED, delivered=True)
        insert_old(archive, 30, delivered=False)
        [recent] = make_events(archive, delivered=True, next_attempt_at=None)
        [held] = make_events(archive, next_attempt_at=None)
        WebhookEvent.objects.filter(pk=held.pk).update(
            created_date=timezone.now() - dt.timedelta(days=10),
            lease_owner="worker-x",
            lease_expires_at=timezone.now() + dt.timedelta(minutes=5),
        )

        live = make_webhook(receiver.url("/slow/40"))
        fresh = make_events(live, 120)
        env = {**subprocess_env, "ULAK_POLL_INTERVAL": "0.1", "ULAK_TARGET_CONCURRENCY": "4"}
        with running_worker(env) as worker:
            wait_until(lambda: len(receiver.received()) >= 10, 30, "the worker to start")
            batches: list[int] = []
            started = time.time()
            deleted = purge_events(
                7, batch_size=2000, on_progress=lambda done, total: batches.append(done)
            )
            finished = time.time()
            assert deleted == OLD_DELIVERED
            # Bounded batches: never more than the batch size in one transaction.
            steps = [b - a for a, b in zip([0, *batches], batches, strict=False)]
            assert len(steps) == OLD_DELIVERED // 2000 and max(steps) == 2000
            # The worker was not blocked: it delivered while the purge ran, and finishes.
            during = [r for r in receiver.received() if started <= r.at <= finished]
            assert during, "no delivery while the purge ran"
            delivered = WebhookEvent.objects.filter(webhook=live, delivered=True)
            wait_until(lambda: delivered.count() == len(fresh), 60, "every new event delivered")
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(20) == 0
        assert sorted(receiver.uuids()) == sorted(event.uuid.hex for event in fresh)

    old = WebhookEvent.objects.filter(created_date__lt=timezone.now() - dt.timedelta(days=7))
    assert old.filter(delivered=True).count() == 0
    assert old.filter(delivered=False).count() == 31  # undelivered are kept by default
    assert WebhookEvent.objects.filter(pk=recent.pk).exists()  # too young

    output = io.StringIO()
    call_command("purge", "--older-than", "7", "--include-undelivered", stdout=output)
    assert output.getvalue().strip() == "deleted 30 event(s)"
    # The one a worker holds right now stays: its attempt is in flight.
    assert list(old.values_list("id", flat=True)) == [held.id]
    assert WebhookEvent.objects.filter(webhook=live).count() == len(fresh)
