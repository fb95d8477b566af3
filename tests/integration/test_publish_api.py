"""POST /api/v1/oms/events/: one event or a list, who may publish, limits, Idempotency-Key."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.test import override_settings
from rest_framework.test import APIClient

import ulak
from tests.conftest import client_for, make_user
from ulak.models import IdempotencyRecord, Webhook, WebhookEvent

URL = "/api/v1/oms/events/"
RETRY = {"choice": "fixed", "kwargs": {"seconds": 5}}


def make_webhook(event_type="package.created", *, config=None, is_active=True):
    return Webhook.objects.create(
        retry_countdown_config=RETRY,
        target_url=f"https://{uuid.uuid4().hex[:12]}.example.com/hook",
        event_type=event_type,
        config=config or {},
        is_active=is_active,
    )


def post(client, data, **headers):
    body = data if isinstance(data, bytes | str) else json.dumps(data)
    return client.generic("POST", URL, body, content_type="application/json", **headers)


def as_answer(events):
    return {"events": [{"id": e.id, "uuid": str(e.uuid), "webhook": e.webhook_id} for e in events]}


@pytest.mark.django_db
def test_one_event_answers_202_with_every_created_event(admin_client_api):
    first, second = make_webhook(), make_webhook()
    response = post(
        admin_client_api,
        {"event_type": "package.created", "payload": {"id": 7, "city": "İzmir"}, "object_id": 7},
    )
    assert response.status_code == 202, response.content
    events = list(WebhookEvent.objects.order_by("id"))
    assert response.json() == as_answer(events)
    assert [e.webhook_id for e in events] == [first.id, second.id]
    for event in events:
        assert json.loads(event.request_payload) == {
            "event": {"type": "package.created", "uuid": event.uuid.hex},
            "payload": {"id": 7, "city": "İzmir"},
        }
        assert "İzmir" in event.request_payload
        assert event.object_id == 7


@pytest.mark.django_db
def test_a_list_answers_every_event_of_every_item(admin_client_api):
    created_hook = make_webhook()
    shipped_hook = make_webhook("package.status.shipped", config={"carrier": "yurtici"})
    make_webhook("package.status.shipped", config={"carrier": "aras"})
    response = post(
        admin_client_api,
        [
            {"event_type": "package.created", "payload": {"n": 0}},
            {
                "event_type": "package.status.shipped",
                "payload": {"n": 1},
                "config_filter": {"carrier": "yurtici"},
            },
            {"event_type": "shipment.created", "payload": {"n": 2}},  # nobody listens
        ],
    )
    assert response.status_code == 202, response.content
    events = list(WebhookEvent.objects.order_by("id"))
    assert response.json() == as_answer(events)
    assert [e.webhook_id for e in events] == [created_hook.id, shipped_hook.id]


@pytest.mark.django_db
def test_nothing_matched_answers_an_empty_list(admin_client_api):
    response = post(admin_client_api, {"event_type": "package.created", "payload": {}})
    assert (response.status_code, response.json()) == (202, {"events": []})
    response = post(admin_client_api, [])
    assert (response.status_code, response.json()) == (202, {"events": []})


@pytest.mark.django_db
def test_content_type_by_natural_key_or_id(admin_client_api):
    make_webhook()
    group_type = ContentType.objects.get_for_model(Group)
    for value in ("auth.group", group_type.id):
        response = post(
            admin_client_api,
            {"event_type": "package.created", "payload": {}, "object_id": 3, "content_type": value},
        )
        assert response.status_code == 202, response.content
        event = WebhookEvent.objects.get(pk=response.json()["events"][0]["id"])
        assert (event.content_type_id, event.object_id) == (group_type.id, 3)
    for value in ("oms.nothing", 999999, "nodot"):
        response = post(
            admin_client_api,
            {"event_type": "package.created", "payload": {}, "content_type": value},
        )
        assert response.status_code == 400
        assert response.json() == {"content_type": [f"Unknown content type {value!r}."]}


# --- who may publish --------------------------------------------------------------------


@pytest.mark.django_db
def test_without_a_token_401(client):
    response = post(client, {"event_type": "package.created", "payload": {}})
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.django_db
def test_a_user_without_the_permission_gets_403_and_with_it_202(user, user_client):
    make_webhook()
    event = {"event_type": "package.created", "payload": {}}
    response = post(user_client, event)
    assert response.status_code == 403
    assert "ulak.publish_event" in response.json()["detail"]
    assert WebhookEvent.objects.count() == 0

    user.user_permissions.add(Permission.objects.get(codename="publish_event"))
    response = post(client_for(user), event)  # permissions are cached per user object
    assert response.status_code == 202
    assert WebhookEvent.objects.count() == 1


@pytest.mark.django_db
def test_the_permission_through_a_group_is_enough():
    publisher = make_user("publisher")
    group = Group.objects.create(name="publishers")
    group.permissions.add(Permission.objects.get(codename="publish_event"))
    publisher.groups.add(group)
    response = post(client_for(publisher), {"event_type": "package.created", "payload": {}})
    assert response.status_code == 202


# --- bad input --------------------------------------------------------------------------


@pytest.mark.django_db
def test_unknown_event_type_400_names_it(admin_client_api):
    response = post(admin_client_api, {"event_type": "package.teleported", "payload": {}})
    assert response.status_code == 400
    assert response.json() == {"event_type": ["Unknown event type 'package.teleported'."]}


@pytest.mark.django_db
def test_errors_in_a_list_name_the_item_and_nothing_is_created(admin_client_api):
    make_webhook()
    response = post(
        admin_client_api,
        [
            {"event_type": "package.created", "payload": {}},
            {"event_type": "package.teleported", "payload": {}},
            {"event_type": "package.created", "payload": [1, 2]},
            "not an object",
            {"payload": {}, "object_id": "7", "config_filter": [], "extra": 1},
        ],
    )
    assert response.status_code == 400
    assert response.json() == {
        "1": {"event_type": ["Unknown event type 'package.teleported'."]},
        "2": {"payload": ["Must be a JSON object."]},
        "3": {"non_field_errors": ["Expected a JSON object with event_type and payload."]},
        "4": {
            "extra": ["Unknown field."],
            "event_type": ["This field is required."],
            "object_id": ["A valid integer is required."],
            "config_filter": ["Must be a JSON object."],
        },
    }
    assert WebhookEvent.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("event", "field", "message"),
    [
        ({"event_type": "package.created"}, "payload", "This field is required."),
        ({"event_type": "package.created", "payload": "text"}, "payload", "Must be a JSON object."),
        ({"event_type": "package.created", "payload": None}, "payload", "Must be a JSON object."),
        ({"event_type": 5, "payload": {}}, "event_type", "Must be a string."),
        (
            {"event_type": "package.created", "payload": {}, "object_id": -1},
            "object_id",
            "Must be an integer between 0 and 2^63-1, or null.",
        ),
        (
            {"event_type": "package.created", "payload": {}, "content_type": True},
            "content_type",
            'Must be "app_label.model" or an integer id.',
        ),
    ],
)
def test_bad_fields_400_name_the_field(admin_client_api, event, field, message):
    response = post(admin_client_api, event)
    assert response.status_code == 400
    assert response.json() == {field: [message]}


@pytest.mark.django_db
def test_bad_json_or_body_shape_400_and_other_media_types_415(admin_client_api):
    response = post(admin_client_api, b'{"event_type": ')
    assert response.status_code == 400 and "JSON parse error" in response.json()["detail"]
    response = post(admin_client_api, b"")
    assert response.status_code == 400 and "empty" in response.json()["detail"]
    response = post(admin_client_api, b'"package.created"')
    assert response.status_code == 400 and "JSON object" in response.json()["detail"]
    response = admin_client_api.generic("POST", URL, b"event_type=x", content_type="text/plain")
    assert response.status_code == 415


@pytest.mark.django_db
def test_more_than_1000_events_400(admin_client_api):
    make_webhook()
    events = [{"event_type": "package.created", "payload": {"n": n}} for n in range(1001)]
    response = post(admin_client_api, events)
    assert response.status_code == 400
    assert response.json() == {"detail": "At most 1000 events per request; this one has 1001."}
    assert WebhookEvent.objects.count() == 0
    response = post(admin_client_api, events[:1000])
    assert response.status_code == 202
    assert len(response.json()["events"]) == 1000 == WebhookEvent.objects.count()


@pytest.mark.django_db
def test_a_payload_over_one_mebibyte_413(admin_client_api):
    make_webhook()
    big = {"event_type": "package.created", "payload": {"blob": "x" * (1024 * 1024)}}
    response = post(admin_client_api, [{"event_type": "package.created", "payload": {}}, big])
    assert response.status_code == 413
    assert response.json() == {
        "1": {
            "payload": [
                f"The payload is {1024 * 1024 + 11} bytes as JSON, over the limit of 1048576 bytes."
            ]
        }
    }
    assert WebhookEvent.objects.count() == 0


@pytest.mark.django_db
def test_the_payload_limit_is_configurable(admin_client_api):
    make_webhook()
    event = {"event_type": "package.created", "payload": {"text": "ğ" * 100}}
    with override_settings(ULAK_MAX_PAYLOAD_BYTES=150):
        assert post(admin_client_api, event).status_code == 413
    with override_settings(ULAK_MAX_PAYLOAD_BYTES=250):
        assert post(admin_client_api, event).status_code == 202


@pytest.mark.django_db
def test_a_request_over_the_request_limit_413(admin_client_api):
    make_webhook()
    events = [{"event_type": "package.created", "payload": {"n": "x" * 1000}}] * 20
    with override_settings(ULAK_MAX_REQUEST_BYTES=10_000):
        response = post(admin_client_api, events)
    assert response.status_code == 413
    detail = response.json()["detail"]
    assert "over the limit of 10000 bytes" in detail and "ULAK_MAX_REQUEST_BYTES" in detail
    assert WebhookEvent.objects.count() == 0


@pytest.mark.django_db
def test_a_request_over_16_mib_413_and_one_over_djangos_own_limit_is_accepted(admin_client_api):
    make_webhook()
    # 3.2 MB: over Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB), under Ulak's 16 MiB.
    events = [{"event_type": "package.created", "payload": {"blob": "y" * 800_000}}] * 4
    response = post(admin_client_api, events)
    assert response.status_code == 202, response.content
    assert WebhookEvent.objects.count() == 4

    body = json.dumps([{"event_type": "package.created", "payload": {"b": "z" * 1000}}] * 17_000)
    assert len(body) > 16 * 1024 * 1024
    response = post(admin_client_api, body)
    assert response.status_code == 413
    assert "over the limit of 16777216 bytes" in response.json()["detail"]
    assert WebhookEvent.objects.count() == 4


# --- Idempotency-Key --------------------------------------------------------------------


@pytest.mark.django_db
def test_a_repeated_request_returns_the_first_answer_and_creates_nothing(admin_client_api):
    make_webhook()
    event = {"event_type": "package.created", "payload": {"id": 1}}
    first = post(admin_client_api, event, HTTP_IDEMPOTENCY_KEY="order-1-created")
    assert first.status_code == 202
    again = post(admin_client_api, event, HTTP_IDEMPOTENCY_KEY="order-1-created")
    assert again.status_code == 202
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert WebhookEvent.objects.count() == 1
    assert IdempotencyRecord.objects.count() == 1

    # A new key is a new request.
    other = post(admin_client_api, event, HTTP_IDEMPOTENCY_KEY="order-1-created-2")
    assert other.status_code == 202 and other.json() != first.json()
    assert WebhookEvent.objects.count() == 2


@pytest.mark.django_db
def test_the_same_key_with_another_body_422(admin_client_api):
    make_webhook()
    post(
        admin_client_api,
        {"event_type": "package.created", "payload": {"id": 1}},
        HTTP_IDEMPOTENCY_KEY="k1",
    )
    response = post(
        admin_client_api,
        {"event_type": "package.created", "payload": {"id": 2}},
        HTTP_IDEMPOTENCY_KEY="k1",
    )
    assert response.status_code == 422
    assert "different request body" in response.json()["detail"]
    assert WebhookEvent.objects.count() == 1


@pytest.mark.django_db
def test_keys_belong_to_their_user_and_failed_requests_store_nothing(admin_client_api):
    make_webhook()
    other_admin = client_for(make_user("root2", superuser=True))
    event = {"event_type": "package.created", "payload": {"id": 1}}
    assert post(admin_client_api, event, HTTP_IDEMPOTENCY_KEY="same").status_code == 202
    assert post(other_admin, event, HTTP_IDEMPOTENCY_KEY="same").status_code == 202
    assert WebhookEvent.objects.count() == 2

    bad = {"event_type": "package.teleported", "payload": {}}
    assert post(admin_client_api, bad, HTTP_IDEMPOTENCY_KEY="retry-me").status_code == 400
    assert not IdempotencyRecord.objects.filter(key="retry-me").exists()
    assert post(admin_client_api, event, HTTP_IDEMPOTENCY_KEY="retry-me").status_code == 202

    response = post(admin_client_api, event, HTTP_IDEMPOTENCY_KEY="k" * 256)
    assert response.status_code == 400 and "Idempotency-Key" in response.json()


def in_thread(function, results, name):
    def run():
        try:
            results[name] = function()
        except Exception as error:  # surfaced by the assertions on results
            results[name] = error
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_identical_requests_create_the_events_once(superuser):
    make_webhook()
    make_webhook()
    key = client_for(superuser)._credentials["HTTP_AUTHORIZATION"]
    event = [{"event_type": "package.created", "payload": {"id": n}} for n in range(50)]
    barrier = threading.Barrier(2, timeout=10)
    results: dict = {}

    def request():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=key)
        barrier.wait()
        response = post(client, event, HTTP_IDEMPOTENCY_KEY="concurrent")
        return response.status_code, response.json()

    threads = [in_thread(request, results, name) for name in ("a", "b")]
    for thread in threads:
        thread.join(30)
    assert results["a"][0] == results["b"][0] == 202, results
    assert results["a"][1] == results["b"][1]
    assert WebhookEvent.objects.count() == 100
    assert IdempotencyRecord.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_request_racing_another_process_returns_that_processes_answer(superuser, caplog):
    """Another API process holds the same key uncommitted; this request waits and replays it."""
    webhook = make_webhook()
    key_header = client_for(superuser)._credentials["HTTP_AUTHORIZATION"]
    event = {"event_type": "package.created", "payload": {"id": 1}}
    body = json.dumps(event).encode()
    inserted, release = threading.Event(), threading.Event()
    results: dict = {}

    def other_process():
        # What the first of two identical requests does, held open until released.
        import hashlib

        with transaction.atomic():
            created = ulak.publish("package.created", {"id": 1})
            answer = as_answer(created)
            IdempotencyRecord.objects.create(
                user=superuser,
                key="raced",
                request_hash=hashlib.sha256(body).hexdigest(),
                response_status=202,
                response_body=answer,
            )
            inserted.set()
            release.wait(10)
        return answer

    def this_request():
        inserted.wait(10)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=key_header)
        response = post(client, body, HTTP_IDEMPOTENCY_KEY="raced")
        return response.status_code, response.json(), response.get("Idempotent-Replayed")

    with caplog.at_level(logging.INFO, logger="ulak.api.publish_views"):
        first = in_thread(other_process, results, "other")
        second = in_thread(this_request, results, "this")
        inserted.wait(10)
        time.sleep(0.5)  # let this request reach the unique index (or the write lock)
        release.set()
        first.join(30)
        second.join(30)

    assert results["this"] == (202, results["other"], "true"), results
    assert WebhookEvent.objects.count() == 1
    assert WebhookEvent.objects.get().webhook_id == webhook.id
    assert "answered first" in caplog.text  # it went through the unique-index path


@pytest.mark.django_db
@pytest.mark.parametrize("accept", ["text/html", "application/xml", "*/*"])
def test_publishing_answers_json_whatever_accept_says(admin_client_api, accept):
    make_webhook()
    response = post(
        admin_client_api,
        {"event_type": "package.created", "payload": {"id": 1}},
        HTTP_ACCEPT=accept,
    )
    assert response.status_code == 202, response.content
    assert response["Content-Type"] == "application/json"
    refused = post(
        admin_client_api, {"event_type": "no.such.type", "payload": {}}, HTTP_ACCEPT=accept
    )
    assert refused.status_code == 400
    assert refused["Content-Type"].startswith("application/json")
    assert "no.such.type" in refused.json()["event_type"][0]


@pytest.mark.django_db
def test_each_publish_gets_its_own_timestamps_and_lists(admin_client_api):
    make_webhook()
    first = post(admin_client_api, {"event_type": "package.created", "payload": {"n": 1}})
    time.sleep(0.01)
    second = post(admin_client_api, {"event_type": "package.created", "payload": {"n": 2}})
    assert first.status_code == second.status_code == 202
    older, newer = WebhookEvent.objects.order_by("id")
    assert newer.created_date > older.created_date
    assert newer.next_attempt_at > older.next_attempt_at
    created = ulak.publish_many([{"event_type": "package.created", "payload": {"n": 3}}] * 2)
    created[0].request_datetimes.append("2026-11-28T10:00:00Z")
    assert created[1].request_datetimes == []
