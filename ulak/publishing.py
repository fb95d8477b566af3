"""Publishing (contract §5): events into the outbox, in the caller's transaction.

``publish()`` writes one WebhookEvent per active webhook of the event type whose ``config``
matches the ``config_filter``. The row is the job: nothing else is stored and nothing is sent
here, so a rollback leaves nothing behind and nothing can go out before the commit. The body
of contract §3 is frozen in ``request_payload`` at once, so every attempt (and signature)
uses the same bytes.

Speed: ``publish_many()`` looks the webhooks up once for the whole batch and serialises each
payload once (the per-webhook body only splices in the event uuid). How rows go in depends
on their number and the database: on PostgreSQL one event without a config filter is one
statement (match, insert, NOTIFY), up to 100 rows are one prepared unnest INSERT, more are
streamed by COPY; on SQLite multi-row INSERTs, run on a helper thread for more than 100 rows.
"""

from __future__ import annotations

import copy
import datetime
import itertools
import json
import logging
import os
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.utils import timezone

from ulak import events as event_registry
from ulak import statements
from ulak.conf import setting
from ulak.models import Webhook, WebhookEvent

__all__ = [
    "WAKEUP_CHANNEL",
    "Publication",
    "InvalidEvent",
    "PayloadTooLarge",
    "PayloadEncoder",
    "encode_json",
    "publish",
    "publish_many",
    "check_events",
    "deliver_event",
]

logger = logging.getLogger(__name__)

# PostgreSQL channel the workers LISTEN on; publishing NOTIFYs it in the publishing
# transaction, and PostgreSQL delivers the notification only when that transaction commits.
WAKEUP_CHANNEL = "ulak_events"

MAX_OBJECT_ID = 2**63 - 1


class PayloadEncoder(DjangoJSONEncoder):
    """DjangoJSONEncoder (Decimal as a string, UUID, lazy strings, dates) but keeping microseconds.

    DjangoJSONEncoder cuts datetimes and times to milliseconds; a payload must survive unchanged.
    """

    def default(self, o: Any) -> Any:
        if isinstance(o, datetime.datetime):
            text = o.isoformat()
            return text[:-6] + "Z" if text.endswith("+00:00") else text
        if isinstance(o, datetime.time):
            return o.isoformat()
        return super().default(o)


# Compact UTF-8 JSON: Turkish text (İ, ı, ş, ğ) stays readable, not \\u-escaped.
encode_json = PayloadEncoder(ensure_ascii=False, separators=(",", ":")).encode


class InvalidEvent(ValueError):
    """Events that cannot be published. ``errors``: {index: {field: [message, ...]}}."""

    def __init__(self, errors: dict[int, dict[str, list[str]]]):
        self.errors = errors
        described = "; ".join(
            f"event {index}: {field}: {' '.join(messages)}"
            for index, fields in errors.items()
            for field, messages in fields.items()
        )
        super().__init__(described)


class PayloadTooLarge(InvalidEvent):
    """At least one payload is over ULAK_MAX_PAYLOAD_BYTES (``errors`` lists every problem)."""


@dataclass(frozen=True, slots=True)
class Publication:
    """One event to publish (the arguments of ``publish``)."""

    event_type: str
    payload: Any = None
    instance: Any = None
    object_id: int | None = None
    # A ContentType, a model class, an id, or "app_label.model".
    content_type: Any = None
    config_filter: Mapping[str, Any] | None = None


def publish(
    event_type: str,
    payload: Any = None,
    *,
    instance: Any = None,
    object_id: int | None = None,
    content_type: Any = None,
    config_filter: Mapping[str, Any] | None = None,
    using: str | None = None,
) -> list[WebhookEvent]:
    """Publish one event: one WebhookEvent per matching active webhook, in the caller's transaction.

    ``instance`` (a model object) gives ``object_id``, ``content_type`` and, when ``payload``
    is None, the payload through the event class's serializer. Raises InvalidEvent
    (PayloadTooLarge for a payload over ULAK_MAX_PAYLOAD_BYTES).
    """
    publication = Publication(event_type, payload, instance, object_id, content_type, config_filter)
    return publish_many([publication], using=using)


def publish_many(
    events: Iterable[Publication | Mapping[str, Any]], *, using: str | None = None
) -> list[WebhookEvent]:
    """Publish many events with one webhook lookup and one bulk insert; all or nothing.

    ``events`` are Publications or mappings with the same keys. Returns the created
    WebhookEvents in the order of the events (and of the webhooks' ids within one event).
    """
    database = using or DEFAULT_DB_ALIAS
    publications = [
        item if isinstance(item, Publication) else Publication(**item) for item in events
    ]
    connection = connections[database]
    # Many events: encode the payloads while their rows stream to the database, not before.
    deferred = len(publications) > _PREPARED_ROWS and not statements.watched(connection)
    try:
        prepared = _prepare(publications, database, encode=not deferred)
    except InvalidEvent:
        if deferred:
            _prepare(publications, database)  # raises, naming the payloads' problems too
        raise
    if not prepared:
        return []
    try:
        return _store(prepared, database)
    except _LatePayloadError as late:
        # A payload failed halfway (its batch's writes were rolled back): check every
        # event as an upfront check would, so the error lists every problem.
        _prepare(publications, database)
        raise late.public() from None


