"""Bulk recovery (contract §2): POST .../undelivered_webhooks/retry/, retry requests worked
in batches, leases respected, ``schedule_retry`` and ``ulak events retry``."""

from __future__ import annotations

import datetime as dt
import io
import signal
import sys
import uuid

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management import CommandError, call_command
from django.utils import timezone

from tests.conftest import client_for, make_user
from tests.processes import running_worker, wait_until
from tests.receivers import LOOPBACK_NETWORKS, Receiver, make_events, make_webhook
from ulak.delivery.outcome import AttemptOutcome, OutcomeKind
from ulak.models import RetryRequest, Webhook, WebhookEvent
from ulak.queue import Queue, plan_record, process_retry_requests, schedule_retry, utcnow

BULK = "/api/v1/oms/settings/undelivered_webhooks/retry/"
UNDELIVERED = "/api/v1/oms/settings/undelivered_webhooks/"
TARGET = "https://hooks.example.com/erp"
FIXED = {"choice": "fixed", "kwargs": {"seconds": 60}}
# Events of these tests start "exhausted with attempts in their round", so a new round shows.
OLD_ROUND = {"next_attempt_at": None, "is_exhausted": True, "round_attempt_count": 5}


def hook(owner=None, event_type="package.created", url=TARGET, **fields):
    return Webhook.objects.create(
        owner=owner,
        retry_countdown_config=FIXED,
        target_url=url,
        event_type=event_type,
        **fields,
    )


def work_through(request_id: int | None = None, **options) -> list:
    """Run process_retry_requests until it has nothing left; the progress of every batch."""
    batches = []
    for _ in range(1000):
        progress = process_retry_requests(request_id=request_id, **options)
        if progress is None:
            return batches
        batches.append(progress)
        if progress.finished is False and not progress.walking and not progress.scheduled_now:
            return batches  # only events held by someone are left
    raise AssertionError("retry requests never finished")


def in_new_round(event: WebhookEvent, since: dt.datetime) -> bool:
    event.refresh_from_db()
    return (
        event.round_attempt_count == 0
        and event.is_exhausted is False
        and event.next_attempt_at is not None
        and since <= event.next_attempt_at <= timezone.now()
    )


def untouched(event: WebhookEvent) -> bool:
    event.refresh_from_db()
    return event.round_attempt_count == 5 and event.next_attempt_at is None


# --- the endpoint ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_matching_events_get_a_new_round_and_nothing_else_changes(user, user_client):
    shipped = hook(user, "package.status.shipped")
    other = hook(user, "package.created")
    [a, b] = make_events(shipped, 2, retry_count=5, **OLD_ROUND)
    [delivered] = make_events(shipped, delivered=True, retry_count=1, **OLD_ROUND)
    [elsewhere] = make_events(other, retry_count=5, **OLD_ROUND)
    started = timezone.now()

    response = user_client.post(BULK, {"webhook": shipped.id}, format="json")
    assert response.status_code == 202, response.content
    assert response.json() == {"scheduled": 2}
    # The answer only stored a request: the events change when a worker (here: we) works it.
    assert untouched(a) and untouched(b)
    request = RetryRequest.objects.get()
    assert (request.owner_id, request.matched, request.filters) == (
        user.id,
        2,
        {"webhook": str(shipped.id)},
    )
    assert request.requested_by == "api:alice"

    [progress] = work_through()
    assert progress.finished and progress.scheduled == 2
    assert in_new_round(a, started) and in_new_round(b, started)
    a.refresh_from_db()
    assert a.retry_count == 5  # a new round keeps the attempts made so far
    assert untouched(delivered) and untouched(elsewhere)
    request.refresh_from_db()
    assert request.finished_date is not None and request.scheduled == 2


@pytest.mark.django_db
def test_the_answer_is_202_scheduled_zero_when_nothing_matches(user, user_client):
    shipped = hook(user)
    make_events(shipped, **OLD_ROUND)
    response = user_client.post(BULK, {"event_type": "package.status.cancelled"}, format="json")
    assert (response.status_code, response.json()) == (202, {"scheduled": 0})
    assert RetryRequest.objects.count() == 0


