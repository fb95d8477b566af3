"""Fairness: claims spread across webhooks, per-target limits, a hanging target isolated."""

from __future__ import annotations

import pytest

from tests.receivers import Receiver, deliver_due, make_events, make_webhook
from ulak.models import WebhookEvent
from ulak.queue import Queue

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("loopback_allowed"),
]


@pytest.fixture
def second_receiver():
    with Receiver() as running:
        yield running


def test_claim_takes_at_most_take_events_per_webhook():
    backlog = make_webhook("http://127.0.0.1:9/a")
    small = make_webhook("http://127.0.0.1:9/b")
    make_events(backlog, 50)
    make_events(small, 3)
    claimed = Queue().claim_due("me", limit=10, take=5, lease_seconds=30)
    by_webhook = sorted(event.webhook_id for event in claimed)
    assert by_webhook.count(backlog.id) == 5
    assert by_webhook.count(small.id) == 3
    leased = WebhookEvent.objects.filter(lease_owner="me")
    assert leased.count() == 8
    assert all(event.lease_expires_at is not None for event in leased)


def test_claims_visit_webhooks_round_robin_from_the_cursor():
    first = make_webhook("http://127.0.0.1:9/a")
    second = make_webhook("http://127.0.0.1:9/b")
    make_events(first, 20)
    make_events(second, 20)
    queue = Queue()
    claimed = queue.claim_due("me", limit=5, take=5, lease_seconds=30, cursor_webhook_id=0)
    assert {event.webhook_id for event in claimed} == {first.id}
    # The next claim starts after the last webhook served.
    claimed = queue.claim_due("me", limit=5, take=5, lease_seconds=30, cursor_webhook_id=first.id)
    assert {event.webhook_id for event in claimed} == {second.id}
    claimed = queue.claim_due("me", limit=5, take=5, lease_seconds=30, cursor_webhook_id=second.id)
    assert {event.webhook_id for event in claimed} == {first.id}


def test_claim_skips_excluded_webhooks_and_leased_rows():
    excluded = make_webhook("http://127.0.0.1:9/a")
    other = make_webhook("http://127.0.0.1:9/b")
    make_events(excluded, 3)
    make_events(other, 3)
    queue = Queue()
    claimed = queue.claim_due(
        "me", limit=10, take=10, lease_seconds=30, excluded_webhook_ids=[excluded.id]
    )
    assert {event.webhook_id for event in claimed} == {other.id}
    # Leased rows are not claimed again while the lease runs.
    assert (
        queue.claim_due(
            "you", limit=10, take=10, lease_seconds=30, excluded_webhook_ids=[excluded.id]
        )
        == []
    )


def test_events_not_yet_due_are_not_claimed():
    from datetime import timedelta

    from django.utils import timezone

    webhook = make_webhook("http://127.0.0.1:9/a")
    make_events(webhook, 2, next_attempt_at=timezone.now() + timedelta(seconds=60))
    make_events(webhook, 1, next_attempt_at=None)
    queue = Queue()
    assert queue.claim_due("me", limit=10, take=10, lease_seconds=30) == []
    next_due = queue.next_due_at()
    assert next_due is not None and 55 <= (next_due - timezone.now()).total_seconds() <= 60


def test_in_flight_attempts_per_target_are_limited(receiver):
    webhook = make_webhook(receiver.url("/slow/300"))
    make_events(webhook, 9)
    deliver_due(target_concurrency=3)
    assert len(receiver.received("/slow")) == 9
    assert receiver.max_in_progress["/slow/300"] == 3
    assert WebhookEvent.objects.filter(delivered=True).count() == 9


def test_a_hanging_target_does_not_hold_up_the_others(receiver, second_receiver):
    hanging = make_webhook(receiver.url("/hang"), config={"timeout": 1})
    healthy = make_webhook(second_receiver.url("/ok"))
    make_events(hanging, 6)
    make_events(healthy, 40)
    deliver_due(target_concurrency=2, batch_size=8)
    healthy_requests = second_receiver.received("/ok")
    hanging_requests = receiver.received("/hang")
    assert len(healthy_requests) == 40
    assert len(hanging_requests) == 6
    # Every healthy delivery happened while the first hanging attempts were still waiting
    # for their 1 s deadline.
    first_timeout = min(r.at for r in hanging_requests) + 1.0
    assert max(r.at for r in healthy_requests) < first_timeout
    assert WebhookEvent.objects.filter(webhook=healthy, delivered=True).count() == 40
    assert (
        WebhookEvent.objects.filter(webhook=hanging, response_content="Timed out after 1 s").count()
        == 6
    )


def test_a_big_backlog_does_not_starve_a_small_webhook(receiver, second_receiver):
    backlog = make_webhook(receiver.url("/ok"))
    small = make_webhook(second_receiver.url("/ok"))
    make_events(backlog, 400)
    make_events(small, 5)
    deliver_due(batch_size=32, target_concurrency=8)
    small_done = max(r.at for r in second_receiver.received("/ok"))
    backlog_times = sorted(r.at for r in receiver.received("/ok"))
    assert len(backlog_times) == 400
    # The small webhook was served within the first claims, long before the backlog ended.
    assert small_done < backlog_times[100]