def _store(prepared: list[_Prepared], database: str) -> list[WebhookEvent]:
    """Match the events' webhooks and write the rows, the fastest way for their number."""
    connection = connections[database]
    if connection.vendor == "postgresql" and len(prepared) == 1:
        item = prepared[0]
        if not item.filter_key and not item.event_class.customizes_payload():
            # The common one-event publish: match and insert in one statement.
            if not connection.in_atomic_block:
                return _insert_matched_postgresql(item, database)
            with transaction.atomic(using=database):
                return _insert_matched_postgresql(item, database)
    targets = _targets(prepared, _match_webhooks(prepared, database))
    row_count = sum(len(webhook_ids) for webhook_ids in targets)
    if not row_count:
        # Nothing to write, but a bad payload is refused whether or not anyone subscribed.
        limit = int(setting("ULAK_MAX_PAYLOAD_BYTES"))
        for item in prepared:
            _payload_json(item, limit)
        return []
    if row_count > _PREPARED_ROWS and not statements.watched(connection):
        # Many rows: the database writes rows while this process builds the next ones.
        with transaction.atomic(using=database):
            if connection.vendor == "postgresql":
                created = _copy_postgresql(prepared, targets, row_count, database)
            else:
                created = _insert_values_in_background(prepared, targets, database)
            _notify_workers(database)
        return created
    rows = list(_build_rows(prepared, targets))
    if (
        connection.vendor == "postgresql"
        and not connection.in_atomic_block
        and len(rows) <= _PREPARED_ROWS
    ):
        # Outside a transaction, one statement inserts the rows and queues the NOTIFY and
        # commits on its own: no BEGIN, separate NOTIFY and COMMIT round trips.
        return _insert_rows(rows, database, notify=True)
    # A savepoint when the caller is in a transaction (a failure here leaves the caller's
    # transaction usable), a transaction of its own otherwise: the rows and the wake-up
    # notification commit together or not at all.
    with transaction.atomic(using=database):
        created = _insert_rows(rows, database)
        _notify_workers(database)
    return created


def check_events(
    events: Iterable[Publication | Mapping[str, Any]], *, using: str | None = None
) -> None:
    """Raise InvalidEvent (or PayloadTooLarge) as publish_many would, without writing anything."""
    publications = [
        item if isinstance(item, Publication) else Publication(**item) for item in events
    ]
    _prepare(publications, using or DEFAULT_DB_ALIAS)


def deliver_event(
    instance: Any,
    event_type: str,
    async_: bool = True,
    event_uuid: Any = None,
    config_filter: Mapping[str, Any] | None = None,
) -> list[WebhookEvent]:
    """The webhook library's ``deliver_event``, so its callers can switch unchanged.

    ``instance`` is a model object (serialised by the event class, reloaded through its
    ``queryset``; the event names the object) or a dict (the payload). Delivery always goes
    through the outbox and the worker, after commit: ``async_`` is accepted and ignored.
    """
    if event_uuid is not None:
        raise TypeError(
            "deliver_event(event_uuid=...) re-sent an existing event in the library; "
            "in Ulak retry it with POST /api/v1/oms/settings/webhook_events/{id}/retry/."
        )
    if isinstance(instance, dict):
        return publish(event_type, instance, config_filter=config_filter)
    if isinstance(instance, models.Model):
        return publish(event_type, instance=instance, config_filter=config_filter)
    raise TypeError(
        f"deliver_event needs a model instance or a dict, not {type(instance).__name__}."
    )


# --- preparing events --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Prepared:
    index: int
    event_type: str
    event_class: type[event_registry.Event]
    payload: Any
    # None when encoding was deferred to the streaming of the rows (_payload_json).
    payload_json: str | None
    object_id: int | None
    content_type_id: int | None
    filter_key: tuple[tuple[str, str], ...]