def build_variety(owner) -> dict[str, object]:
    """Undelivered events that differ in every filtered field; returns the values used."""
    shipped = hook(owner, "package.status.shipped", url=TARGET + "/1")
    created = hook(owner, "package.created", url=TARGET + "/2")
    package_type = ContentType.objects.get_for_model(Webhook)
    now = timezone.now().replace(microsecond=0)
    rows = [
        # webhook, object_id, content type, status, retry_count, exhausted, age in days
        (shipped, 8812, package_type, 500, 18, True, 3),
        (shipped, 7, None, 404, 2, False, 2),
        (created, 7, package_type, 500, 5, False, 1),
        (created, None, None, None, 0, False, 0),
    ]
    events = []
    for webhook, object_id, content_type, status, retries, exhausted, days in rows:
        [event] = make_events(
            webhook,
            object_id=object_id,
            content_type=content_type,
            response_http_status=status,
            retry_count=retries,
            next_attempt_at=None,
            is_exhausted=exhausted,
            round_attempt_count=5,
        )
        WebhookEvent.objects.filter(pk=event.pk).update(created_date=now - dt.timedelta(days=days))
        events.append(event)
    make_events(shipped, delivered=True, **OLD_ROUND)  # never in a bulk retry
    return {
        "shipped": shipped.id,
        "package_type": package_type.id,
        "uuid": str(events[1].uuid),
        "two_days_ago": (now - dt.timedelta(days=2)).date().isoformat(),
        "moment": (now - dt.timedelta(days=1, hours=12)).isoformat(),
    }


FILTER_CASES = [
    {},
    {"event_type": "Package.Status.Shipped"},
    {"webhook": "shipped"},
    {"uuid": "uuid"},
    {"object_id": 7},
    {"content_type": "package_type"},
    {"response_http_status": 500},
    {"created_date": "two_days_ago"},
    {"created_date__gt": "two_days_ago"},
    {"created_date__gte": "two_days_ago"},
    {"created_date__lt": "two_days_ago"},
    {"created_date__lte": "two_days_ago"},
    {"created_date__gte": "moment"},
    {"retry_count__gte": 5},
    {"is_exhausted": True},
    {"is_exhausted": False},
    {"event_type": "package.created", "response_http_status": 500},
]


@pytest.mark.django_db
@pytest.mark.parametrize("case", FILTER_CASES, ids=lambda case: ",".join(case) or "none")
def test_every_filter_selects_what_the_list_shows(case, user, user_client):
    values = build_variety(user)
    body = {name: values.get(value, value) for name, value in case.items()}
    query = {
        name: str(value).lower() if isinstance(value, bool) else value
        for name, value in body.items()
    }
    listed = user_client.get(UNDELIVERED, {**query, "page_size": 100})
    assert listed.status_code == 200, listed.content
    expected = {row["id"] for row in listed.json()["results"]}

    response = user_client.post(BULK, body, format="json")
    assert response.status_code == 202, response.content
    assert response.json() == {"scheduled": len(expected)}
    work_through()
    renewed = set(WebhookEvent.objects.filter(round_attempt_count=0).values_list("id", flat=True))
    assert renewed == expected


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body, field",
    [
        ({"delivered": False}, "delivered"),
        ({"page": 2}, "page"),
        ({"webhook": "x"}, "webhook"),
        ({"webhook": 1.5}, "webhook"),
        ({"uuid": "not-a-uuid"}, "uuid"),
        ({"created_date__gte": "yesterday"}, "created_date__gte"),
        ({"is_exhausted": "maybe"}, "is_exhausted"),
        ({"event_type": ["package.created"]}, "event_type"),
        ({"object_id": {"gt": 1}}, "object_id"),
        ({"retry_count__gte": -1}, "retry_count__gte"),
        ({"confirm": "yes"}, "confirm"),
        ({"confirm": None}, "confirm"),
    ],
)
def test_bad_filters_answer_400_naming_the_field(body, field, user, user_client):
    make_events(hook(user), **OLD_ROUND)
    response = user_client.post(BULK, body, format="json")
    assert response.status_code == 400, response.content
    assert list(response.json()) == [field]
    assert isinstance(response.json()[field], list) and response.json()[field][0]
    assert RetryRequest.objects.count() == 0


