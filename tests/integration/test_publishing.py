"""ulak.publish / publish_many / deliver_event: rows in the caller's transaction, on both databases."""

from __future__ import annotations

import datetime
import decimal
import json
import threading
import uuid

import psycopg
import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.db.models import Count
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework import serializers

import ulak
from ulak import events, publishing
from ulak.models import Webhook, WebhookEvent

RETRY = {"choice": "fixed", "kwargs": {"seconds": 5}}


def make_webhook(event_type="package.created", *, config=None, is_active=True, name=None):
    return Webhook.objects.create(
        retry_countdown_config=RETRY,
        target_url=f"https://{name or uuid.uuid4().hex[:12]}.example.com/hook",
        event_type=event_type,
        config=config or {},
        is_active=is_active,
    )


def expected_body(event: WebhookEvent, event_type: str, payload) -> str:
    return json.dumps(
        {"event": {"type": event_type, "uuid": event.uuid.hex}, "payload": payload},
        ensure_ascii=False,
        separators=(",", ":"),
    )


class Boom(Exception):
    pass


# --- what a published event looks like ---------------------------------------------------


@pytest.mark.django_db
def test_publish_creates_one_due_event_per_active_webhook_with_the_body_frozen():
    first, second = make_webhook(), make_webhook()
    make_webhook(is_active=False)
    make_webhook("package.status.shipped")
    before = timezone.now()

    created = ulak.publish("package.created", {"id": 42, "status": "created"})

    assert sorted(event.webhook_id for event in created) == sorted([first.id, second.id])
    assert WebhookEvent.objects.count() == 2
    for event in created:
        stored = WebhookEvent.objects.get(pk=event.pk)
        assert stored.uuid == event.uuid
        assert stored.request_payload == expected_body(
            event, "package.created", {"id": 42, "status": "created"}
        )
        body = json.loads(stored.request_payload)
        assert body["event"]["uuid"] == stored.uuid.hex and len(body["event"]["uuid"]) == 32
        assert before <= stored.next_attempt_at <= timezone.now()  # due at once
        assert stored.delivered is False and stored.retry_count == 0
        assert stored.request_datetimes == [] and stored.is_exhausted is False
        assert stored.object_id is None and stored.content_type_id is None
    assert created[0].uuid != created[1].uuid


@pytest.mark.django_db
def test_inactive_webhooks_and_other_event_types_get_nothing():
    make_webhook(is_active=False)
    make_webhook("package.status.shipped")
    assert ulak.publish("package.created", {"id": 1}) == []
    assert WebhookEvent.objects.count() == 0


@pytest.mark.django_db
def test_config_filter_keeps_the_webhooks_whose_config_has_every_key_equal():
    web = make_webhook(config={"channel": "web", "country": "TR"})
    web_de = make_webhook(config={"channel": "web", "country": "DE"})
    store = make_webhook(config={"channel": "store", "country": "TR"})
    bare = make_webhook(config={})
    flag = make_webhook(config={"priority": True})

    def targets(config_filter):
        return {
            e.webhook_id for e in ulak.publish("package.created", {}, config_filter=config_filter)
        }

    assert targets(None) == {web.id, web_de.id, store.id, bare.id, flag.id}
    assert targets({}) == {web.id, web_de.id, store.id, bare.id, flag.id}
    assert targets({"channel": "web"}) == {web.id, web_de.id}
    assert targets({"channel": "web", "country": "TR"}) == {web.id}
    assert targets({"channel": "marketplace"}) == set()
    # JSON equality: true is not 1, "TR" is not ["TR"].
    assert targets({"priority": True}) == {flag.id}
    assert targets({"priority": 1}) == set()
    assert targets({"country": ["TR"]}) == set()


