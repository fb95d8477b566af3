"""POST .../{id}/retry/ (contract §2): the rules, the codes, one real attempt, never two at once."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connections
from django.utils import timezone
from standardwebhooks.webhooks import Webhook as StandardWebhook

from tests.conftest import client_for, make_user
from tests.receivers import make_events, make_webhook
from ulak.models import WebhookEvent

UNDELIVERED = "/api/v1/oms/settings/undelivered_webhooks/"
EVENTS = "/api/v1/oms/settings/webhook_events/"
WHISPERER = "/whisperer/hook_events/"
BASES = [UNDELIVERED, EVENTS, WHISPERER]
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("loopback_allowed"),
]


@pytest.fixture
def alice():
    return make_user("alice")


@pytest.fixture
def alice_client(alice):
    return client_for(alice)


def exhausted_event(webhook, **fields):
    fields = {"next_attempt_at": None, "is_exhausted": True, "retry_count": 3, **fields}
    [event] = make_events(webhook, **fields)
    return event


def retry(client, base, event, body=None):
    return client.post(f"{base}{event.id}/retry/", body if body is not None else {}, format="json")


@pytest.mark.parametrize("base", BASES)
def test_an_exhausted_event_is_attempted_once_and_answers_200(base, receiver, alice, alice_client):
    webhook = make_webhook(receiver.url("/ok"), owner=alice, secret_key=SECRET)
    event = exhausted_event(webhook, retry_count=18, round_attempt_count=18)
    response = retry(alice_client, base, event)
    assert response.status_code == 200, response.content
    body = response.json()
    assert list(body) == [
        "detail",
        "response_status",
        "response_content",
        "delivered",
        "response_time",
    ]
    assert body["detail"] == "Webhook event delivered successfully"
    assert body["response_status"] == 200
    assert body["response_content"] == "ok"  # the body as text; the stored field keeps bytes
    assert body["delivered"] is True
    assert isinstance(body["response_time"], str) and float(body["response_time"]) > 0
    # One request, signed like every attempt (the worker's sender), with the stored body.
    [request] = receiver.received("/ok")
    StandardWebhook(SECRET).verify(request.body, request.headers)
    assert request.body.decode() == event.request_payload
    event.refresh_from_db()
    assert event.delivered is True
    assert event.response_content == "b'ok'"
    assert event.retry_count == 19 and len(event.request_datetimes) == 1
    assert event.lease_owner is None and event.next_attempt_at is None


@pytest.mark.parametrize("base", BASES)
def test_a_failed_attempt_answers_406_with_the_outcome(base, receiver, alice, alice_client):
    webhook = make_webhook(receiver.url("/status/500"), owner=alice)
    event = exhausted_event(webhook)
    response = retry(alice_client, base, event, {"force": False})
    assert response.status_code == 406, response.content
    body = response.json()
    assert body["detail"] == "Webhook event delivery failed"
    assert (body["response_status"], body["response_content"], body["delivered"]) == (
        500,
        "500 Internal Server Error",
        False,
    )
    float(body["response_time"])
    event.refresh_from_db()
    assert event.response_content == "b'500 Internal Server Error'"
    assert event.response_http_status == 500
    assert event.retry_count == 4  # the manual attempt counts
    assert event.is_exhausted is True and event.next_attempt_at is None  # schedule unchanged
    assert len(receiver.received("/status")) == 1


def test_no_http_answer_gives_a_null_status_and_the_reason(alice, alice_client):
    webhook = make_webhook("http://127.0.0.1:9/closed", owner=alice)  # nothing listens on 9
    event = exhausted_event(webhook)
    response = retry(alice_client, UNDELIVERED, event)
    assert response.status_code == 406
    body = response.json()
    assert body["response_status"] is None and body["delivered"] is False
    assert body["response_content"]  # one line saying what happened
    assert "\n" not in body["response_content"]


@pytest.mark.parametrize("base", BASES)
def test_a_delivered_event_answers_406_event_100_3(base, receiver, alice, alice_client):
    webhook = make_webhook(receiver.url("/ok"), owner=alice)
    [event] = make_events(webhook, delivered=True, next_attempt_at=None, retry_count=1)
    for body in ({}, {"force": True}):
        response = retry(alice_client, base, event, body)
        assert response.status_code == 406
        assert response.json() == {"code": "event_100_3", "en": "Event already delivered"}
    assert receiver.received() == []


@pytest.mark.parametrize("base", BASES)
def test_an_event_in_automatic_retries_needs_force(base, receiver, alice, alice_client):
    webhook = make_webhook(receiver.url("/ok"), owner=alice)
    due = timezone.now() + dt.timedelta(minutes=5)
    [event] = make_events(webhook, next_attempt_at=due, retry_count=2, round_attempt_count=2)
    for body in ({}, {"force": False}, None):
        response = alice_client.post(f"{base}{event.id}/retry/", body, format="json")
        assert response.status_code == 406
        assert response.json() == {"code": "event_100_6", "en": "Event is still in retry process"}
    assert receiver.received() == []
    response = retry(alice_client, base, event, {"force": True})
    assert response.status_code == 200, response.content
    assert len(receiver.received("/ok")) == 1
    event.refresh_from_db()
    assert event.delivered is True and event.retry_count == 3


@pytest.mark.parametrize(
    "body, field",
    [
        ({"force": "yes"}, "force"),
        ({"force": 1}, "force"),
        ({"force": None}, "force"),
        ({"force": [True]}, "force"),
        ([{"force": True}], "non_field_errors"),
    ],
)
def test_a_bad_body_answers_400_naming_the_field(body, field, receiver, alice, alice_client):
    webhook = make_webhook(receiver.url("/ok"), owner=alice)
    event = exhausted_event(webhook)
    response = retry(alice_client, UNDELIVERED, event, body)
    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert receiver.received() == []


def test_a_body_that_is_not_json_answers_400(receiver, alice, alice_client):
    webhook = make_webhook(receiver.url("/ok"), owner=alice)
    event = exhausted_event(webhook)
    response = alice_client.post(
        f"{UNDELIVERED}{event.id}/retry/", b"{force", content_type="application/json"
    )
    assert response.status_code == 400 and "detail" in response.json()
    assert receiver.received() == []


@pytest.mark.parametrize("base", BASES)
def test_another_users_event_missing_ids_and_no_token(base, receiver, alice, alice_client):
    webhook = make_webhook(receiver.url("/ok"), owner=alice)
    event = exhausted_event(webhook)
    bob = client_for(make_user("bob"))
    assert bob.post(f"{base}{event.id}/retry/", {"force": True}, format="json").status_code == 404
    assert retry(alice_client, base, type("Missing", (), {"id": 987654321})()).status_code == 404
    assert alice_client.post(f"{base}abc/retry/", {}, format="json").status_code == 404
    from rest_framework.test import APIClient

    anonymous = APIClient().post(f"{base}{event.id}/retry/", {}, format="json")
    assert anonymous.status_code == 401
    assert receiver.received() == []
    # A superuser may retry anyone's event.
    root = client_for(make_user("root", superuser=True))
    assert retry(root, base, event).status_code == 200


def test_an_event_a_worker_is_attempting_answers_409_and_sends_nothing(
    receiver, alice, alice_client
):
    webhook = make_webhook(receiver.url("/ok"), owner=alice)
    event = exhausted_event(webhook)
    WebhookEvent.objects.filter(pk=event.pk).update(
        lease_owner="worker-1", lease_expires_at=timezone.now() + dt.timedelta(seconds=30)
    )
    response = retry(alice_client, UNDELIVERED, event)
    assert response.status_code == 409
    assert "being attempted right now" in response.json()["detail"]
    assert receiver.received() == []
    event.refresh_from_db()
    assert event.retry_count == 3 and event.lease_owner == "worker-1"


def test_two_concurrent_retries_send_once(receiver, alice):
    webhook = make_webhook(receiver.url("/slow/500"), owner=alice)
    event = exhausted_event(webhook)
    clients = [client_for(alice), client_for(alice)]
    barrier = threading.Barrier(2)
    answers: list[tuple[int, dict]] = []

    def send(client) -> None:
        try:
            barrier.wait(5)
            response = retry(client, UNDELIVERED, event, {"force": True})
            answers.append((response.status_code, response.json()))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    statuses = sorted(status for status, _ in answers)
    assert statuses[0] == 200, answers
    # The other one was refused: busy while the first was sending (409), or the event was
    # already delivered when it looked (406 event_100_3). Never a second request.
    assert statuses[1] in (406, 409), answers
    if statuses[1] == 406:
        assert {"code": "event_100_3", "en": "Event already delivered"} in [a for _, a in answers]
    assert len(receiver.received("/slow")) == 1
    assert receiver.overlaps == []
    event.refresh_from_db()
    assert event.delivered is True and event.retry_count == 4


def test_a_retry_right_after_another_delivered_it_sends_nothing(receiver, alice, alice_client):
    webhook = make_webhook(receiver.url("/ok"), owner=alice)
    event = exhausted_event(webhook)
    assert retry(alice_client, UNDELIVERED, event).status_code == 200
    # The same request again, as a client that read the event before the first one finished
    # would send it: the event is delivered now.
    second = retry(alice_client, EVENTS, event, {"force": True})
    assert second.status_code == 406
    assert second.json()["code"] == "event_100_3"
    assert len(receiver.received("/ok")) == 1


def test_the_attempt_never_leases_a_delivered_event(receiver, alice):
    """The lease is the last word: a caller that checked "not delivered" a moment before a
    concurrent retry delivered the event still sends nothing."""
    from ulak.delivery import EventBusy, attempt_event_now

    webhook = make_webhook(receiver.url("/ok"), owner=alice)
    [event] = make_events(webhook, delivered=True, next_attempt_at=None, retry_count=1)
    with pytest.raises(EventBusy):
        attempt_event_now(event.id)
    assert receiver.received() == []
    event.refresh_from_db()
    assert event.retry_count == 1 and event.lease_owner is None