@pytest.mark.django_db
def test_a_body_that_is_not_an_object_answers_400(user_client):
    response = user_client.post(BULK, [{"webhook": 1}], format="json")
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["Expected a JSON object."]}
    assert user_client.post(BULK, b"{", content_type="application/json").status_code == 400


@pytest.mark.django_db
def test_no_token_answers_401():
    from rest_framework.test import APIClient

    response = APIClient().post(BULK, {}, format="json")
    assert response.status_code == 401


def bulk_insert(webhook, count: int) -> None:
    WebhookEvent.objects.bulk_create(
        [
            WebhookEvent(
                webhook=webhook,
                uuid=uuid.uuid4(),
                request_payload="{}",
                next_attempt_at=None,
                is_exhausted=True,
                round_attempt_count=5,
            )
            for _ in range(count)
        ],
        batch_size=2000,
    )


@pytest.mark.django_db
def test_more_than_10000_matches_need_confirm_and_are_worked_in_batches(user, user_client):
    webhook = hook(user)
    bulk_insert(webhook, 10_000)
    assert user_client.post(BULK, {}, format="json").json() == {"scheduled": 10_000}
    RetryRequest.objects.all().delete()
    bulk_insert(webhook, 1)

    refused = user_client.post(BULK, {"webhook": webhook.id}, format="json")
    assert refused.status_code == 400
    [message] = refused.json()["confirm"]
    assert "10001" in message and '"confirm": true' in message
    assert user_client.post(BULK, {"confirm": False}, format="json").status_code == 400
    assert RetryRequest.objects.count() == 0

    accepted = user_client.post(BULK, {"webhook": webhook.id, "confirm": True}, format="json")
    assert (accepted.status_code, accepted.json()) == (202, {"scheduled": 10_001})
    first = process_retry_requests()
    # One bounded batch per transaction, walking ids upwards.
    assert (first.scheduled_now, first.walking, first.finished) == (2000, True, False)
    assert WebhookEvent.objects.filter(round_attempt_count=0).count() == 2000
    rest = work_through()
    assert [batch.scheduled_now for batch in rest] == [2000, 2000, 2000, 2000, 1]
    assert rest[-1].finished and rest[-1].scheduled == 10_001
    assert WebhookEvent.objects.filter(round_attempt_count=0, is_exhausted=False).count() == 10_001


@pytest.mark.django_db
def test_events_published_after_the_request_are_not_swept_in(user, user_client):
    webhook = hook(user)
    [before] = make_events(webhook, **OLD_ROUND)
    assert user_client.post(BULK, {}, format="json").json() == {"scheduled": 1}
    [after] = make_events(webhook, **OLD_ROUND)
    work_through()
    assert before.refresh_from_db() or before.round_attempt_count == 0
    assert untouched(after)


@pytest.mark.django_db
def test_a_bulk_retry_stays_within_its_owner_and_a_superuser_reaches_all(user, user_client):
    alices = hook(user)
    bob = make_user("bob")
    bobs = hook(bob)
    [alice_event] = make_events(alices, **OLD_ROUND)
    [bob_event] = make_events(bobs, **OLD_ROUND)
    bob_client = client_for(bob)
    assert bob_client.post(BULK, {"webhook": alices.id}, format="json").json() == {"scheduled": 0}
    assert bob_client.post(BULK, {}, format="json").json() == {"scheduled": 1}
    work_through()
    assert untouched(alice_event) and not untouched(bob_event)

    root = client_for(make_user("root", superuser=True))
    assert root.post(BULK, {}, format="json").json() == {"scheduled": 2}
    assert RetryRequest.objects.order_by("-id").first().owner_id is None
    work_through()
    assert not untouched(alice_event)


