"""The worker against real receivers on loopback: what is sent and what is recorded."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import logging
import resource
import time

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook as StandardWebhook

import ulak
from tests.receivers import (
    NON_UTF8_BODY,
    TOKEN,
    TOKEN_CREDENTIALS,
    deliver_due,
    make_events,
    make_webhook,
)
from ulak.models import WebhookEvent

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("loopback_allowed"),
]

CALLS: list[tuple] = []


def recording_callback(response, event_type, instance, payload):
    CALLS.append((response.status_code, response.text, event_type, instance, payload))


def failing_callback(response, event_type, instance, payload):
    raise RuntimeError("callback exploded")


def parse_iso(text: str) -> datetime.datetime:
    assert text.endswith("Z") and len(text) == len("2023-10-12T10:08:22.570834Z")
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.UTC)


def test_success_sends_the_contract_request_and_records_delivery(receiver):
    secret = "whsec_" + base64.b64encode(b"k" * 24).decode()
    webhook = make_webhook(receiver.url("/ok"), secret_key=secret)
    [event] = make_events(webhook)
    before = timezone.now()

    worker = deliver_due()

    [request] = receiver.received("/ok")
    assert request.body == event.request_payload.encode("utf-8")
    assert request.header("Content-Type") == "application/json"
    assert request.header("User-Agent") == f"Ulak/{ulak.__version__}"
    assert request.header("X-Whisperer-Event") == "package.created"
    expected = hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.header("X-Whisperer-Signature") == "sha256=" + expected
    assert request.header("webhook-id") == event.uuid.hex
    # The standardwebhooks package accepts the signature (and the timestamp is "now").
    verified = StandardWebhook(secret).verify(
        request.body,
        {
            name: request.header(name)
            for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
        },
    )
    assert verified["event"]["uuid"] == event.uuid.hex

    event.refresh_from_db()
    assert event.delivered is True
    assert event.response_http_status == 200
    assert event.response_content == "b'ok'"
    assert event.retry_count == 1
    assert len(event.request_datetimes) == 1
    assert before <= parse_iso(event.request_datetimes[0]) <= timezone.now()
    assert event.next_attempt_at is None
    assert event.lease_owner is None and event.lease_expires_at is None
    assert event.is_exhausted is False
    assert worker.stats["delivered"] == 1


def test_without_secret_no_signature_headers_are_sent(receiver):
    webhook = make_webhook(receiver.url("/ok"), secret_key="")
    make_events(webhook)
    deliver_due()
    [request] = receiver.received("/ok")
    for name in ("X-Whisperer-Signature", "webhook-signature", "webhook-timestamp"):
        assert request.header(name) is None


def test_additional_headers_come_last_and_win(receiver):
    webhook = make_webhook(
        receiver.url("/ok"),
        secret_key="s",
        additional_headers={"x-whisperer-event": "overridden", "X-Tenant": "acme"},
    )
    make_events(webhook)
    deliver_due()
    [request] = receiver.received("/ok")
    assert request.header("X-Whisperer-Event") == "overridden"
    assert request.header("X-Tenant") == "acme"
    # Replaced, not sent twice.
    assert [name for name, _ in request.raw_headers].count("x-whisperer-event") == 1


def test_500_is_recorded_with_the_seed_bytes_literal_and_retried_on_schedule(receiver):
    webhook = make_webhook(
        receiver.url("/status/500"),
        retry_countdown_config={"choice": "exponential", "kwargs": {"base": 3, "factor": 7}},
    )
    [event] = make_events(webhook)
    deliver_due()
    finished = timezone.now()

    event.refresh_from_db()
    assert event.delivered is False
    assert event.response_http_status == 500
    assert event.response_content == "b'500 Internal Server Error'"
    assert event.retry_count == 1
    assert event.round_attempt_count == 1
    assert event.is_exhausted is False
    # After the 1st failure: value(0) = 3**0 * 7 = 7 s after the attempt ended.
    delay = (event.next_attempt_at - finished).total_seconds()
    assert 5.5 <= delay <= 7.01

    # Not due yet: a second run attempts nothing.
    deliver_due()
    assert len(receiver.received("/status/500")) == 1

    # Make it due: the second failure schedules value(1) = 3 * 7 = 21 s.
    WebhookEvent.objects.filter(pk=event.pk).update(next_attempt_at=timezone.now())
    deliver_due()
    event.refresh_from_db()
    assert event.retry_count == 2
    assert len(event.request_datetimes) == 2
    assert parse_iso(event.request_datetimes[0]) > parse_iso(event.request_datetimes[1])
    delay = (event.next_attempt_at - timezone.now()).total_seconds()
    assert 19 <= delay <= 21.01


def test_exhausted_after_max_retry_count_automatic_attempts(receiver):
    webhook = make_webhook(
        receiver.url("/status/503"),
        retry_countdown_config={"choice": "fixed", "kwargs": {"seconds": 0}},
        config={"max_retry_count": 3},
    )
    [event] = make_events(webhook)
    worker = deliver_due()
    event.refresh_from_db()
    assert len(receiver.received("/status/503")) == 3
    assert event.retry_count == 3
    assert event.round_attempt_count == 3
    assert event.is_exhausted is True
    assert event.next_attempt_at is None
    assert event.delivered is False
    assert len(event.request_datetimes) == 3
    assert worker.stats["exhausted"] == 1


def test_default_max_retry_count_comes_from_the_setting(receiver, settings):
    settings.ULAK_DEFAULT_MAX_RETRY_COUNT = 2
    webhook = make_webhook(
        receiver.url("/status/500"),
        retry_countdown_config={"choice": "fixed", "kwargs": {"seconds": 0}},
    )
    [event] = make_events(webhook)
    deliver_due()
    event.refresh_from_db()
    assert (event.retry_count, event.is_exhausted) == (2, True)


def test_retry_after_is_honoured_up_to_the_cap(receiver, settings):
    settings.ULAK_RETRY_AFTER_CAP = 500
    fixed_zero = {"choice": "fixed", "kwargs": {"seconds": 0}}
    asked = make_webhook(receiver.url("/retry-after/429/120"), retry_countdown_config=fixed_zero)
    capped = make_webhook(
        receiver.url("/retry-after/503/100000"), retry_countdown_config=fixed_zero
    )
    ignored = make_webhook(
        receiver.url("/status/500"),
        retry_countdown_config=fixed_zero,
        config={"max_retry_count": 1},
    )
    [asked_event] = make_events(asked)
    [capped_event] = make_events(capped)
    make_events(ignored)
    deliver_due()
    now = timezone.now()
    asked_event.refresh_from_db()
    capped_event.refresh_from_db()
    assert asked_event.response_http_status == 429
    assert 115 <= (asked_event.next_attempt_at - now).total_seconds() <= 120.01
    assert 495 <= (capped_event.next_attempt_at - now).total_seconds() <= 500.01


def test_redirects_are_not_followed(receiver):
    webhook = make_webhook(receiver.url("/redirect"))
    [event] = make_events(webhook)
    deliver_due()
    event.refresh_from_db()
    assert event.delivered is False
    assert event.response_http_status == 302
    assert receiver.received("/ok") == []


def test_timeout_is_a_failed_attempt_without_status(receiver):
    webhook = make_webhook(receiver.url("/hang"), config={"timeout": 0.5})
    [event] = make_events(webhook)
    started = time.monotonic()
    worker = deliver_due()
    assert time.monotonic() - started < 5
    event.refresh_from_db()
    assert event.delivered is False
    assert event.response_http_status is None
    assert event.response_content == "Timed out after 0.5 s"
    assert event.retry_count == 1
    assert event.next_attempt_at is not None
    assert worker.stats["failed_network"] == 1


def test_slow_trickling_body_hits_the_total_deadline(receiver):
    # Every byte arrives within 0.2 s of the previous one, but the whole answer takes a minute.
    webhook = make_webhook(receiver.url("/trickle"), config={"timeout": 1})
    [event] = make_events(webhook)
    started = time.monotonic()
    deliver_due()
    assert time.monotonic() - started < 5
    event.refresh_from_db()
    assert event.response_http_status is None
    assert event.response_content == "Timed out after 1 s"


def test_refused_connection_is_recorded_in_one_line():
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    webhook = make_webhook(f"http://127.0.0.1:{port}/hook")
    [event] = make_events(webhook)
    deliver_due()
    event.refresh_from_db()
    assert event.delivered is False
    assert event.response_http_status is None
    assert event.response_content == "Connection refused"
    assert event.retry_count == 1


def test_dns_failure_is_recorded_in_one_line():
    webhook = make_webhook("http://no-such-host.invalid/hook")
    [event] = make_events(webhook)
    deliver_due()
    event.refresh_from_db()
    assert event.response_http_status is None
    assert event.response_content == "DNS lookup failed"


def test_target_refused_by_the_safety_rules_is_a_failed_attempt(receiver, settings):
    settings.ULAK_ALLOWED_NETWORKS = ""
    webhook = make_webhook(receiver.url("/ok"))
    [event] = make_events(webhook)
    worker = deliver_due()
    event.refresh_from_db()
    assert receiver.received() == []
    assert event.delivered is False
    assert event.response_http_status is None
    assert "not allowed" in event.response_content
    assert "\n" not in event.response_content
    assert event.retry_count == 1 and event.next_attempt_at is not None
    assert worker.stats["refused"] == 1


def test_huge_body_is_read_up_to_the_cap_and_stored_truncated(receiver, settings):
    settings.ULAK_RESPONSE_STORE_LIMIT = 100
    webhook = make_webhook(receiver.url("/huge"))
    [event] = make_events(webhook)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    deliver_due()
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    event.refresh_from_db()
    assert event.delivered is True
    assert event.response_content == repr(b"A" * 100)
    assert grown_kib < 15 * 1024  # the 20 MiB body was not held in memory


def test_gzip_bomb_is_inflated_only_up_to_the_read_limit(receiver, settings):
    settings.ULAK_RESPONSE_READ_LIMIT = 64 * 1024
    settings.ULAK_RESPONSE_STORE_LIMIT = 64 * 1024
    from tests.receivers import gzip_bomb

    gzip_bomb()  # built before measuring
    webhook = make_webhook(receiver.url("/gzip-bomb"))
    [event] = make_events(webhook)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    deliver_due()
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    event.refresh_from_db()
    assert event.delivered is True
    assert event.response_content == repr(b"\0" * (64 * 1024))
    assert grown_kib < 50 * 1024  # 2 GiB when inflated


def test_non_utf8_body_is_stored_as_a_bytes_literal(receiver):
    webhook = make_webhook(receiver.url("/non-utf8"))
    [event] = make_events(webhook)
    deliver_due()
    event.refresh_from_db()
    assert event.response_content == repr(NON_UTF8_BODY)
    assert eval(event.response_content) == NON_UTF8_BODY  # a faithful literal


def test_basic_auth(receiver):
    webhook = make_webhook(
        receiver.url("/ok"),
        config={"auth": {"auth_type": "basic", "username": "ali", "password": "veli:1"}},
    )
    make_events(webhook)
    deliver_due()
    [request] = receiver.received("/ok")
    assert request.header("Authorization") == "Basic " + base64.b64encode(b"ali:veli:1").decode()


def test_token_auth_fetches_the_token_once_and_sends_it(receiver):
    auth = {"auth_type": "token", "url": receiver.url("/token"), **TOKEN_CREDENTIALS}
    webhook = make_webhook(receiver.url("/needs-token"), config={"auth": auth})
    events = make_events(webhook, 3)
    deliver_due()
    assert len(receiver.received("/token")) == 1
    for event in events:
        event.refresh_from_db()
        assert event.delivered is True
        assert event.response_content == "b'token ok'"
    assert {r.header("Authorization") for r in receiver.received("/needs-token")} == {
        f"Token {TOKEN}"
    }


def test_token_auth_failure_is_a_failed_attempt(receiver):
    auth = {
        "auth_type": "token",
        "url": receiver.url("/token"),
        "username": "u",
        "password": "wrong",
    }
    webhook = make_webhook(receiver.url("/needs-token"), config={"auth": auth})
    [event] = make_events(webhook)
    deliver_due()
    event.refresh_from_db()
    assert receiver.received("/needs-token") == []
    assert event.response_http_status is None
    assert event.response_content == "Token request failed: HTTP 400"


def test_callback_runs_after_each_attempt(receiver, settings):
    settings.ULAK_CALLBACKS = [f"{__name__}.recording_callback"]
    CALLS.clear()
    webhook = make_webhook(receiver.url("/status/500"), callback=f"{__name__}.recording_callback")
    [event] = make_events(webhook)
    deliver_due()
    assert len(CALLS) == 1
    status, text, event_type, instance, payload = CALLS[0]
    assert (status, text, event_type, instance) == (
        500,
        "500 Internal Server Error",
        "package.created",
        None,
    )
    assert payload["event"]["uuid"] == event.uuid.hex


def test_failing_callback_is_logged_and_the_attempt_kept(receiver, settings, caplog):
    settings.ULAK_CALLBACKS = [f"{__name__}.failing_callback"]
    webhook = make_webhook(receiver.url("/ok"), callback=f"{__name__}.failing_callback")
    [event] = make_events(webhook)
    with caplog.at_level(logging.ERROR, logger="ulak.delivery.callbacks"):
        worker = deliver_due()
    event.refresh_from_db()
    assert event.delivered is True and event.retry_count == 1
    assert any("callback exploded" in (r.exc_text or "") or r.exc_info for r in caplog.records)
    assert worker.stats["callback_errors"] == 1


def test_callback_not_in_the_allowed_list_is_not_run(receiver, settings):
    settings.ULAK_CALLBACKS = []
    CALLS.clear()
    webhook = make_webhook(receiver.url("/ok"), callback=f"{__name__}.recording_callback")
    [event] = make_events(webhook)
    deliver_due()
    event.refresh_from_db()
    assert event.delivered is True
    assert CALLS == []


def test_inactive_webhooks_events_are_not_sent_until_revived(receiver):
    webhook = make_webhook(receiver.url("/ok"), is_active=False)
    [event] = make_events(webhook)
    deliver_due()
    assert receiver.received() == []
    event.refresh_from_db()
    assert event.retry_count == 0 and event.next_attempt_at is not None
    webhook.is_active = True
    webhook.save()
    deliver_due()
    event.refresh_from_db()
    assert event.delivered is True


def test_a_row_leased_by_another_worker_is_left_alone_until_the_lease_expires(receiver):
    webhook = make_webhook(receiver.url("/ok"))
    [event] = make_events(webhook)
    WebhookEvent.objects.filter(pk=event.pk).update(
        lease_owner="someone-else", lease_expires_at=timezone.now() + datetime.timedelta(seconds=30)
    )
    deliver_due()
    assert receiver.received() == []
    WebhookEvent.objects.filter(pk=event.pk).update(lease_expires_at=timezone.now())
    deliver_due()
    event.refresh_from_db()
    assert event.delivered is True
    assert event.lease_owner is None


def test_secret_is_read_decrypted_from_the_database(receiver):
    from django.db import connection

    webhook = make_webhook(receiver.url("/ok"), secret_key="plain-secret")
    with connection.cursor() as cursor:  # the column holds ciphertext, not the secret
        cursor.execute("SELECT secret_key FROM ulak_webhook WHERE id = %s", [webhook.id])
        assert cursor.fetchone()[0] != "plain-secret"
    make_events(webhook)
    deliver_due()
    [request] = receiver.received("/ok")
    expected = hmac.new(b"plain-secret", request.body, hashlib.sha256).hexdigest()
    assert request.header("X-Whisperer-Signature") == "sha256=" + expected


def test_a_target_url_aiohttp_cannot_use_is_a_failed_attempt_not_a_crash():
    webhook = make_webhook("ftp://127.0.0.1/hook")
    [event] = make_events(webhook)
    deliver_due()
    event.refresh_from_db()
    assert (event.response_http_status, event.response_content) == (None, "Invalid target URL")
    assert event.retry_count == 1 and event.next_attempt_at is not None
