"""The seed's example response, rebuilt in the database, comes back from the API byte for byte."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.contrib.contenttypes.models import ContentType

from ulak.models import Webhook, WebhookEvent

UNDELIVERED = "/api/v1/oms/settings/undelivered_webhooks/"


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def build_seed_event(example: dict, owner) -> WebhookEvent:
    """The example's webhook 68 and event 5941, with its exact ids, dates and payload."""
    item = example["results"][0]
    hook = item["webhook"]
    content_type_id = item["content_type"]
    if not ContentType.objects.filter(id=content_type_id).exists():
        ContentType.objects.create(id=content_type_id, app_label="oms", model="package")
    webhook = Webhook.objects.create(
        id=hook["id"],
        owner=owner,
        retry_countdown_config=hook["retry_countdown_config"],
        target_url=hook["target_url"],
        is_active=hook["is_active"],
        secret_key=hook["secret_key"],
        event_type=hook["event_type"],
        callback=hook["callback"],
        additional_headers=hook["additional_headers"],
        config=hook["config"],
    )
    # created_date and modified_date are auto fields: only update() can set them.
    Webhook.objects.filter(id=webhook.id).update(
        created_date=parse_time(hook["created_date"]),
        modified_date=parse_time(hook["modified_date"]),
    )
    event = WebhookEvent.objects.create(
        id=item["id"],
        webhook=webhook,
        uuid=item["uuid"],
        # Stored as the exact JSON text that was sent (the API parses it for output).
        request_payload=json.dumps(item["request_payload"], ensure_ascii=False),
        response_content=item["response_content"],
        response_http_status=item["response_http_status"],
        delivered=item["delivered"],
        request_datetimes=item["request_datetimes"],
        retry_count=item["retry_count"],
        object_id=item["object_id"],
        content_type_id=content_type_id,
    )
    WebhookEvent.objects.filter(id=event.id).update(
        created_date=parse_time(item["created_date"]),
        modified_date=parse_time(item["modified_date"]),
    )
    return event


def assert_same_in_order(actual, expected, path: str = "$") -> None:
    """Equal key by key, value by value, and with the keys in the same order."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), path
        assert list(actual) == list(expected), f"keys at {path}"
        for key, value in expected.items():
            assert_same_in_order(actual[key], value, f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), path
        for index, (got, want) in enumerate(zip(actual, expected, strict=True)):
            assert_same_in_order(got, want, f"{path}[{index}]")
    else:
        assert type(actual) is type(expected) and actual == expected, (
            f"{path}: {actual!r} != {expected!r}"
        )


@pytest.mark.django_db
def test_undelivered_list_is_the_seed_example(user, user_client, example_response):
    build_seed_event(example_response, owner=user)

    response = user_client.get(UNDELIVERED)

    assert response.status_code == 200
    body = response.json()
    assert_same_in_order(body, example_response)
    # And the very same JSON text, as a final word on order and types.
    assert json.dumps(body, ensure_ascii=False) == json.dumps(example_response, ensure_ascii=False)


@pytest.mark.django_db
def test_the_seed_example_through_every_event_path(user, user_client, example_response):
    build_seed_event(example_response, owner=user)
    expected = example_response["results"][0]

    for path in (
        UNDELIVERED + "5941/",
        "/api/v1/oms/settings/webhook_events/5941/",
        "/whisperer/hook_events/5941/",
    ):
        response = user_client.get(path)
        assert response.status_code == 200, path
        assert_same_in_order(response.json(), expected, path)
    for path in ("/api/v1/oms/settings/webhook_events/", "/whisperer/hook_events/"):
        assert_same_in_order(user_client.get(path).json(), example_response, path)

    webhook = user_client.get("/api/v1/oms/settings/webhooks/68/").json()
    assert_same_in_order(webhook, expected["webhook"])


@pytest.mark.django_db
def test_the_seed_example_is_found_by_its_filters(user, user_client, example_response):
    build_seed_event(example_response, owner=user)

    for query in (
        "event_type=PACKAGE.STATUS.SHIPPED",
        "webhook=68",
        "uuid=2877cadd-fc60-4a5a-a54f-b7be716f4f25",
        "object_id=8812",
        "content_type=4",
        "response_http_status=500",
        "created_date=2023-10-12",
        "created_date__lte=2023-10-12",
        "created_date__gte=2023-10-12T10:07:35.200005Z",
        "retry_count__gte=11",
        "is_exhausted=false",
    ):
        body = user_client.get(f"{UNDELIVERED}?{query}").json()
        assert body["count"] == 1, query
        assert body["results"][0]["id"] == 5941, query
    for query in ("created_date__lt=2023-10-12", "created_date__gt=2023-10-12", "webhook=69"):
        assert user_client.get(f"{UNDELIVERED}?{query}").json()["count"] == 0, query