def _prepare(
    publications: list[Publication], database: str, *, encode: bool = True
) -> list[_Prepared]:
    """Validate every event and serialise its payload once; InvalidEvent lists every problem.

    ``encode=False`` leaves the payloads' JSON (and their size check) to _payload_json.
    """
    classes = event_registry.registry.classes()
    limit = int(setting("ULAK_MAX_PAYLOAD_BYTES"))
    content_types = _ContentTypes(database)
    errors: dict[int, dict[str, list[str]]] = {}
    too_large = False
    prepared: list[_Prepared] = []
    for index, publication in enumerate(publications):
        problems: dict[str, list[str]] = {}
        event_type = publication.event_type
        event_class = classes.get(event_type) if isinstance(event_type, str) else None
        if event_class is None:
            problems["event_type"] = [f"Unknown event type {event_type!r}."]
        payload = publication.payload
        object_id = publication.object_id
        content_type = publication.content_type
        instance = publication.instance
        if instance is not None:
            if isinstance(instance, models.Model):
                if object_id is None and isinstance(instance.pk, int):
                    object_id = instance.pk
                if content_type is None:
                    content_type = type(instance)
            if payload is None and event_class is not None:
                event = event_class()
                payload = event.serialize(event.reload(instance))
        elif payload is None:
            problems["payload"] = ["A payload or an instance is required."]

        content_type_id = None
        if content_type is not None:
            content_type_id = content_types.resolve(content_type)
            if content_type_id is None:
                problems["content_type"] = [f"Unknown content type {content_type!r}."]
        if object_id is not None and (
            not isinstance(object_id, int)
            or isinstance(object_id, bool)
            or not 0 <= object_id <= MAX_OBJECT_ID
        ):
            problems["object_id"] = ["Must be an integer between 0 and 2^63-1, or null."]

        filter_key: tuple[tuple[str, str], ...] = ()
        config_filter = publication.config_filter
        if config_filter:
            if not isinstance(config_filter, Mapping):
                problems["config_filter"] = ["Must be a JSON object."]
            else:
                try:
                    filter_key = tuple(
                        sorted(
                            (str(key), _canonical(value)) for key, value in config_filter.items()
                        )
                    )
                except (TypeError, ValueError) as error:
                    problems["config_filter"] = [f"Not JSON serialisable: {error}."]

        payload_json = None
        if encode and "payload" not in problems:
            try:
                payload_json = _encoded_payload(payload, limit)
            except _PayloadProblem as problem:
                too_large = too_large or problem.too_large
                problems["payload"] = [problem.message]
        if problems:
            errors[index] = problems
            continue
        prepared.append(
            _Prepared(
                index,
                event_type,
                event_class,
                payload,
                payload_json,
                object_id,
                content_type_id,
                filter_key,
            )
        )
    if errors:
        raise (PayloadTooLarge if too_large else InvalidEvent)(errors)
    return prepared


class _PayloadProblem(Exception):
    def __init__(self, message: str, *, too_large: bool = False):
        super().__init__(message)
        self.message = message
        self.too_large = too_large


def _encoded_payload(payload: Any, limit: int) -> str:
    """The payload's JSON; _PayloadProblem if it is not serialisable or over ``limit`` bytes."""
    try:
        payload_json = encode_json(payload)
    except (TypeError, ValueError) as error:
        raise _PayloadProblem(f"Not JSON serialisable: {error}.") from None
    # A UTF-8 character has at most 4 bytes: encode only when it could be over.
    if len(payload_json) * 4 > limit and len(payload_json.encode()) > limit:
        raise _PayloadProblem(
            f"The payload is {len(payload_json.encode())} bytes as JSON, "
            f"over the limit of {limit} bytes.",
            too_large=True,
        )
    return payload_json


class _LatePayloadError(Exception):
    """A deferred payload failed while the rows were being written (see publish_many)."""

    def __init__(self, index: int, problem: _PayloadProblem):
        super().__init__(problem.message)
        self.index = index
        self.problem = problem

    def public(self) -> InvalidEvent:
        kind = PayloadTooLarge if self.problem.too_large else InvalidEvent
        return kind({self.index: {"payload": [self.problem.message]}})


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), cls=PayloadEncoder)


class _ContentTypes:
    """Content types by ContentType, model (class or instance), id or "app_label.model", cached."""

    def __init__(self, database: str):
        self.manager = ContentType.objects.db_manager(database)
        self.cache: dict[Any, int | None] = {}

    def resolve(self, value: Any) -> int | None:
        if isinstance(value, ContentType):
            return value.pk
        key = value if isinstance(value, str | int) else id(value)
        try:
            return self.cache[key]
        except KeyError:
            pass
        result = self._look_up(value)
        self.cache[key] = result
        return result

    def _look_up(self, value: Any) -> int | None:
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            try:
                return self.manager.get_for_id(value).pk
            except ContentType.DoesNotExist:
                return None
        if isinstance(value, str):
            app_label, dot, model = value.partition(".")
            if not dot or not app_label or not model:
                return None
            try:
                return self.manager.get_by_natural_key(app_label, model.lower()).pk
            except ContentType.DoesNotExist:
                return None
        if isinstance(value, models.Model) or (
            isinstance(value, type) and issubclass(value, models.Model)
        ):
            return self.manager.get_for_model(value).pk
        return None


# --- matching webhooks and building rows -------------------------------------------------


