"""Exhaustion: real exhausted events in ``?is_exhausted=``, and the ``webhook_event.exhausted``
notice published with the outcome, to the right webhooks, never about itself. Also the
worker's attempt-duration histogram in its heartbeat."""

from __future__ import annotations

import json

import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook

from tests.conftest import make_user
from tests.receivers import deliver_due, make_events, make_webhook
from ulak.delivery import attempt_event_now
from ulak.delivery.outcome import AttemptOutcome, OutcomeKind
from ulak.events import EXHAUSTED_EVENT_TYPE
from ulak.metrics import DURATION_BUCKETS
from ulak.models import WebhookEvent, WorkerHeartbeat
from ulak.queue import Queue, plan_record, utcnow

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("loopback_allowed"),
]

UNDELIVERED = "/api/v1/oms/settings/undelivered_webhooks/"
NOW = {"choice": "fixed", "kwargs": {"seconds": 0}}
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def failing_webhook(receiver, owner=None, tries: int = 2, **fields):
    return make_webhook(
        receiver.url("/status/503"),
        owner=owner,
        retry_countdown_config=NOW,
        config={"max_retry_count": tries},
        **fields,
    )


def subscriber(receiver, path: str, owner=None, **fields):
    return make_webhook(receiver.url(path), owner=owner, event_type=EXHAUSTED_EVENT_TYPE, **fields)


def notices() -> list[WebhookEvent]:
    return list(
        WebhookEvent.objects.filter(webhook__event_type=EXHAUSTED_EVENT_TYPE).order_by("id")
    )


def test_the_is_exhausted_filter_finds_events_whose_attempts_ran_out(receiver, user, user_client):
    webhook = failing_webhook(receiver, owner=user)
    exhausted = make_events(webhook, 2)
    patient = make_webhook(receiver.url("/status/500"), owner=user)  # 60 s between attempts
    [waiting] = make_events(patient)
    deliver_due()
    for event in exhausted:
        event.refresh_from_db()
        assert event.is_exhausted and event.retry_count == 2 and event.next_attempt_at is None
    waiting.refresh_from_db()
    assert not waiting.is_exhausted and waiting.retry_count == 1

    def ids(query: str) -> list[int]:
        response = user_client.get(f"{UNDELIVERED}?{query}")
        assert response.status_code == 200, response.content
        return [row["id"] for row in response.json()["results"]]

    assert ids("is_exhausted=true") == sorted((e.id for e in exhausted), reverse=True)
    assert ids("is_exhausted=false") == [waiting.id]
    assert ids(f"is_exhausted=true&webhook={patient.id}") == []
    assert user_client.get(f"{UNDELIVERED}?is_exhausted=perhaps").status_code == 400


def test_an_exhausted_event_is_announced_to_subscribers(receiver, user):
    webhook = failing_webhook(receiver, owner=user)
    [event] = make_events(webhook)
    watcher = subscriber(receiver, "/ok", owner=user, secret_key=SECRET)
    deliver_due()  # two failed attempts, then the notice is due and goes out too

    event.refresh_from_db()
    assert event.is_exhausted
    [notice] = notices()
    assert notice.webhook_id == watcher.id
    assert (notice.object_id, notice.content_type.model) == (event.id, "webhookevent")
    assert notice.delivered is True
    [request] = receiver.received("/ok")
    StandardWebhook(SECRET).verify(request.body, request.headers)
    assert request.header("X-Whisperer-Event") == EXHAUSTED_EVENT_TYPE
    body = json.loads(request.body)
    assert body["event"] == {"type": EXHAUSTED_EVENT_TYPE, "uuid": notice.uuid.hex}
    assert body["payload"] == {
        "id": event.id,
        "uuid": str(event.uuid),
        "webhook": webhook.id,
        "event_type": webhook.event_type,
        "target_url": webhook.target_url,
        "response_http_status": 503,
        "retry_count": 2,
    }
    # The body is encoded as publishing encodes it: compact, keys in order, exactly stored.
    assert request.body.decode() == notice.request_payload
    assert notice.request_payload == json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def test_notices_go_only_to_webhooks_that_may_see_the_event(receiver, user):
    webhook = failing_webhook(receiver, owner=user)
    make_events(webhook)
    own = subscriber(receiver, "/ok/own", owner=user)
    other = subscriber(receiver, "/ok/other", owner=make_user("bob"))
    operator = subscriber(receiver, "/ok/root", owner=make_user("root", superuser=True))
    ownerless = subscriber(receiver, "/ok/ownerless")
    subscriber(receiver, "/ok/inactive", owner=user, is_active=False)
    make_webhook(receiver.url("/ok/other-type"), owner=user, event_type="package.status.shipped")
    deliver_due()
    assert {notice.webhook_id for notice in notices()} == {own.id, operator.id, ownerless.id}
    assert other.id not in {notice.webhook_id for notice in notices()}
    paths = sorted(request.path for request in receiver.received("/ok"))
    assert paths == ["/ok/own", "/ok/ownerless", "/ok/root"]