@pytest.mark.django_db
def test_publish_many_makes_one_webhook_lookup_and_one_insert_for_the_batch():
    hooks = [make_webhook(), make_webhook()]
    shipped = make_webhook("package.status.shipped")
    batch = [
        {"event_type": "package.created", "payload": {"n": 0}},
        publishing.Publication("package.status.shipped", {"n": 1}),
        {"event_type": "package.created", "payload": {"n": 2}, "object_id": 9},
    ]
    with CaptureQueriesContext(connection) as queries:
        created = ulak.publish_many(batch)

    statements = [q["sql"] for q in queries.captured_queries]
    assert len([s for s in statements if s.startswith("INSERT")]) == 1
    assert len([s for s in statements if "ulak_webhook" in s and s.startswith("SELECT")]) == 1
    # In the order of the events, and of the webhooks' ids within one event.
    assert [(e.webhook_id, json.loads(e.request_payload)["payload"]["n"]) for e in created] == [
        (hooks[0].id, 0),
        (hooks[1].id, 0),
        (shipped.id, 1),
        (hooks[0].id, 2),
        (hooks[1].id, 2),
    ]
    assert [e.object_id for e in created] == [None, None, None, 9, 9]
    assert WebhookEvent.objects.count() == 5
    assert len({e.uuid for e in created}) == 5
    assert all(e.pk for e in created)


def stored_fields(event: WebhookEvent) -> list:
    return [getattr(event, field.attname) for field in WebhookEvent._meta.concrete_fields]


@pytest.mark.django_db(transaction=True)
def test_a_large_batch_is_stored_whole_and_returned_as_stored():
    # 60 events x 3 webhooks + 40 x 1: 220 rows, a bulk insert (PostgreSQL: COPY).
    created_hooks = [make_webhook() for _ in range(3)]
    shipped = make_webhook("package.status.shipped")
    batch = []
    for n in range(100):
        event_type = "package.created" if n % 5 < 3 else "package.status.shipped"
        # Text COPY would have to escape these; binary COPY and INSERT must not change them.
        payload = {"n": n, "text": "Kargo \\ yolda\tİ ı ş ğ\n", "price": "1.50"}
        batch.append({"event_type": event_type, "payload": payload, "object_id": n})

    with transaction.atomic():
        created = ulak.publish_many(batch)

    expected = []
    for item in batch:
        hooks = created_hooks if item["event_type"] == "package.created" else [shipped]
        expected += [(hook.id, item["payload"]["n"]) for hook in hooks]
    assert [(e.webhook_id, json.loads(e.request_payload)["payload"]["n"]) for e in created] == (
        expected
    )
    assert len(created) == 220 == WebhookEvent.objects.count()
    ids = [event.pk for event in created]
    assert ids == sorted(ids) and len(set(ids)) == 220  # the rows' order
    stored = WebhookEvent.objects.in_bulk(ids)
    for event in created:
        row = stored[event.pk]
        assert stored_fields(event) == stored_fields(row)
        assert row.object_id == json.loads(row.request_payload)["payload"]["n"]
        n = row.object_id
        assert row.request_payload == expected_body(
            row, batch[n]["event_type"], batch[n]["payload"]
        )
        assert row.uuid.version == 4


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_large_batch_outside_a_transaction_commits_and_wakes_the_workers():
    make_webhook()
    listener = listen_connection()
    try:
        created = ulak.publish_many(
            [{"event_type": "package.created", "payload": {"n": n}} for n in range(250)]
        )
        assert received(listener, 2) == ["ulak_events"]
        assert count_from_another_connection() == 250 == len(created)
    finally:
        listener.close()


class PickyArchived(events.Event):
    event_type = "test.group.picky"

    def customize_payload(self, payload):
        if payload["payload"].get("bad"):
            payload["payload"]["not_json"] = {1, 2}  # a set: not JSON
        return payload


@pytest.mark.django_db(transaction=True)
def test_a_body_failing_halfway_through_a_large_batch_writes_nothing():
    events.register(PickyArchived)
    try:
        make_webhook(PickyArchived.event_type)
        batch = [
            {"event_type": PickyArchived.event_type, "payload": {"n": n, "bad": n == 150}}
            for n in range(200)
        ]
        with transaction.atomic():
            group = Group.objects.create(name="kept")
            with pytest.raises(publishing.InvalidEvent) as raised:
                ulak.publish_many(batch)
            # The caller's transaction is still usable, and its own writes stay.
            Group.objects.create(name="also kept")
        assert list(raised.value.errors) == [150]
        assert "not JSON" in raised.value.errors[150]["payload"][0]
        assert WebhookEvent.objects.count() == 0
        assert set(Group.objects.values_list("name", flat=True)) == {"kept", "also kept"}
        assert Group.objects.filter(pk=group.pk).exists()
    finally:
        events.unregister(PickyArchived.event_type)