def _match_webhooks(prepared: list[_Prepared], database: str) -> dict[tuple, list[int]]:
    """Webhook ids per (event type, config filter), from one query for the whole batch."""
    event_types = sorted({item.event_type for item in prepared})
    webhooks_by_type: dict[str, list[tuple[int, Any]]] = {}
    for webhook_id, event_type, config in _fetch_active_webhooks(event_types, database):
        webhooks_by_type.setdefault(event_type, []).append((webhook_id, config))

    matches: dict[tuple, list[int]] = {}
    for item in prepared:
        key = (item.event_type, item.filter_key)
        if key in matches:
            continue
        candidates = webhooks_by_type.get(item.event_type, ())
        if not item.filter_key:
            matches[key] = [webhook_id for webhook_id, _ in candidates]
        else:
            matches[key] = [
                webhook_id
                for webhook_id, config in candidates
                if _config_matches(config, item.filter_key)
            ]
    return matches


def _fetch_active_webhooks(event_types: list[str], database: str) -> list[tuple[int, str, Any]]:
    """(id, event type, config) of the active webhooks of those types, by id.

    Plain SQL: this runs once per API request, and compiling the ORM query cost more than
    running it.
    """
    connection = connections[database]
    rows = statements.fetch_all(
        connection, _webhooks_sql(connection, len(event_types)), [True, *event_types]
    )
    # SQLite (and Django's psycopg set-up) give the JSON column as text.
    return [
        (webhook_id, event_type, json.loads(config) if isinstance(config, str) else config)
        for webhook_id, event_type, config in rows
    ]


# Statements built once per database (quoting differs), keyed by kind, vendor and shape.
_SQL: dict[tuple, Any] = {}


def _webhooks_sql(connection: Any, type_count: int) -> str:
    """The active-webhooks query for ``type_count`` event types, built once per database."""
    key = ("webhooks", connection.vendor, type_count)
    sql = _SQL.get(key)
    if sql is None:
        quote = connection.ops.quote_name
        meta = Webhook._meta
        columns = ", ".join(
            quote(meta.get_field(name).column) for name in ("id", "event_type", "config")
        )
        sql = _SQL[key] = (
            f"SELECT {columns} FROM {quote(meta.db_table)} "
            f"WHERE {quote(meta.get_field('is_active').column)} = %s "
            f"AND {quote(meta.get_field('event_type').column)} IN ({', '.join(['%s'] * type_count)}) "
            f"ORDER BY {quote(meta.pk.column)}"
        )
    return sql


def _config_matches(config: Any, filter_key: tuple[tuple[str, str], ...]) -> bool:
    """Every filter key is in ``config`` with an equal JSON value (1 is not true, "1" is not 1)."""
    if not isinstance(config, dict):
        return False
    for key, canonical_value in filter_key:
        if key not in config:
            return False
        try:
            if _canonical(config[key]) != canonical_value:
                return False
        except (TypeError, ValueError):
            return False
    return True


def _new_uuids(count: int) -> list[uuid.UUID]:
    """``count`` random (version 4) UUIDs from one read of the system's random source."""
    random_bytes = os.urandom(16 * count)
    make_uuid = uuid.UUID
    return [
        make_uuid(bytes=random_bytes[start : start + 16], version=4)
        for start in range(0, 16 * count, 16)
    ]


def _targets(prepared: list[_Prepared], webhooks_for: dict[tuple, list[int]]) -> list[list[int]]:
    """The matching webhooks' ids of each event."""
    return [webhooks_for[(item.event_type, item.filter_key)] for item in prepared]


def _build_rows(
    prepared: list[_Prepared], targets: list[list[int]]
) -> Iterator[tuple[int, uuid.UUID, str, int | None, int | None]]:
    """(webhook id, uuid, body, object id, content type id) per event and matching webhook.

    Each body is the payload's JSON with the event header spliced in, so the payload is
    encoded once however many webhooks it goes to. A generator: the COPY path builds each
    row while PostgreSQL writes the previous ones.
    """
    uuids = iter(_new_uuids(sum(len(webhook_ids) for webhook_ids in targets)))
    type_json: dict[str, str] = {}
    limit = int(setting("ULAK_MAX_PAYLOAD_BYTES"))
    for item, webhook_ids in zip(prepared, targets, strict=True):
        if not webhook_ids:
            # Encoded anyway when deferred: a bad payload is refused whoever subscribed.
            _payload_json(item, limit)
            continue
        event_type = item.event_type
        if event_type not in type_json:
            type_json[event_type] = encode_json(event_type)
        head, tail = _body_around_uuid(type_json[event_type], _payload_json(item, limit))
        customize = item.event_class.customizes_payload()
        object_id = item.object_id
        content_type_id = item.content_type_id
        for webhook_id in webhook_ids:
            event_uuid = next(uuids)
            if customize:
                body = _customized_body(item, event_uuid)
            else:
                # Equal to encode_json({"event": {...}, "payload": payload}).
                body = head + event_uuid.hex + tail
            yield (webhook_id, event_uuid, body, object_id, content_type_id)


def _payload_json(item: _Prepared, limit: int) -> str:
    """The payload's JSON, encoded now if _prepare deferred it (_LatePayloadError if bad)."""
    if item.payload_json is not None:
        return item.payload_json
    try:
        return _encoded_payload(item.payload, limit)
    except _PayloadProblem as problem:
        raise _LatePayloadError(item.index, problem) from None


