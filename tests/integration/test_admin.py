"""The Django admin, through Django's test client: finding events (filters, search), reading
one (payload, response), the event actions and the webhook actions."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone

from tests.conftest import make_user
from tests.receivers import LOOPBACK_NETWORKS, Receiver, make_events, make_webhook
from ulak.models import RetryRequest, Webhook, WebhookEvent

EVENTS = "/admin/ulak/webhookevent/"
WEBHOOKS = "/admin/ulak/webhook/"


@pytest.fixture
def admin_browser(db) -> Client:
    make_user("root", superuser=True)
    client = Client()
    assert client.login(username="root", password="pw-root")
    return client


def listed(client: Client, query: dict | None = None) -> list[int]:
    response = client.get(EVENTS, query or {})
    assert response.status_code == 200, response.content[:500]
    return sorted(event.id for event in response.context["cl"].result_list)


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


@pytest.fixture
def events(db):
    erp = make_webhook("https://erp.example.com/hooks", event_type="package.status.shipped")
    wms = make_webhook("https://wms.example.com/in")
    [failing] = make_events(
        erp,
        payload={"number": "PKG-8812", "city": "İSTANBUL"},
        object_id=8812,
        response_http_status=500,
        response_content="b'500 Internal Server Error'",
        retry_count=3,
        request_datetimes=["2026-11-28T10:00:00.000000Z"],
    )
    [exhausted] = make_events(
        erp, next_attempt_at=None, is_exhausted=True, retry_count=18, response_http_status=404
    )
    [delivered] = make_events(
        wms, delivered=True, next_attempt_at=None, response_http_status=200, retry_count=1
    )
    WebhookEvent.objects.filter(pk=delivered.pk).update(
        created_date=timezone.now() - dt.timedelta(days=40)
    )
    return {"failing": failing, "exhausted": exhausted, "delivered": delivered, "erp": erp}


def test_the_admin_needs_a_login(db):
    response = Client().get(EVENTS)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_events_can_be_found_by_filters_and_search(admin_browser, events):
    failing, exhausted, delivered = events["failing"], events["exhausted"], events["delivered"]
    everything = sorted([failing.id, exhausted.id, delivered.id])
    assert listed(admin_browser) == everything
    assert listed(admin_browser, {"delivered__exact": "0"}) == [failing.id, exhausted.id]
    assert listed(admin_browser, {"delivered__exact": "1"}) == [delivered.id]
    assert listed(admin_browser, {"exhausted": "yes"}) == [exhausted.id]
    assert listed(admin_browser, {"exhausted": "no"}) == [failing.id, delivered.id]
    shipped = {"webhook__event_type": "package.status.shipped"}
    assert listed(admin_browser, shipped) == [failing.id, exhausted.id]
    assert listed(admin_browser, {"response_http_status": "500"}) == [failing.id]
    week_ago = (timezone.now() - dt.timedelta(days=7)).isoformat()
    assert listed(admin_browser, {"created_date__gte": week_ago}) == [failing.id, exhausted.id]
    # Search: the uuid and the object id exactly, the target and the event type in part.
    assert listed(admin_browser, {"q": str(failing.uuid)}) == [failing.id]
    assert listed(admin_browser, {"q": "8812"}) == [failing.id]
    assert listed(admin_browser, {"q": "wms.example"}) == [delivered.id]
    assert listed(admin_browser, {"q": "status.shipped"}) == [failing.id, exhausted.id]
    assert listed(admin_browser, {"q": "no such thing"}) == []
    page = admin_browser.get(EVENTS, {"delivered__exact": "0"}).content.decode()
    assert "package.status.shipped" in page and "Retry now" in page and "Schedule retry" in page


def test_the_event_page_shows_payload_and_response_readably(admin_browser, events):
    failing = events["failing"]
    response = admin_browser.get(f"{EVENTS}{failing.id}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    # The stored body, indented, Turkish letters as they are (escaped for HTML only).
    assert "&quot;number&quot;: &quot;PKG-8812&quot;" in page
    assert "&quot;city&quot;: &quot;İSTANBUL&quot;" in page
    assert "\n  &quot;event&quot;: {" in page
    assert "b&#x27;500 Internal Server Error&#x27;" in page
    assert "2026-11-28T10:00:00.000000Z" in page
    assert str(failing.uuid) in page
    # Events are never edited or added by hand: the delivery state belongs to the queue.
    assert 'name="_save"' not in page
    assert admin_browser.get(f"{EVENTS}add/").status_code == 403


@pytest.mark.django_db(transaction=True)
def test_retry_now_sends_each_selected_event_once(settings):
    settings.ULAK_ALLOWED_NETWORKS = LOOPBACK_NETWORKS
    make_user("root", superuser=True)
    client = Client()
    assert client.login(username="root", password="pw-root")
    with Receiver() as receiver:
        good = make_webhook(receiver.url("/ok"))
        bad = make_webhook(receiver.url("/status/500"), event_type="package.status.shipped")
        [first, second] = make_events(good, 2, next_attempt_at=None, is_exhausted=True)
        [failing] = make_events(bad, next_attempt_at=None, is_exhausted=True)
        [done] = make_events(good, delivered=True, next_attempt_at=None)
        response = client.post(
            EVENTS,
            {
                "action": "retry_now",
                "_selected_action": [first.id, second.id, failing.id, done.id],
            },
            follow=True,
        )
        assert response.status_code == 200
        assert messages_of(response) == ["2 delivered, 1 failed, 1 already delivered."]
        assert len(receiver.received("/ok")) == 2
        assert len(receiver.received("/status/500")) == 1
    for event in (first, second):
        event.refresh_from_db()
        assert event.delivered and event.response_content == "b'ok'" and event.retry_count == 1
    failing.refresh_from_db()
    assert not failing.delivered and failing.response_http_status == 500
    assert failing.is_exhausted  # a manual attempt leaves the schedule as it was


@pytest.mark.django_db(transaction=True)
def test_retry_now_leaves_an_event_a_worker_holds(settings):
    settings.ULAK_ALLOWED_NETWORKS = LOOPBACK_NETWORKS
    make_user("root", superuser=True)
    client = Client()
    assert client.login(username="root", password="pw-root")
    with Receiver() as receiver:
        webhook = make_webhook(receiver.url("/ok"))
        [held] = make_events(webhook)
        WebhookEvent.objects.filter(pk=held.pk).update(
            lease_owner="worker-1", lease_expires_at=timezone.now() + dt.timedelta(seconds=30)
        )
        response = client.post(
            EVENTS, {"action": "retry_now", "_selected_action": [held.id]}, follow=True
        )
        assert messages_of(response) == [
            "0 delivered, 0 failed, 0 already delivered. "
            "1 being attempted right now (not sent again)."
        ]
        assert receiver.received() == []


def test_schedule_retry_gives_a_new_round(admin_browser, events):
    exhausted, delivered = events["exhausted"], events["delivered"]
    before = timezone.now()
    response = admin_browser.post(
        EVENTS,
        {"action": "schedule_retry", "_selected_action": [exhausted.id, delivered.id]},
        follow=True,
    )
    assert messages_of(response) == ["1 event(s) scheduled for a new round."]
    exhausted.refresh_from_db()
    assert exhausted.is_exhausted is False and exhausted.round_attempt_count == 0
    assert before <= exhausted.next_attempt_at <= timezone.now()
    delivered.refresh_from_db()
    assert delivered.next_attempt_at is None


def test_webhooks_can_be_found_deactivated_and_activated(admin_browser, events):
    erp = events["erp"]
    page = admin_browser.get(WEBHOOKS, {"q": "erp.example"})
    assert [w.id for w in page.context["cl"].result_list] == [erp.id]
    response = admin_browser.post(
        WEBHOOKS, {"action": "deactivate", "_selected_action": [erp.id]}, follow=True
    )
    assert messages_of(response) == ["1 webhook(s) deactivated."]
    erp.refresh_from_db()
    assert erp.is_active is False
    inactive = admin_browser.get(WEBHOOKS, {"is_active__exact": "0"})
    assert [w.id for w in inactive.context["cl"].result_list] == [erp.id]
    response = admin_browser.post(
        WEBHOOKS, {"action": "activate", "_selected_action": [erp.id]}, follow=True
    )
    assert messages_of(response) == ["1 webhook(s) activated."]
    assert Webhook.objects.get(pk=erp.pk).is_active is True
    # The secret never shows in full.
    erp.secret_key = "whsec_abcdefghijklmnop"
    erp.save()
    page = admin_browser.get(f"{WEBHOOKS}{erp.id}/change/").content.decode()
    assert "whsec_abcdefghijklmnop" not in page and "mnop" in page


def test_bulk_retries_are_listed_read_only(admin_browser, events):
    RetryRequest.objects.create(requested_by="api:alice", matched=3, scheduled=1)
    page = admin_browser.get("/admin/ulak/retryrequest/")
    assert page.status_code == 200
    assert "api:alice" in page.content.decode()
    assert admin_browser.get("/admin/ulak/retryrequest/add/").status_code == 403