def refuse_object_id(object_id: int) -> None:
    """A database trigger failing the insert of the row with this object id."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION refuse_row() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'refused'; END $$"
            )
            cursor.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON ulak_webhookevent FOR EACH ROW "
                f"WHEN (NEW.object_id = {int(object_id)}) EXECUTE FUNCTION refuse_row()"
            )
        else:
            cursor.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON ulak_webhookevent "
                f"WHEN NEW.object_id = {int(object_id)} BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )


def allow_every_row() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "DROP TRIGGER refuse"
            + (" ON ulak_webhookevent" if connection.vendor == "postgresql" else "")
        )
        if connection.vendor == "postgresql":
            cursor.execute("DROP FUNCTION refuse_row()")


@pytest.mark.django_db(transaction=True)
def test_a_database_error_halfway_through_a_large_batch_writes_nothing():
    # Row 3,000 of 4,000: after the first statements went in (SQLite) or rows were
    # streamed (PostgreSQL's COPY).
    make_webhook()
    refuse_object_id(3000)
    try:
        batch = [
            {"event_type": "package.created", "payload": {"n": n}, "object_id": n}
            for n in range(4000)
        ]
        with transaction.atomic():
            Group.objects.create(name="kept")
            with pytest.raises(DatabaseError, match="refused"):
                ulak.publish_many(batch)
            Group.objects.create(name="also kept")  # the caller's transaction still works
        assert WebhookEvent.objects.count() == 0
        assert set(Group.objects.values_list("name", flat=True)) == {"kept", "also kept"}
        # And the connection is fine for the next batch.
        assert len(ulak.publish_many(batch[:200])) == 200
    finally:
        allow_every_row()


@pytest.mark.django_db(transaction=True)
@override_settings(ULAK_MAX_PAYLOAD_BYTES=1000)
def test_bad_payloads_in_a_large_batch_are_all_named_and_nothing_is_written():
    # A large batch encodes its payloads while the rows stream: a bad one found halfway
    # must still be reported with every other problem, and nothing kept.
    make_webhook()
    batch = [{"event_type": "package.created", "payload": {"n": n}} for n in range(400)]
    batch[30]["payload"] = {"text": "ş" * 600}  # 1,200 bytes as UTF-8
    batch[250]["payload"] = {"thing": object()}
    batch[390]["event_type"] = "nope"
    with transaction.atomic():
        kept = Group.objects.create(name="kept")
        with pytest.raises(publishing.PayloadTooLarge) as raised:
            ulak.publish_many(batch)
        Group.objects.create(name="also kept")
    assert sorted(raised.value.errors) == [30, 250, 390]
    assert "over the limit of 1000 bytes" in raised.value.errors[30]["payload"][0]
    assert "Not JSON serialisable" in raised.value.errors[250]["payload"][0]
    assert "Unknown event type 'nope'" in raised.value.errors[390]["event_type"][0]
    assert WebhookEvent.objects.count() == 0
    assert Group.objects.filter(pk=kept.pk).exists() and Group.objects.count() == 2

    # Only the payload problem, found halfway: the same error an upfront check gives.
    batch[30]["payload"], batch[390]["event_type"] = {"n": 30}, "package.created"
    with pytest.raises(publishing.InvalidEvent) as raised:
        ulak.publish_many(batch)
    assert not isinstance(raised.value, publishing.PayloadTooLarge)
    assert list(raised.value.errors) == [250]
    assert WebhookEvent.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_bad_payload_is_refused_in_a_large_batch_even_without_subscribers():
    make_webhook()  # for package.created only
    batch = [{"event_type": "package.created", "payload": {"n": n}} for n in range(150)]
    batch[120] = {"event_type": "package.status.shipped", "payload": {"thing": object()}}
    with pytest.raises(publishing.InvalidEvent) as raised:
        ulak.publish_many(batch)
    assert list(raised.value.errors) == [120]
    nobody = [{"event_type": "package.status.shipped", "payload": {"n": n}} for n in range(150)]
    nobody[99]["payload"] = {"thing": object()}
    with pytest.raises(publishing.InvalidEvent) as raised:
        ulak.publish_many(nobody)
    assert list(raised.value.errors) == [99]
    assert WebhookEvent.objects.count() == 0


# --- transactions ----------------------------------------------------------------------


def count_from_another_connection() -> int:
    """Count events through a new connection (another thread), as a worker would see them."""
    result = []

    def count():
        try:
            result.append(WebhookEvent.objects.count())
        finally:
            connection.close()

    thread = threading.Thread(target=count)
    thread.start()
    thread.join(10)
    return result[0]


@pytest.mark.django_db(transaction=True)
def test_events_are_visible_only_after_the_callers_transaction_commits():
    make_webhook()
    with transaction.atomic():
        created = ulak.publish("package.created", {"id": 1})
        assert len(created) == 1
        assert WebhookEvent.objects.count() == 1  # the caller sees its own rows
        assert count_from_another_connection() == 0  # nobody else does before commit
    assert count_from_another_connection() == 1


@pytest.mark.django_db(transaction=True)
def test_an_outer_rollback_leaves_nothing():
    make_webhook()
    with pytest.raises(Boom), transaction.atomic():
        ulak.publish("package.created", {"id": 1})
        with transaction.atomic():  # an inner block that succeeds
            ulak.publish("package.created", {"id": 2})
        raise Boom
    assert WebhookEvent.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_an_inner_rollback_removes_only_the_inner_events():
    make_webhook()
    with transaction.atomic():
        ulak.publish("package.created", {"id": "outer"})
        with pytest.raises(Boom), transaction.atomic():
            ulak.publish("package.created", {"id": "inner"})
            raise Boom
        ulak.publish("package.created", {"id": "after"})
    payloads = [
        json.loads(e.request_payload)["payload"]["id"] for e in WebhookEvent.objects.order_by("id")
    ]
    assert payloads == ["outer", "after"]


@pytest.mark.django_db(transaction=True)
def test_publishing_outside_a_transaction_commits_at_once():
    make_webhook()
    ulak.publish("package.created", {"id": 1})
    assert count_from_another_connection() == 1


@pytest.mark.django_db(transaction=True)
def test_an_invalid_batch_writes_nothing_and_leaves_the_callers_transaction_usable():
    make_webhook()
    with transaction.atomic():
        ulak.publish("package.created", {"id": "kept"})
        with pytest.raises(publishing.InvalidEvent) as raised:
            ulak.publish_many(
                [
                    {"event_type": "package.created", "payload": {"id": "good"}},
                    {"event_type": "package.teleported", "payload": {}},
                ]
            )
        assert raised.value.errors == {
            1: {"event_type": ["Unknown event type 'package.teleported'."]}
        }
    assert [json.loads(e.request_payload)["payload"]["id"] for e in WebhookEvent.objects.all()] == [
        "kept"
    ]


def listen_connection():
    settings = connection.settings_dict
    listener = psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"] or None,
        password=settings["PASSWORD"] or None,
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
        autocommit=True,
    )
    listener.execute(f"LISTEN {publishing.WAKEUP_CHANNEL}")
    return listener


def received(listener, wait: float) -> list[str]:
    return [n.channel for n in listener.notifies(timeout=wait)]


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_workers_are_notified_on_commit_only():
    assert publishing.WAKEUP_CHANNEL == "ulak_events"
    make_webhook()
    listener = listen_connection()
    try:
        with transaction.atomic():
            ulak.publish("package.created", {"id": 1})
            ulak.publish("package.created", {"id": 2})
            assert received(listener, 0.3) == []  # not before commit
        # Once for the transaction (PostgreSQL folds identical notifications).
        assert received(listener, 2) == ["ulak_events"]

        with pytest.raises(Boom), transaction.atomic():
            ulak.publish("package.created", {"id": 3})
            raise Boom
        assert received(listener, 0.5) == []  # a rollback wakes nobody

        with transaction.atomic():
            with pytest.raises(Boom), transaction.atomic():
                ulak.publish("package.created", {"id": 4})
                raise Boom
        assert received(listener, 0.5) == []  # nor does a rolled-back savepoint
    finally:
        listener.close()


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_one_statement_inserts_and_notifies():
    make_webhook()
    make_webhook()
    listener = listen_connection()
    try:
        created = ulak.publish("package.created", {"id": 5})
        assert received(listener, 2) == ["ulak_events"]
        # Committed at once, and once: both webhooks' events, with the ids the answer gives.
        assert sorted(e.id for e in created) == sorted(
            WebhookEvent.objects.values_list("id", flat=True)
        )
        assert len(created) == 2
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement FROM pg_prepared_statements")
            prepared = [row[0] for row in cursor.fetchall()]
        # The hot statements are prepared once per connection, not planned per request.
        assert any("pg_notify" in text and "INSERT INTO" in text for text in prepared), prepared
        assert any("is_active" in text for text in prepared), prepared
    finally:
        listener.close()


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_one_event_is_matched_inserted_and_notified_by_one_statement():
    hooks = [make_webhook() for _ in range(3)]
    make_webhook(is_active=False)
    make_webhook("package.status.shipped")
    payload = {"id": 7, "name": "İğne ışık", "price": "12.50"}
    listener = listen_connection()
    try:
        with CaptureQueriesContext(connection) as queries:
            created = ulak.publish("package.created", payload, object_id=70)
        statements = [q["sql"] for q in queries.captured_queries]
        assert len(statements) == 1, statements
        assert "INSERT INTO" in statements[0] and "pg_notify" in statements[0]
        assert received(listener, 2) == ["ulak_events"]

        # In the order of the webhooks' ids, each the row PostgreSQL stored.
        assert [event.webhook_id for event in created] == [hook.id for hook in hooks]
        fields = [field.attname for field in WebhookEvent._meta.concrete_fields]
        for event in created:
            stored = WebhookEvent.objects.get(pk=event.pk)
            assert [getattr(event, name) for name in fields] == [
                getattr(stored, name) for name in fields
            ]
            assert stored.request_payload == expected_body(stored, "package.created", payload)
            assert stored.uuid.version == 4 and stored.object_id == 70
        assert len({event.uuid for event in created}) == 3

        # Nothing matched: nothing written, nobody woken.
        assert ulak.publish("package.status.cancelled", {"id": 8}) == []
        assert received(listener, 0.5) == []
        assert WebhookEvent.objects.count() == 3
    finally:
        listener.close()


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_config_filters_and_customized_bodies_keep_the_python_match():
    # JSON equality (1 is not true) and customize_payload are Python's: two statements.
    flag = make_webhook(config={"priority": True})
    make_webhook(config={"priority": 1})
    with CaptureQueriesContext(connection) as queries:
        created = ulak.publish("package.created", {"id": 9}, config_filter={"priority": True})
    assert [event.webhook_id for event in created] == [flag.id]
    assert len(queries.captured_queries) == 2


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_prepared_statements_can_be_turned_off(settings):
    settings.ULAK_PREPARED_STATEMENTS = False
    make_webhook()
    connection.close()  # a fresh connection: nothing prepared on it yet
    assert len(ulak.publish("package.created", {"id": 6})) == 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        assert cursor.fetchone()[0] == 0
    assert WebhookEvent.objects.count() == 1


# --- payload fidelity -------------------------------------------------------------------


@pytest.mark.django_db
def test_decimals_datetimes_uuids_and_turkish_text_survive_unchanged():
    make_webhook()
    moment = datetime.datetime(2024, 3, 1, 12, 34, 56, 789012, tzinfo=datetime.UTC)
    istanbul = datetime.datetime(
        2024, 3, 1, 15, 34, 56, 789012, tzinfo=datetime.timezone(datetime.timedelta(hours=3))
    )
    key = uuid.UUID("6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b")
    payload = {
        "price": decimal.Decimal("1299.90"),
        "tiny": decimal.Decimal("0.000000000000000001"),
        "shipped_at": moment,
        "local_time": istanbul,
        "day": datetime.date(2024, 2, 29),
        "slot": datetime.time(9, 30, 0, 123456),
        "reference": key,
        "city": "İstanbul",
        "note": "Işık ağır şişe, çok güzel ürün; ÖĞÜŞ",
        "emoji": "📦",
    }
    (event,) = ulak.publish("package.created", payload)
    text = WebhookEvent.objects.get(pk=event.pk).request_payload

    assert "İstanbul" in text and "Işık ağır şişe, çok güzel ürün; ÖĞÜŞ" in text and "📦" in text
    assert "\\u" not in text  # readable UTF-8, not escaped
    sent = json.loads(text)["payload"]
    assert decimal.Decimal(sent["price"]) == payload["price"] and sent["price"] == "1299.90"
    assert decimal.Decimal(sent["tiny"]) == payload["tiny"]
    assert datetime.datetime.fromisoformat(sent["shipped_at"]) == moment
    assert sent["shipped_at"] == "2024-03-01T12:34:56.789012Z"
    assert datetime.datetime.fromisoformat(sent["local_time"]) == istanbul
    assert sent["local_time"] == "2024-03-01T15:34:56.789012+03:00"
    assert sent["day"] == "2024-02-29"
    assert sent["slot"] == "09:30:00.123456"
    assert uuid.UUID(sent["reference"]) == key
    assert sent["city"] == "İstanbul"
    # Compact JSON: the bytes a receiver gets are the stored text.
    assert ", " not in text.split('"note"')[0] and ": " not in text.split('"note"')[0]


@pytest.mark.django_db
def test_payload_errors_name_the_problem_and_write_nothing():
    make_webhook()
    with pytest.raises(publishing.InvalidEvent, match="Unknown event type 'nope'"):
        ulak.publish("nope", {})
    with pytest.raises(publishing.InvalidEvent, match="Not JSON serialisable"):
        ulak.publish("package.created", {"thing": object()})
    with pytest.raises(publishing.InvalidEvent, match="A payload or an instance is required"):
        ulak.publish("package.created")
    with pytest.raises(publishing.InvalidEvent, match="Unknown content type 'oms.nothing'"):
        ulak.publish("package.created", {}, content_type="oms.nothing")
    with pytest.raises(publishing.InvalidEvent, match="object_id"):
        ulak.publish("package.created", {}, object_id=-1)
    with override_settings(ULAK_MAX_PAYLOAD_BYTES=100):
        with pytest.raises(publishing.PayloadTooLarge, match="over the limit of 100 bytes"):
            ulak.publish("package.created", {"text": "ş" * 60})  # 120 bytes as UTF-8
        ulak.publish("package.created", {"text": "s" * 80})  # under the limit: fine
    assert WebhookEvent.objects.count() == 1


@pytest.mark.django_db
def test_content_type_by_model_instance_id_or_natural_key():
    make_webhook()
    group_type = ContentType.objects.get_for_model(Group)
    for value in (Group, group_type, group_type.id, "auth.group", "auth.Group"):
        (event,) = ulak.publish("package.created", {}, object_id=5, content_type=value)
        stored = WebhookEvent.objects.get(pk=event.pk)
        assert (stored.content_type_id, stored.object_id) == (group_type.id, 5), value


# --- instances, serializers, deliver_event ------------------------------------------------


class GroupSerializer(serializers.ModelSerializer):
    permission_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Group
        fields = ["id", "name", "permission_count"]


class GroupChanged(events.Event):
    event_type = "test.group.changed"
    serializer_class = GroupSerializer
    # The serializer's permission_count exists only on rows loaded through this queryset.
    queryset = Group.objects.annotate(permission_count=Count("permissions"))


class GroupArchived(events.Event):
    event_type = "test.group.archived"

    def customize_payload(self, payload):
        payload["payload"]["source"] = "oms"
        payload["signed_by"] = "ulak"
        return payload


@pytest.fixture
def group_events():
    events.register(GroupChanged, GroupArchived)
    yield
    events.unregister(GroupChanged.event_type)
    events.unregister(GroupArchived.event_type)


@pytest.mark.django_db
def test_an_instance_gives_the_payload_through_its_serializer_and_names_the_object(group_events):
    webhook = make_webhook(GroupChanged.event_type)
    group = Group.objects.create(name="Kargo İşlemleri")
    group.permissions.add(*Permission.objects.all()[:3])

    (event,) = ulak.publish(GroupChanged.event_type, instance=group)

    stored = WebhookEvent.objects.get(pk=event.pk)
    assert stored.webhook_id == webhook.id
    assert stored.object_id == group.pk
    assert stored.content_type_id == ContentType.objects.get_for_model(Group).id
    assert stored.request_payload == expected_body(
        stored,
        GroupChanged.event_type,
        {"id": group.pk, "name": "Kargo İşlemleri", "permission_count": 3},
    )


@pytest.mark.django_db
def test_an_explicit_payload_wins_over_the_instance(group_events):
    make_webhook(GroupChanged.event_type)
    group = Group.objects.create(name="Depo")
    (event,) = ulak.publish(GroupChanged.event_type, {"custom": True}, instance=group, object_id=77)
    assert json.loads(event.request_payload)["payload"] == {"custom": True}
    assert event.object_id == 77


@pytest.mark.django_db
def test_customize_payload_changes_the_whole_body_for_each_webhook(group_events):
    make_webhook(GroupArchived.event_type)
    make_webhook(GroupArchived.event_type)
    created = ulak.publish(GroupArchived.event_type, {"id": 3})
    assert len(created) == 2
    for event in created:
        body = json.loads(WebhookEvent.objects.get(pk=event.pk).request_payload)
        assert body == {
            "event": {"type": GroupArchived.event_type, "uuid": event.uuid.hex},
            "payload": {"id": 3, "source": "oms"},
            "signed_by": "ulak",
        }


@pytest.mark.django_db
def test_deliver_event_has_the_libraries_meaning(group_events):
    make_webhook(GroupChanged.event_type, config={"channel": "web"})
    make_webhook(GroupChanged.event_type, config={"channel": "store"})
    make_webhook("package.created")
    group = Group.objects.create(name="Mağaza")

    # A model instance: serialised by the event class, the event names the object.
    created = ulak.deliver_event(group, GroupChanged.event_type)
    assert len(created) == 2
    assert {json.loads(e.request_payload)["payload"]["name"] for e in created} == {"Mağaza"}
    assert {e.object_id for e in created} == {group.pk}

    # config_filter and the ignored async_ flag, as the library's callers pass them.
    created = ulak.deliver_event(
        group, GroupChanged.event_type, async_=False, config_filter={"channel": "store"}
    )
    assert len(created) == 1

    # A dict is the payload.
    (event,) = ulak.deliver_event({"id": 5, "status": "created"}, "package.created")
    assert json.loads(event.request_payload)["payload"] == {"id": 5, "status": "created"}

    # Without a serializer, the library sent Django's JSON serialisation of the object.
    (event,) = ulak.deliver_event(group, "package.created")
    serialised = json.loads(json.loads(event.request_payload)["payload"])
    assert serialised[0]["model"] == "auth.group" and serialised[0]["pk"] == group.pk
    assert event.object_id == group.pk

    with pytest.raises(TypeError, match="retry"):
        ulak.deliver_event(group, "package.created", event_uuid=uuid.uuid4())
    with pytest.raises(TypeError, match="model instance or a dict"):
        ulak.deliver_event([1, 2], "package.created")
    with pytest.raises(publishing.InvalidEvent, match="Unknown event type"):
        ulak.deliver_event({"id": 1}, "package.teleported")


@pytest.mark.django_db(transaction=True)
def test_a_new_connection_after_commit_sees_the_same_bytes():
    """What a worker in another process reads is exactly what publish froze."""
    make_webhook()
    with transaction.atomic():
        (event,) = ulak.publish(
            "package.created", {"ad": "Çağrı", "tutar": decimal.Decimal("10.10")}
        )
    close_old_connections()
    seen = []

    def read():
        try:
            seen.append(WebhookEvent.objects.values_list("request_payload", flat=True).get())
        finally:
            connection.close()

    thread = threading.Thread(target=read)
    thread.start()
    thread.join(10)
    assert seen == [event.request_payload]