def _body_around_uuid(type_json: str, payload_json: str) -> tuple[str, str]:
    """The body of contract §3 before and after the event's uuid (32 hex digits)."""
    return '{"event":{"type":' + type_json + ',"uuid":"', '"},"payload":' + payload_json + "}"


# The columns publishing fills per row; every other column gets its default (or "now").
_ROW_FIELDS = ("webhook_id", "uuid", "request_payload", "object_id", "content_type_id")
_NOW_FIELDS = ("created_date", "modified_date", "next_attempt_at")


def _insert_rows(
    rows: list[tuple[int, uuid.UUID, str, int | None, int | None]],
    database: str,
    *,
    notify: bool = False,
) -> list[WebhookEvent]:
    """Insert the rows with INSERT ... RETURNING statements; return the WebhookEvents.

    This is bulk_create without its per-value work: the statement is built from the model's
    fields (so new columns with defaults need no change here), the columns that are the same
    for every row (defaults, "now") are adapted once, and rows are matched to their ids by
    uuid. On this machine bulk_create spent ~100 µs a row and missed the 10,000 events/s
    goal; PostgreSQL gets one array per column (unnest) instead of a placeholder per value,
    which psycopg would otherwise parse one by one.
    """
    connection = connections[database]
    fields, layout = _insert_layout(connection)
    if connection.vendor == "postgresql":
        ids_by_uuid = _insert_postgresql(connection, fields, layout, rows, notify=notify)
    else:
        ids_by_uuid = _insert_values(connection, fields, layout, rows)
    return _with_ids(_created_events(rows, layout, database), rows, ids_by_uuid)


def _insert_layout(connection: Any) -> tuple[list, list[tuple[int, Any, Any]]]:
    """The inserted fields and, per field, its row position (-1 for a constant), the
    constant's Python value and its database value ("now" for the date columns)."""
    fields, template = _layout_template(connection)
    now = timezone.now()
    now_database_value = None
    layout: list[tuple[int, Any, Any]] = []
    for position, python_value, database_value in template:
        if python_value is _NOW:
            # Every date column adapts a datetime alike: once per call, not per column.
            if now_database_value is None:
                now_database_value = database_value.get_db_prep_save(now, connection)
            layout.append((-1, now, now_database_value))
        else:
            layout.append((position, python_value, database_value))
    return fields, layout


_NOW = object()  # in a layout template: "now", the field (to adapt it) in the third place
_LAYOUT_TEMPLATES: dict[tuple[str, str], tuple[list, list[tuple[int, Any, Any]]]] = {}


def _layout_template(connection: Any) -> tuple[list, list[tuple[int, Any, Any]]]:
    """The fields and the layout without "now", built once per database.

    The defaults are adapted here, once: through the fields this cost about a tenth of a
    one-event publish request. They are constants (False, 0, None, an empty list), never a
    callable's fresh value: ``uuid`` is filled per row.
    """
    key = (connection.alias, connection.vendor)
    cached = _LAYOUT_TEMPLATES.get(key)
    if cached is None:
        fields = [field for field in WebhookEvent._meta.concrete_fields if not field.primary_key]
        row_position = {name: position for position, name in enumerate(_ROW_FIELDS)}
        template: list[tuple[int, Any, Any]] = []
        for field in fields:
            if field.attname in row_position:
                template.append((row_position[field.attname], None, None))
            elif field.attname in _NOW_FIELDS:
                template.append((-1, _NOW, field))
            else:
                value = field.get_default()
                template.append((-1, value, field.get_db_prep_save(value, connection)))
        cached = _LAYOUT_TEMPLATES[key] = (fields, template)
    return cached


def _created_events(
    rows: list[tuple[int, uuid.UUID, str, int | None, int | None]],
    layout: list[tuple[int, Any, Any]],
    database: str,
) -> list[WebhookEvent]:
    """The rows as WebhookEvents without reading them back (ids set by _with_ids)."""
    make_event = _event_maker(layout, database)
    return [make_event(row, None) for row in rows]


def _event_maker(layout: list[tuple[int, Any, Any]], database: str) -> Any:
    """A function (row, id) -> the inserted row's WebhookEvent, as if read back."""
    # from_db takes the values in the order of the model's concrete fields.
    concrete_fields = WebhookEvent._meta.concrete_fields
    field_names = [field.attname for field in concrete_fields]
    pk_index = next(i for i, field in enumerate(concrete_fields) if field.primary_key)
    from_db = WebhookEvent.from_db

    def make_event(row: tuple, event_id: int | None) -> WebhookEvent:
        values = []
        for position, python_value, _ in layout:
            if position >= 0:
                values.append(row[position])
            elif isinstance(python_value, list | dict):
                values.append(copy.copy(python_value))  # no list shared between events
            else:
                values.append(python_value)
        values.insert(pk_index, event_id)
        return from_db(database, field_names, values)

    return make_event