# --- leases: the worker's outcome never undoes a new round -------------------------------------


def lease_due_events(owner: str) -> list:
    return Queue().claim_due(owner, limit=100, take=100, lease_seconds=30)


def failed_outcome() -> AttemptOutcome:
    return AttemptOutcome(
        started_at=utcnow(), duration=0.01, kind=OutcomeKind.FAILED_HTTP, status=500, body=b"no"
    )


@pytest.mark.django_db
def test_an_event_held_by_a_worker_is_deferred_until_its_outcome_is_recorded(user, user_client):
    webhook = hook(user, config={"max_retry_count": 1})
    [free] = make_events(webhook, **OLD_ROUND)
    [held] = make_events(webhook)  # due now: the worker below claims it
    [claimed] = lease_due_events("worker-a")
    assert claimed.id == held.id
    started = timezone.now()

    assert user_client.post(BULK, {}, format="json").json() == {"scheduled": 2}
    progress = process_retry_requests()
    assert (progress.scheduled, progress.deferred, progress.finished) == (1, 1, False)
    assert progress.walking is False
    assert in_new_round(free, started)
    held.refresh_from_db()
    assert held.lease_owner == "worker-a" and held.round_attempt_count == 0
    assert RetryRequest.objects.get().deferred_ids == [held.id]
    # While the lease runs, visiting again changes nothing.
    assert process_retry_requests().scheduled_now == 0

    # The worker's attempt failed and exhausted the event: it records that, under its lease.
    queue = Queue()
    settings = queue.load_webhooks([webhook.id])[webhook.id]
    record = plan_record(
        claimed, settings, failed_outcome(), automatic=True, finished_at=utcnow(), store_limit=100
    )
    assert record.is_exhausted
    assert queue.record_outcomes("worker-a", [record]) == 1
    held.refresh_from_db()
    assert held.is_exhausted and held.lease_owner is None

    # Now the deferred event gets its round: the outcome did not undo it, it came before it.
    after_record = timezone.now()
    progress = process_retry_requests()
    assert (progress.scheduled_now, progress.finished, progress.scheduled) == (1, True, 2)
    assert in_new_round(held, after_record)
    assert held.retry_count == 1 and held.response_http_status == 500


@pytest.mark.django_db
def test_an_expired_lease_is_cleared_so_a_late_outcome_writes_nothing(user, user_client):
    webhook = hook(user)
    [event] = make_events(webhook)
    [claimed] = lease_due_events("worker-slow")
    WebhookEvent.objects.filter(pk=event.pk).update(
        lease_expires_at=timezone.now() - dt.timedelta(seconds=1), next_attempt_at=None
    )
    started = timezone.now()
    assert user_client.post(BULK, {}, format="json").json() == {"scheduled": 1}
    [progress] = work_through()
    assert progress.finished and progress.scheduled == 1
    assert in_new_round(event, started)
    assert event.lease_owner is None and event.lease_expires_at is None
    # The slow worker comes back with its outcome: its lease is gone, nothing is written.
    queue = Queue()
    settings = queue.load_webhooks([webhook.id])[webhook.id]
    record = plan_record(
        claimed, settings, failed_outcome(), automatic=True, finished_at=utcnow(), store_limit=100
    )
    assert queue.record_outcomes("worker-slow", [record]) == 0
    assert in_new_round(event, started) and event.retry_count == 0


@pytest.mark.django_db
def test_schedule_retry_skips_delivered_and_defers_held_events(user):
    webhook = hook(user)
    [free, delivered] = make_events(webhook, 2, **OLD_ROUND)
    WebhookEvent.objects.filter(pk=delivered.pk).update(delivered=True)
    [held] = make_events(webhook)
    lease_due_events("worker-a")
    started = timezone.now()

    count = schedule_retry([free.id, delivered.id, held.id, 987654321], requested_by="admin:x")
    assert count == 2
    assert in_new_round(free, started)
    assert untouched(delivered)
    request = RetryRequest.objects.get()
    assert (request.deferred_ids, request.requested_by) == ([held.id], "admin:x")
    assert schedule_retry([]) == 0

    Queue().release_events("worker-a", [held.id])
    after = timezone.now()
    progress = process_retry_requests()
    assert progress.finished and progress.scheduled_now == 1
    assert in_new_round(held, after)