def test_an_exhausted_notice_announces_nothing(receiver, user):
    """A subscriber whose own target fails: its notice exhausts too, and that is the end."""
    webhook = failing_webhook(receiver, owner=user)
    make_events(webhook)
    broken = make_webhook(
        receiver.url("/status/500"),
        owner=user,
        event_type=EXHAUSTED_EVENT_TYPE,
        retry_countdown_config=NOW,
        config={"max_retry_count": 1},
    )
    deliver_due()
    [notice] = notices()
    assert notice.webhook_id == broken.id
    assert notice.is_exhausted and not notice.delivered
    assert WebhookEvent.objects.count() == 2  # the event and its one notice, nothing more


def test_a_manual_retry_of_an_exhausted_event_is_no_news(receiver, user):
    webhook = failing_webhook(receiver, owner=user)
    [event] = make_events(webhook)
    deliver_due()
    subscriber(receiver, "/ok", owner=user)  # subscribed after the event exhausted
    result = attempt_event_now(event.id)
    assert result.delivered is False
    event.refresh_from_db()
    assert event.retry_count == 3 and event.is_exhausted
    assert notices() == []


def test_no_notice_when_the_outcome_is_not_ours_to_write(receiver, user):
    """The notice is written with the outcome, in its transaction: a worker whose lease was
    taken over records nothing, and announces nothing."""
    webhook = failing_webhook(receiver, owner=user, tries=1)
    subscriber(receiver, "/ok", owner=user)
    [event] = make_events(webhook)
    queue = Queue()
    [claimed] = queue.claim_due("worker-a", limit=10, take=10, lease_seconds=30)
    WebhookEvent.objects.filter(pk=event.pk).update(lease_owner="worker-b")  # taken over
    settings = queue.load_webhooks([webhook.id])[webhook.id]
    outcome = AttemptOutcome(
        started_at=utcnow(), duration=0.01, kind=OutcomeKind.FAILED_HTTP, status=500, body=b""
    )
    record = plan_record(
        claimed, settings, outcome, automatic=True, finished_at=utcnow(), store_limit=100
    )
    assert record.is_exhausted
    assert queue.record_outcomes("worker-a", [record]) == 0
    assert notices() == []
    # The rightful holder records it: now the notice comes, once.
    assert queue.record_outcomes("worker-b", [record]) == 1
    assert len(notices()) == 1


def test_the_worker_reports_an_attempt_duration_histogram(receiver):
    webhook = make_webhook(receiver.url("/slow/60"))
    make_events(webhook, 3)
    fast = make_webhook(receiver.url("/ok"))
    make_events(fast, 2)
    worker = deliver_due()
    stats = worker.stats
    assert stats["delivered"] == 5
    assert stats["duration_count"] == 5
    buckets = stats["duration_buckets"]
    assert list(buckets) == [str(bound) for bound in DURATION_BUCKETS]
    counts = [buckets[str(bound)] for bound in DURATION_BUCKETS]
    assert counts == sorted(counts)  # cumulative
    assert buckets["0.05"] <= 2 and buckets["10.0"] == 5  # the slow ones took over 60 ms
    assert 0.18 <= stats["duration_sum"] < 10
    # The heartbeat carries it to /metrics.
    heartbeat = WorkerHeartbeat.objects.get(name=worker.name)
    assert heartbeat.stats["duration_count"] == 5
    assert heartbeat.stats["duration_buckets"]["10.0"] == 5