def _with_ids(
    created: list[WebhookEvent], rows: list[tuple], ids_by_uuid: dict[str, int]
) -> list[WebhookEvent]:
    uuid_position = _ROW_FIELDS.index("uuid")
    for event, row in zip(created, rows, strict=True):
        event.pk = ids_by_uuid[row[uuid_position].hex]
    return created


def _insert_matched_postgresql(item: _Prepared, database: str) -> list[WebhookEvent]:
    """One event's rows, one per matching active webhook, from one statement.

    PostgreSQL matches the webhooks, draws each row's uuid, splices it into the body and
    queues the NOTIFY: one round trip instead of a webhook lookup and then the insert
    (a third of a one-event publish request's statements). Only for events without a
    ``config_filter`` (matched in Python: JSON equality, not jsonb's) or
    ``customize_payload`` (Python code per body).
    """
    connection = connections[database]
    fields, layout = _insert_layout(connection)
    sql = _matched_insert_sql(connection, fields, layout)
    payload_json = _payload_json(item, int(setting("ULAK_MAX_PAYLOAD_BYTES")))
    head, tail = _body_around_uuid(encode_json(item.event_type), payload_json)
    by_position = {
        _ROW_FIELDS.index("object_id"): item.object_id,
        _ROW_FIELDS.index("content_type_id"): item.content_type_id,
    }
    body_position = _ROW_FIELDS.index("request_payload")
    params: list[Any] = []
    for position, _, database_value in layout:
        if position < 0:
            params.append(database_value)
        elif position == body_position:
            params.extend((head, tail))
        elif position in by_position:
            params.append(by_position[position])
    params.extend((True, item.event_type, WAKEUP_CHANNEL))
    fetched = statements.fetch_all(connection, sql, params, server_binding=True)
    # Ordered as publish_many promises: by webhook id.
    fetched.sort(key=lambda returned: returned[2])
    make_event = _event_maker(layout, database)
    created = []
    for event_id, returned_uuid, webhook_id in fetched:
        event_uuid = (
            returned_uuid if isinstance(returned_uuid, uuid.UUID) else uuid.UUID(returned_uuid)
        )
        body = head + event_uuid.hex + tail
        row = (webhook_id, event_uuid, body, item.object_id, item.content_type_id)
        created.append(make_event(row, event_id))
    return created


def _matched_insert_sql(connection: Any, fields: list, layout: list) -> str:
    """INSERT ... SELECT FROM the matching webhooks ... RETURNING, with the NOTIFY."""
    key = ("insert-matched", connection.vendor)
    sql = _SQL.get(key)
    if sql is not None:
        return sql
    quote = connection.ops.quote_name
    webhook = Webhook._meta
    event = WebhookEvent._meta
    expressions = {
        "webhook_id": "matched.id",
        "uuid": "matched.uuid",
        # The uuid as 32 hex digits, as _build_rows splices it (uuid.hex).
        "request_payload": "%s::text || replace(matched.uuid::text, '-', '') || %s::text",
    }
    select_parts = []
    for field, (position, _, _) in zip(fields, layout, strict=True):
        if position < 0 or field.attname not in expressions:
            select_parts.append(f"%s::{field.db_type(connection)}")
        else:
            select_parts.append(expressions[field.attname])
    # gen_random_uuid() is evaluated per row: version 4, as _new_uuids draws them.
    # A NOTIFY only when a row went in; PostgreSQL sends it on commit, once per transaction.
    sql = _SQL[key] = (
        "WITH inserted AS ("
        f"INSERT INTO {quote(event.db_table)} "
        f"({', '.join(quote(field.column) for field in fields)}) "
        f"SELECT {', '.join(select_parts)} FROM ("
        f"SELECT {quote(webhook.pk.column)} AS id, gen_random_uuid() AS uuid "
        f"FROM {quote(webhook.db_table)} "
        f"WHERE {quote(webhook.get_field('is_active').column)} = %s "
        f"AND {quote(webhook.get_field('event_type').column)} = %s "
        f"ORDER BY {quote(webhook.pk.column)}) AS matched"
        f" RETURNING {quote(event.pk.column)}, {quote(event.get_field('uuid').column)}, "
        f"{quote(event.get_field('webhook').column)}"
        ") SELECT inserted.* FROM inserted "
        "CROSS JOIN (SELECT pg_notify(%s, '') WHERE EXISTS (SELECT 1 FROM inserted)) AS woken"
    )
    return sql


def _returning(connection: Any) -> str:
    quote = connection.ops.quote_name
    meta = WebhookEvent._meta
    return f" RETURNING {quote(meta.pk.column)}, {quote(meta.get_field('uuid').column)}"


def _read_ids(fetched: list[tuple], ids_by_uuid: dict[str, int]) -> None:
    for event_id, event_uuid in fetched:
        key = event_uuid.hex if isinstance(event_uuid, uuid.UUID) else event_uuid
        ids_by_uuid[key.replace("-", "")] = event_id