@pytest.mark.django_db
def test_schedule_retry_works_large_inputs_in_bounded_transactions(user):
    webhook = hook(user)
    bulk_insert(webhook, 4500)
    ids = list(WebhookEvent.objects.values_list("id", flat=True))
    assert schedule_retry(ids) == 4500
    assert WebhookEvent.objects.filter(round_attempt_count=0, is_exhausted=False).count() == 4500


# --- ulak events retry -------------------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.django_db
def test_the_command_retries_by_filters_with_a_progress_bar(user, monkeypatch):
    shipped = hook(user, "package.status.shipped")
    other = hook(user, "package.created")
    make_events(shipped, 3, **OLD_ROUND)
    [kept] = make_events(other, **OLD_ROUND)
    [not_exhausted] = make_events(shipped, next_attempt_at=None, round_attempt_count=5)
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    output = io.StringIO()
    call_command(
        "events", "retry", "--event-type", "package.status.shipped", "--exhausted", stdout=output
    )
    assert output.getvalue().strip() == "scheduled 3 event(s) for a new round"
    assert "scheduling [" in terminal.getvalue() and "3/3" in terminal.getvalue()
    assert WebhookEvent.objects.filter(webhook=shipped, round_attempt_count=0).count() == 3
    assert untouched(kept) and untouched(not_exhausted)
    request = RetryRequest.objects.get()
    assert request.requested_by == "cli" and request.finished_date is not None

    output = io.StringIO()
    call_command(
        "events", "retry", "--webhook", str(other.id), "--since", "2000-01-01", stdout=output
    )
    assert "scheduled 1 event(s)" in output.getvalue()
    output = io.StringIO()
    call_command("events", "retry", "--status", "599", stdout=output)
    assert "nothing to retry" in output.getvalue()
    with pytest.raises(CommandError, match="created_date__gte"):
        call_command("events", "retry", "--since", "last week")


# --- end to end: a target that fails, then recovers --------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_bulk_retry_recovers_events_a_failing_target_exhausted(
    settings, subprocess_env, user, user_client
):
    settings.ULAK_ALLOWED_NETWORKS = LOOPBACK_NETWORKS
    with Receiver() as receiver:
        # The target fails the first two requests of every event, then works again.
        webhook = make_webhook(
            receiver.url("/sometimes-500/2"),
            owner=user,
            retry_countdown_config={"choice": "fixed", "kwargs": {"seconds": 0}},
            config={"max_retry_count": 2},
        )
        events = make_events(webhook, 5)
        env = {**subprocess_env, "ULAK_POLL_INTERVAL": "0.1", "ULAK_HEARTBEAT_SECONDS": "0.5"}
        with running_worker(env) as worker:
            exhausted = WebhookEvent.objects.filter(is_exhausted=True, delivered=False)
            wait_until(lambda: exhausted.count() == 5, 30, "the events to exhaust")
            assert len(receiver.received()) == 10
            listed = user_client.get(UNDELIVERED, {"is_exhausted": "true"}).json()
            assert listed["count"] == 5

            response = user_client.post(
                BULK, {"webhook": webhook.id, "is_exhausted": True}, format="json"
            )
            assert (response.status_code, response.json()) == (202, {"scheduled": 5})
            delivered = WebhookEvent.objects.filter(delivered=True)
            wait_until(lambda: delivered.count() == 5, 30, "the bulk retry to deliver")
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(20) == 0
    for event in events:
        event.refresh_from_db()
        assert event.retry_count == 3 and event.is_exhausted is False
        assert event.response_content == "b'ok at last'"
    assert sorted(receiver.uuids()) == sorted([event.uuid.hex for event in events] * 3)
    assert RetryRequest.objects.get().finished_date is not None
