from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from ulak.models import Webhook, WebhookEvent, WorkerHeartbeat


def sample(text: str, name: str, **labels: str) -> float:
    wanted = name + (
        "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else ""
    )
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{wanted} not in metrics:\n{text}")


@pytest.mark.django_db
def test_metrics_need_a_token(client):
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Token"


@pytest.mark.django_db
def test_metrics_cover_every_worker_and_the_queue(admin_client_api):
    now = timezone.now()
    for name, delivered, seconds in (("w1", 5, 0.02), ("w2", 7, 0.2)):
        WorkerHeartbeat.objects.create(
            name=name,
            hostname="host",
            pid=1,
            started_at=now,
            seen_at=now if name == "w1" else now - dt.timedelta(minutes=5),
            stats={
                "delivered": delivered,
                "failed_http": 1,
                "exhausted": 1,
                "duration_buckets": {
                    "0.025": delivered if seconds < 0.025 else 0,
                    "0.25": delivered,
                },
                "duration_sum": delivered * seconds,
                "duration_count": delivered,
            },
        )
    hook = Webhook.objects.create(
        retry_countdown_config={"choice": "fixed", "kwargs": {"seconds": 60}},
        target_url="https://example.com/hook",
        event_type="package.created",
    )
    WebhookEvent.objects.create(
        webhook=hook, request_payload="{}", next_attempt_at=now - dt.timedelta(seconds=90)
    )
    WebhookEvent.objects.create(webhook=hook, request_payload="{}", is_exhausted=True)
    WebhookEvent.objects.create(webhook=hook, request_payload="{}", delivered=True)

    response = admin_client_api.get("/metrics", HTTP_ACCEPT="text/plain")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert sample(text, "ulak_attempts_total", worker="w1", outcome="delivered") == 5
    assert sample(text, "ulak_attempts_total", worker="w2", outcome="delivered") == 7
    assert sample(text, "ulak_exhausted_total", worker="w2") == 1
    assert sample(text, "ulak_attempt_duration_seconds_bucket", le="0.025") == 5
    assert sample(text, "ulak_attempt_duration_seconds_bucket", le="0.25") == 12
    assert sample(text, "ulak_attempt_duration_seconds_count") == 12
    assert sample(text, "ulak_workers_alive") == 1
    assert sample(text, "ulak_events_waiting") == 1
    assert sample(text, "ulak_events_undelivered") == 2
    assert sample(text, "ulak_events_exhausted") == 1
    assert sample(text, "ulak_oldest_due_age_seconds") >= 90
