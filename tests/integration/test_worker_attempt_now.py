"""attempt_event_now: the API's one-event retry through the worker's sender and recording."""

from __future__ import annotations

import datetime
import threading

import pytest
from django.utils import timezone

from tests.receivers import make_events, make_webhook
from ulak.delivery import EventBusy, EventNotFound, attempt_event_now
from ulak.models import WebhookEvent

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("loopback_allowed"),
]


def test_delivered_attempt_is_recorded_and_reported(receiver):
    webhook = make_webhook(receiver.url("/ok"), secret_key="s")
    [event] = make_events(webhook, next_attempt_at=None, is_exhausted=True, retry_count=18)
    result = attempt_event_now(event.id)
    assert result.delivered is True
    assert result.status == 200
    assert result.content == "ok"
    assert result.duration > 0
    assert result.recorded is True
    event.refresh_from_db()
    assert event.delivered is True
    assert event.response_content == "b'ok'"
    assert event.retry_count == 19
    assert len(event.request_datetimes) == 1
    assert event.lease_owner is None
    assert len(receiver.received("/ok")) == 1


def test_failed_attempt_counts_but_leaves_the_schedule(receiver):
    webhook = make_webhook(receiver.url("/status/500"))
    due = timezone.now() + datetime.timedelta(seconds=300)
    [event] = make_events(webhook, next_attempt_at=due, round_attempt_count=2, retry_count=2)
    result = attempt_event_now(event.id)
    assert (result.delivered, result.status, result.content) == (
        False,
        500,
        "500 Internal Server Error",
    )
    event.refresh_from_db()
    assert event.response_content == "b'500 Internal Server Error'"
    assert event.retry_count == 3
    assert event.round_attempt_count == 2
    assert event.next_attempt_at == due
    assert event.is_exhausted is False


def test_network_failure_reports_the_one_line_reason(receiver):
    webhook = make_webhook(receiver.url("/hang"), config={"timeout": 0.3})
    [event] = make_events(webhook)
    result = attempt_event_now(event.id)
    assert (result.delivered, result.status, result.content) == (
        False,
        None,
        "Timed out after 0.3 s",
    )


def test_an_event_leased_by_a_worker_is_not_sent(receiver):
    webhook = make_webhook(receiver.url("/ok"))
    [event] = make_events(webhook)
    WebhookEvent.objects.filter(pk=event.pk).update(
        lease_owner="worker-1", lease_expires_at=timezone.now() + datetime.timedelta(seconds=30)
    )
    with pytest.raises(EventBusy):
        attempt_event_now(event.id)
    assert receiver.received() == []


def test_missing_event():
    with pytest.raises(EventNotFound):
        attempt_event_now(987654321)


def test_two_concurrent_retries_never_both_send(receiver):
    webhook = make_webhook(receiver.url("/slow/400"))
    [event] = make_events(webhook)
    outcomes: list[object] = []
    barrier = threading.Barrier(2)

    def retry() -> None:
        from django.db import connections

        barrier.wait()
        try:
            outcomes.append(attempt_event_now(event.id))
        except EventBusy as error:
            outcomes.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=retry) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(outcomes) == 2
    assert sum(isinstance(outcome, EventBusy) for outcome in outcomes) == 1
    assert len(receiver.received("/slow")) == 1
    event.refresh_from_db()
    assert event.retry_count == 1 and event.delivered is True
