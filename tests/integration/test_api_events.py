"""The event lists (contract §2): undelivered and all events, filters, ordering, pagination."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ulak.models import Webhook, WebhookEvent

UNDELIVERED = "/api/v1/oms/settings/undelivered_webhooks/"
EVENTS = "/api/v1/oms/settings/webhook_events/"
EVENT_KEYS = [
    "id",
    "webhook",
    "created_date",
    "modified_date",
    "uuid",
    "request_payload",
    "response_content",
    "response_http_status",
    "delivered",
    "request_datetimes",
    "retry_count",
    "object_id",
    "content_type",
]


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # Users are made per test; the default password hashing costs 0.3 s each.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def make_webhook(owner, event_type: str = "package.created", **fields) -> Webhook:
    fields.setdefault("target_url", f"https://hooks.example.com/{event_type}")
    return Webhook.objects.create(
        owner=owner,
        retry_countdown_config={"choice": "fixed", "kwargs": {"seconds": 60}},
        event_type=event_type,
        **fields,
    )


def make_event(webhook: Webhook, created: dt.datetime | None = None, **fields) -> WebhookEvent:
    event_uuid = fields.pop("uuid", None) or uuid.uuid4()
    body = {"event": {"type": webhook.event_type, "uuid": event_uuid.hex}, "payload": {"id": 1}}
    event = WebhookEvent.objects.create(
        webhook=webhook, uuid=event_uuid, request_payload=json.dumps(body), **fields
    )
    if created is not None:
        WebhookEvent.objects.filter(id=event.id).update(created_date=created)
    return event


def ids(client, path: str, query: str = "") -> list[int]:
    response = client.get(f"{path}?{query}")
    assert response.status_code == 200, (query, response.content)
    body = response.json()
    assert body["count"] == len(body["results"])
    return [item["id"] for item in body["results"]]


@pytest.mark.django_db
def test_undelivered_list_is_newest_first_and_only_undelivered(user, user_client):
    webhook = make_webhook(user)
    old = make_event(webhook)
    make_event(webhook, delivered=True)
    new = make_event(webhook)

    assert ids(user_client, UNDELIVERED) == [new.id, old.id]
    assert len(ids(user_client, EVENTS)) == 3


@pytest.mark.django_db
def test_event_shape(user, user_client):
    webhook = make_webhook(user, secret_key="abcdefgh1234")
    event = make_event(
        webhook,
        response_content="b'nope'",
        response_http_status=503,
        request_datetimes=["2023-10-12T10:08:22.570834Z"],
        retry_count=1,
    )

    item = user_client.get(f"{EVENTS}{event.id}/").json()

    assert list(item) == EVENT_KEYS
    assert item["uuid"] == str(event.uuid)
    assert item["request_payload"]["event"]["uuid"] == event.uuid.hex
    assert item["webhook"]["id"] == webhook.id
    assert item["webhook"]["secret_key"] == "****1234"
    assert item["response_content"] == "b'nope'"
    assert item["response_http_status"] == 503
    assert item["request_datetimes"] == ["2023-10-12T10:08:22.570834Z"]
    assert item["retry_count"] == 1
    assert item["object_id"] is None
    assert item["content_type"] is None


@pytest.mark.django_db
def test_list_costs_the_same_queries_for_one_row_or_many(user, other_user, admin_client_api):
    make_event(make_webhook(user))

    def queries_for_list() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client_api.get(f"{UNDELIVERED}?page_size=100").status_code == 200
        return len(captured.captured_queries)

    one_row = queries_for_list()
    content_type = ContentType.objects.get_for_model(Webhook)
    for owner, event_type in ((user, "shipment.created"), (other_user, "package.created")):
        webhook = make_webhook(owner, event_type)
        for index in range(10):
            make_event(webhook, object_id=index, content_type=content_type)

    assert queries_for_list() == one_row


@pytest.mark.django_db
def test_event_filters(user, user_client):
    package_type = ContentType.objects.get_for_model(Webhook)
    shipped = make_webhook(user, "package.status.shipped")
    created = make_webhook(user, "package.created")
    a = make_event(
        shipped,
        object_id=8812,
        content_type=package_type,
        response_http_status=500,
        retry_count=11,
        is_exhausted=True,
    )
    b = make_event(created, object_id=7, response_http_status=404, retry_count=2)
    c = make_event(created, delivered=True, retry_count=1, response_http_status=200)

    assert ids(user_client, UNDELIVERED, "event_type=Package.Status.Shipped") == [a.id]
    assert ids(user_client, UNDELIVERED, f"webhook={created.id}") == [b.id]
    assert ids(user_client, UNDELIVERED, f"uuid={b.uuid}") == [b.id]
    assert ids(user_client, UNDELIVERED, f"uuid={b.uuid.hex}") == [b.id]
    assert ids(user_client, UNDELIVERED, "object_id=8812") == [a.id]
    assert ids(user_client, UNDELIVERED, f"content_type={package_type.id}") == [a.id]
    assert ids(user_client, UNDELIVERED, "response_http_status=404") == [b.id]
    assert ids(user_client, UNDELIVERED, "retry_count__gte=2") == [b.id, a.id]
    assert ids(user_client, UNDELIVERED, "retry_count__gte=3") == [a.id]
    assert ids(user_client, UNDELIVERED, "is_exhausted=true") == [a.id]
    assert ids(user_client, UNDELIVERED, "is_exhausted=false") == [b.id]
    # The undelivered list never shows delivered events, whatever the filters say.
    assert ids(user_client, UNDELIVERED, f"uuid={c.uuid}") == []
    assert ids(user_client, EVENTS, "delivered=true") == [c.id]
    assert ids(user_client, EVENTS, "delivered=false") == [b.id, a.id]
    assert ids(user_client, EVENTS, f"webhook={created.id}&delivered=1") == [c.id]
    assert ids(user_client, "/whisperer/hook_events/", "event_type=package.created") == [
        c.id,
        b.id,
    ]


@pytest.fixture
def day_edges(user):
    """Events at the edges of 2023-10-12 (UTC) and in its middle."""
    webhook = make_webhook(user)
    moments = {
        "before": dt.datetime(2023, 10, 11, 23, 59, 59, 999999, tzinfo=dt.UTC),
        "start": dt.datetime(2023, 10, 12, 0, 0, 0, tzinfo=dt.UTC),
        "noon": dt.datetime(2023, 10, 12, 12, 0, 0, 250000, tzinfo=dt.UTC),
        "end": dt.datetime(2023, 10, 12, 23, 59, 59, 999999, tzinfo=dt.UTC),
        "after": dt.datetime(2023, 10, 13, 0, 0, 0, tzinfo=dt.UTC),
    }
    return {name: make_event(webhook, created=moment).id for name, moment in moments.items()}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("created_date=2023-10-12", ["start", "noon", "end"]),
        ("created_date__lte=2023-10-12", ["before", "start", "noon", "end"]),
        ("created_date__lt=2023-10-12", ["before"]),
        ("created_date__gte=2023-10-12", ["start", "noon", "end", "after"]),
        ("created_date__gt=2023-10-12", ["after"]),
        ("created_date__gte=2023-10-12&created_date__lte=2023-10-12", ["start", "noon", "end"]),
        ("created_date__gt=2023-10-11&created_date__lt=2023-10-13", ["start", "noon", "end"]),
        ("created_date=2023-10-12T12:00:00.250000Z", ["noon"]),
        ("created_date__gt=2023-10-12T00:00:00Z", ["noon", "end", "after"]),
        ("created_date__gte=2023-10-12T00:00:00Z", ["start", "noon", "end", "after"]),
        ("created_date__lt=2023-10-12T12:00:00.250000Z", ["before", "start"]),
        ("created_date__lte=2023-10-12T12:00:00.250000Z", ["before", "start", "noon"]),
        # A naive datetime is UTC; an offset is honoured (%2B is "+").
        ("created_date__gte=2023-10-12T12:00:00.250001", ["end", "after"]),
        ("created_date__lte=2023-10-12T03:00:00%2B03:00", ["before", "start"]),
        # An unencoded "+" arrives as a space; it still means the offset.
        ("created_date__lte=2023-10-12T03:00:00+03:00", ["before", "start"]),
        ("created_date__gt=2023-10-12T10:00:00.25-02:00", ["end", "after"]),
        ("created_date=2023-10-14", []),
    ],
)
def test_created_date_filters(user_client, day_edges, query, expected):
    wanted = sorted((day_edges[name] for name in expected), reverse=True)
    assert ids(user_client, UNDELIVERED, query) == wanted


@pytest.mark.django_db
def test_created_date_at_the_ends_of_the_calendar(user_client, day_edges):
    assert len(ids(user_client, UNDELIVERED, "created_date__lte=9999-12-31")) == 5
    assert ids(user_client, UNDELIVERED, "created_date__gt=9999-12-31") == []
    assert len(ids(user_client, UNDELIVERED, "created_date__gte=0001-01-01")) == 5


@pytest.mark.django_db
def test_event_ordering(user, user_client):
    webhook = make_webhook(user)
    first = make_event(webhook, retry_count=3)
    second = make_event(webhook, retry_count=1)
    third = make_event(webhook, retry_count=3)

    assert ids(user_client, UNDELIVERED, "ordering=retry_count") == [second.id, third.id, first.id]
    assert ids(user_client, UNDELIVERED, "ordering=-retry_count,id") == [
        first.id,
        third.id,
        second.id,
    ]
    assert ids(user_client, UNDELIVERED, "ordering=id") == [first.id, second.id, third.id]
    assert ids(user_client, EVENTS, "ordering=created_date") == [first.id, second.id, third.id]


@pytest.mark.django_db
def test_event_pagination_links(user, user_client):
    webhook = make_webhook(user)
    made = [make_event(webhook).id for _ in range(5)]
    newest_first = made[::-1]

    page1 = user_client.get(f"{UNDELIVERED}?page_size=2&event_type=package.created").json()
    assert page1["count"] == 5
    assert [item["id"] for item in page1["results"]] == newest_first[:2]
    assert page1["previous"] is None
    # The links keep the filters and the page size.
    assert "event_type=package.created" in page1["next"]
    page2 = user_client.get(page1["next"]).json()
    assert [item["id"] for item in page2["results"]] == newest_first[2:4]
    page3 = user_client.get(page2["next"]).json()
    assert [item["id"] for item in page3["results"]] == newest_first[4:]
    assert page3["next"] is None
    assert user_client.get(page3["previous"]).json() == page2
    assert page1["next"].startswith("http://testserver" + UNDELIVERED)


@pytest.mark.django_db
def test_page_size_is_clamped_at_1000(user, user_client):
    webhook = make_webhook(user)
    WebhookEvent.objects.bulk_create(
        WebhookEvent(webhook=webhook, uuid=uuid.uuid4(), request_payload="{}") for _ in range(1003)
    )

    body = user_client.get(f"{UNDELIVERED}?page_size=1000000").json()

    assert body["count"] == 1003
    assert len(body["results"]) == 1000
    assert "page=2" in body["next"]
    # The default page is 20.
    assert len(user_client.get(UNDELIVERED).json()["results"]) == 20


@pytest.mark.django_db
def test_deep_pages_skip_over_ids_only_and_keep_the_order(user, user_client):
    hook = make_webhook(user)
    made = [make_event(hook).id for _ in range(7)]
    url = "/api/v1/oms/settings/undelivered_webhooks/?page_size=2&page=3&ordering=id"
    with CaptureQueriesContext(connection) as queries:
        response = user_client.get(url)
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == sorted(made)[4:6]
    offset_queries = [q["sql"] for q in queries if "OFFSET" in q["sql"].upper()]
    # The OFFSET walks ids alone; the page's rows (and their webhooks) are loaded by id.
    assert len(offset_queries) == 1
    select_list = offset_queries[0].upper().split(" FROM ")[0]
    assert "REQUEST_PAYLOAD" not in select_list and "TARGET_URL" not in select_list