_UNNEST_BATCH_ROWS = 5000
# Up to this many rows (a request's events) the insert is prepared once per connection; a
# bulk insert is planned once anyway, and prepared it measured ~10% slower (bench.publish).
_PREPARED_ROWS = 100


def _insert_postgresql(
    connection: Any, fields: list, layout: list, rows: list, *, notify: bool = False
) -> dict[str, int]:
    """INSERT ... SELECT FROM unnest(one array per varying column); constants once each.

    ``notify``: the statement also queues the workers' NOTIFY (one batch only).
    """
    sql, positions = _unnest_sql(connection, fields, layout)
    constants = [database_value for position, _, database_value in layout if position < 0]
    extra: list[Any] = []
    if notify:
        if len(rows) > _UNNEST_BATCH_ROWS:
            raise ValueError("notify=True takes one batch of rows")
        # pg_notify in a one-row subquery runs once, whatever the number of rows.
        sql = (
            f"WITH inserted AS ({sql}) SELECT inserted.* FROM inserted "
            "CROSS JOIN (SELECT pg_notify(%s, '')) AS woken"
        )
        extra = [WAKEUP_CHANNEL]
    ids_by_uuid: dict[str, int] = {}
    for start in range(0, len(rows), _UNNEST_BATCH_ROWS):
        batch = rows[start : start + _UNNEST_BATCH_ROWS]
        columns = [[row[position] for row in batch] for position in positions]
        fetched = statements.fetch_all(
            connection,
            sql,
            [*constants, *columns, *extra],
            server_binding=True,
            prepare=len(batch) <= _PREPARED_ROWS,
        )
        _read_ids(fetched, ids_by_uuid)
    return ids_by_uuid


def _copy_postgresql(
    prepared: list[_Prepared], targets: list[list[int]], row_count: int, database: str
) -> list[WebhookEvent]:
    """Many rows: ids drawn from the table's sequence, then the rows streamed by COPY.

    COPY cannot return ids; drawing them first (one statement for all) gives the ids an
    INSERT would, in the rows' order. PostgreSQL writes each row as it arrives, while this
    process builds the next row and its WebhookEvent: with the unnest INSERT each side
    waited for the other (PostgreSQL for a 10 MB message, Python for the rows' ids).
    """
    connection = connections[database]
    fields, layout = _insert_layout(connection)
    sql, types, ids_sql = _copy_sql(connection, fields)
    ids = sorted(row[0] for row in statements.fetch_all(connection, ids_sql, [row_count]))
    # Per copied column: the row position, or -1 and the constant's database value.
    sources = [(position, database_value) for position, _, database_value in layout]
    make_event = _event_maker(layout, database)
    created: list[WebhookEvent] = []

    def copied_rows() -> Iterator[list[Any]]:
        for event_id, row in zip(ids, _build_rows(prepared, targets), strict=True):
            created.append(make_event(row, event_id))
            values = [event_id]
            append = values.append
            for position, constant in sources:
                append(row[position] if position >= 0 else constant)
            yield values

    statements.copy_rows(connection, sql, types, copied_rows())
    return created


def _copy_sql(connection: Any, fields: list) -> tuple[str, list[str], str]:
    """COPY of the id and the inserted fields, their type names, and the ids' statement."""
    key = ("copy", connection.vendor)
    cached = _SQL.get(key)
    if cached is not None:
        return cached
    quote = connection.ops.quote_name
    meta = WebhookEvent._meta
    columns = [meta.pk, *fields]
    # Type names without modifiers (varchar(255) is varchar) for psycopg's binary dumpers.
    types = [
        re.sub(
            r"\(.*\)",
            "",
            field.rel_db_type(connection) if field.primary_key else field.db_type(connection),
        ).strip()
        for field in columns
    ]
    sql = (
        f"COPY {quote(meta.db_table)} ({', '.join(quote(field.column) for field in columns)}) "
        "FROM STDIN (FORMAT BINARY)"
    )
    ids_sql = (
        f"SELECT nextval(pg_get_serial_sequence('{meta.db_table}', '{meta.pk.column}')) "
        "FROM generate_series(1, %s)"
    )
    cached = _SQL[key] = (sql, types, ids_sql)
    return cached


def _unnest_sql(connection: Any, fields: list, layout: list) -> tuple[str, list[int]]:
    """The statement and the row positions of its arrays, built once per database."""
    key = ("insert-unnest", connection.vendor)
    cached = _SQL.get(key)
    if cached is not None:
        return cached
    quote = connection.ops.quote_name
    select_parts: list[str] = []
    array_types: dict[int, str] = {}
    for field, (position, _, _) in zip(fields, layout, strict=True):
        database_type = field.db_type(connection)
        if position < 0:
            select_parts.append(f"%s::{database_type}")
        else:
            select_parts.append(f"row_value.c{position}")
            array_types[position] = database_type
    positions = sorted(array_types)
    # %b: the arrays go in binary, so no text value is escaped (psycopg does that in Python).
    sql = (
        f"INSERT INTO {quote(WebhookEvent._meta.db_table)} "
        f"({', '.join(quote(field.column) for field in fields)}) "
        f"SELECT {', '.join(select_parts)} FROM unnest("
        + ", ".join(f"%b::{array_types[position]}[]" for position in positions)
        + f") AS row_value({', '.join(f'c{position}' for position in positions)})"
        + _returning(connection)
    )
    _SQL[key] = (sql, positions)
    return sql, positions


def _insert_values_in_background(
    prepared: list[_Prepared], targets: list[list[int]], database: str
) -> list[WebhookEvent]:
    """Many rows on SQLite: each multi-row INSERT runs on a helper thread while this one
    builds the next statement's rows and the WebhookEvents (sqlite3 releases the GIL)."""
    connection = connections[database]
    fields, layout = _insert_layout(connection)
    batch_size = _insert_batch_size(connection, len(fields))
    make_event = _event_maker(layout, database)
    created: list[WebhookEvent] = []
    rows = _build_rows(prepared, targets)
    sent = []
    with statements.in_background(connection) as background:
        while batch := list(itertools.islice(rows, batch_size)):
            parameters = _values_parameters(connection, layout, batch)
            sql = _insert_values_sql(connection, fields, len(batch))
            sent.append((batch, background.submit(sql, parameters)))
            created.extend(make_event(row, None) for row in batch)
        ids_by_uuid: dict[str, int] = {}
        for _, future in sent:
            _read_ids(future.result(), ids_by_uuid)
    return _with_ids(created, [row for batch, _ in sent for row in batch], ids_by_uuid)


def _values_parameters(connection: Any, layout: list, rows: list) -> list[Any]:
    """The parameters of a multi-row INSERT ... VALUES of ``rows``, row after row."""
    native_uuid = connection.features.has_native_uuid_field
    uuid_position = _ROW_FIELDS.index("uuid")
    parameters: list[Any] = []
    append = parameters.append
    for row in rows:
        for position, _, database_value in layout:
            if position < 0:
                append(database_value)
            elif position == uuid_position:
                append(row[position] if native_uuid else row[position].hex)
            else:
                append(row[position])
    return parameters


def _insert_values(connection: Any, fields: list, layout: list, rows: list) -> dict[str, int]:
    """Multi-row INSERT ... VALUES, as many rows a statement as SQLite's parameter limit allows."""
    ids_by_uuid: dict[str, int] = {}
    batch_size = _insert_batch_size(connection, len(fields))
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        sql = _insert_values_sql(connection, fields, len(batch))
        fetched = statements.fetch_all(
            connection, sql, _values_parameters(connection, layout, batch)
        )
        _read_ids(fetched, ids_by_uuid)
    return ids_by_uuid


def _insert_values_sql(connection: Any, fields: list, row_count: int) -> str:
    """INSERT ... VALUES for ``row_count`` rows; kept for the common small counts."""
    key = ("insert", connection.vendor, row_count)
    sql = _SQL.get(key)
    if sql is None:
        quote = connection.ops.quote_name
        columns = ", ".join(quote(field.column) for field in fields)
        row_placeholder = "(" + ", ".join(["%s"] * len(fields)) + ")"
        sql = (
            f"INSERT INTO {quote(WebhookEvent._meta.db_table)} ({columns}) VALUES "
            + ", ".join([row_placeholder] * row_count)
            + _returning(connection)
        )
        if row_count <= 100:
            _SQL[key] = sql
    return sql


def _insert_batch_size(connection: Any, field_count: int) -> int:
    """Rows per INSERT within SQLite's limit on parameters (999 on old builds, 32766 now)."""
    if connection.vendor == "sqlite":
        connection.ensure_connection()
        try:
            import sqlite3

            limit = connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        except (AttributeError, sqlite3.Error):
            limit = 999
        return max(1, limit // field_count)
    return 1000


def _customized_body(item: _Prepared, event_uuid: uuid.UUID) -> str:
    # A copy for each webhook: customize_payload may change the body in place.
    payload = copy.deepcopy(item.payload)
    body = {"event": {"type": item.event_type, "uuid": event_uuid.hex}, "payload": payload}
    body = item.event_class().customize_payload(body)
    try:
        return encode_json(body)
    except (TypeError, ValueError) as error:
        raise InvalidEvent(
            {
                item.index: {
                    "payload": [f"customize_payload returned a body that is not JSON: {error}."]
                }
            }
        ) from error


def _notify_workers(database: str) -> None:
    """Wake the workers when the transaction commits (PostgreSQL NOTIFY; SQLite workers poll).

    PostgreSQL queues the notification with the transaction: delivered on commit, dropped on
    rollback, and sent once however many publish calls the transaction made.
    """
    connection = connections[database]
    if connection.vendor != "postgresql":
        return
    statements.fetch_all(connection, "SELECT pg_notify(%s, '')", [WAKEUP_CHANNEL])
