"""The delivery queue: the only code that claims, leases and records webhook events.

The ``ulak_webhookevent`` table is both the outbox and the queue. A row is *due* when
``next_attempt_at <= now``; NULL means nothing is scheduled (delivered or exhausted).

Leases. A worker claims due rows by stamping ``lease_owner`` (its unique name) and
``lease_expires_at``. While the lease runs no other worker claims the row; when it has
expired (the worker died, or hangs) any worker may claim it again, so an event is never
lost and may be sent more than once (at-least-once; receivers drop duplicates by uuid).
Every write of an outcome is guarded by ``lease_owner = <me>``: a worker whose lease was
taken over writes nothing. No transaction is held while HTTP is in flight: the claim and
the recording are two short transactions, seconds apart.

Claims. One statement takes up to ``limit`` due rows, at most ``take`` of each webhook,
visiting active webhooks round-robin from a cursor, and skipping webhooks whose target is
saturated in this worker. So a webhook with a million-event backlog or a target that hangs
until its timeout never takes the whole batch. PostgreSQL: ``FOR UPDATE SKIP LOCKED`` lets
any number of workers claim at once without waiting for each other. SQLite: one worker; the
statement runs in a ``BEGIN IMMEDIATE`` transaction (Django's ``transaction_mode``).

Events of inactive (deleted) webhooks are not claimed: they stay scheduled and go out if the
webhook is made active again.

Every function here runs on the calling thread's Django connection (``connections[alias]``)
with raw, batched SQL: the worker calls them from one dedicated thread, the API's retry from
its request thread. Datetimes go through ``connection.ops`` so SQLite sees exactly the text
the ORM writes, and the SQL has one dialect each for PostgreSQL and SQLite.
"""

from __future__ import annotations

import datetime
import functools
import json
import logging
import random
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connections, transaction

from ulak import retry
from ulak.conf import setting
from ulak.delivery.outcome import AttemptOutcome

logger = logging.getLogger(__name__)

UTC = datetime.UTC
EVENT_TABLE = "ulak_webhookevent"
WEBHOOK_TABLE = "ulak_webhook"
HEARTBEAT_TABLE = "ulak_workerheartbeat"

# Used when a webhook's retry_countdown_config cannot be evaluated (it is validated on write,
# so this only guards against rows edited by hand).
FALLBACK_COUNTDOWN_SECONDS = 60.0


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(UTC)


def format_attempt_time(moment: datetime.datetime) -> str:
    """``request_datetimes`` entries: ISO 8601, UTC, microseconds, ``Z``."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


@dataclass(frozen=True, slots=True)
class ClaimedEvent:
    """A leased event row: what a sender needs, and what the outcome is computed from."""

    id: int
    uuid_hex: str
    webhook_id: int
    request_payload: str
    retry_count: int
    round_attempt_count: int
    request_datetimes: tuple[str, ...]
    object_id: int | None
    content_type_id: int | None
    next_attempt_at: datetime.datetime | None
    is_exhausted: bool
    lease_expires_at: datetime.datetime
    # The same instant as a unix timestamp: compared with time.time() before each attempt.
    lease_expires_ts: float = 0.0


def _config_timeout(config: dict[str, Any]) -> float:
    try:
        timeout = float(config["timeout"]) if config.get("timeout") is not None else None
    except (TypeError, ValueError):
        timeout = None
    if timeout is None or not timeout > 0:
        timeout = float(setting("ULAK_DEFAULT_TIMEOUT"))
    return timeout


def _config_max_retry_count(config: dict[str, Any]) -> int:
    default = int(setting("ULAK_DEFAULT_MAX_RETRY_COUNT"))
    try:
        value = config.get("max_retry_count")
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """A webhook as the sender sees it (secret decrypted)."""

    id: int
    target_url: str
    event_type: str
    secret: str | None
    additional_headers: dict[str, str]
    config: dict[str, Any]
    retry_countdown_config: dict[str, Any]
    callback: str | None
    is_active: bool
    loaded_at: float = field(default=0.0, compare=False)
    # From config, with the settings' defaults; computed once (they are read per attempt).
    timeout: float = field(default=0.0, compare=False)
    max_retry_count: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "timeout", _config_timeout(self.config))
        object.__setattr__(self, "max_retry_count", _config_max_retry_count(self.config))

    @property
    def auth(self) -> dict[str, Any] | None:
        auth = self.config.get("auth")
        return auth if isinstance(auth, dict) else None


@dataclass(frozen=True, slots=True)
class OutcomeRecord:
    """The new state of one event after an attempt (one row of the batched UPDATE)."""

    event_id: int
    delivered: bool
    response_http_status: int | None
    response_content: str
    request_datetimes: list[str]
    retry_count: int
    round_attempt_count: int
    next_attempt_at: datetime.datetime | None
    is_exhausted: bool


def plan_record(
    event: ClaimedEvent,
    webhook: WebhookSettings,
    attempt: AttemptOutcome,
    *,
    automatic: bool,
    finished_at: datetime.datetime,
    store_limit: int,
    randint: Callable[[int, int], int] = random.randint,
) -> OutcomeRecord:
    """The event's state after ``attempt`` (contract §1 and §4).

    An automatic attempt counts in the round: after ``max_retry_count`` of them the event is
    exhausted (``next_attempt_at`` NULL). Otherwise the next attempt is due ``countdown`` seconds
    after this one ended, or later if the target asked with ``Retry-After`` (429/503, capped).
    A manual attempt (the API's retry) counts in ``retry_count`` but leaves the schedule as it was.
    """
    retry_count = event.retry_count + 1
    request_datetimes = [format_attempt_time(attempt.started_at), *event.request_datetimes]
    round_attempt_count = event.round_attempt_count + (1 if automatic else 0)
    if attempt.delivered:
        next_attempt_at, is_exhausted = None, False
    elif not automatic:
        next_attempt_at, is_exhausted = event.next_attempt_at, event.is_exhausted
    elif round_attempt_count >= webhook.max_retry_count:
        next_attempt_at, is_exhausted = None, True
    else:
        try:
            delay = retry.countdown(webhook.retry_countdown_config, retry_count, randint)
        except (KeyError, TypeError, ValueError, AttributeError):
            logger.warning(
                "webhook %s has an unusable retry_countdown_config; retrying in %s s",
                webhook.id,
                FALLBACK_COUNTDOWN_SECONDS,
            )
            delay = FALLBACK_COUNTDOWN_SECONDS
        if attempt.retry_after is not None:
            delay = max(delay, attempt.retry_after)
        next_attempt_at, is_exhausted = finished_at + datetime.timedelta(seconds=delay), False
    return OutcomeRecord(
        event_id=event.id,
        delivered=attempt.delivered,
        response_http_status=attempt.status,
        response_content=attempt.stored_content(store_limit),
        request_datetimes=request_datetimes,
        retry_count=retry_count,
        round_attempt_count=round_attempt_count,
        next_attempt_at=next_attempt_at,
        is_exhausted=is_exhausted,
    )


# --- SQL ------------------------------------------------------------------------------------

_EVENT_COLUMNS = (
    "id, uuid, webhook_id, request_payload, retry_count, round_attempt_count, "
    "request_datetimes, object_id, content_type_id, next_attempt_at, is_exhausted"
)

# PostgreSQL. The inner SELECT walks the active webhooks in round-robin order (those after
# the cursor first) and, for each, locks up to `take` of its due, unleased events through the
# (webhook_id, next_attempt_at) index. SKIP LOCKED: rows another worker is claiming right now
# are skipped instead of waited for. The LIMIT stops the walk once `limit` rows are found.
# `id = ANY(ARRAY(...))` makes the UPDATE fetch exactly those rows by primary key (a join
# could be planned as a scan of the whole table). The UPDATE repeats the lease test: under
# READ COMMITTED a row claimed and committed by another worker between our snapshot and our
# lock is re-checked against its new version, so two workers never both lease a row.
_CLAIM_POSTGRESQL = f"""
UPDATE {EVENT_TABLE} AS event
SET lease_owner = %(owner)s, lease_expires_at = %(lease_until)s
WHERE event.id = ANY(ARRAY(
    SELECT due.id
    FROM (
        SELECT id FROM {WEBHOOK_TABLE}
        WHERE is_active AND NOT (id = ANY(%(excluded)s::bigint[]))
        ORDER BY id <= %(cursor)s, id
    ) AS webhook
    CROSS JOIN LATERAL (
        SELECT candidate.id
        FROM {EVENT_TABLE} AS candidate
        WHERE candidate.webhook_id = webhook.id
          AND candidate.next_attempt_at <= %(now)s
          AND (candidate.lease_expires_at IS NULL OR candidate.lease_expires_at <= %(now)s)
        ORDER BY candidate.next_attempt_at
        LIMIT %(take)s
        FOR UPDATE SKIP LOCKED
    ) AS due
    LIMIT %(limit)s
))
  AND (event.lease_expires_at IS NULL OR event.lease_expires_at <= %(now)s)
RETURNING {", ".join("event." + column for column in _EVENT_COLUMNS.split(", "))}
"""

# The planner settings of the claim (see claim_due), and no wait for the WAL flush at its
# commit: a lease lost in a server crash only means the event is due again (at-least-once).
_CLAIM_SETTINGS = (
    "enable_bitmapscan = off",
    "enable_seqscan = off",
    "synchronous_commit = off",
)

# SQLite: the same walk. SQLite has no LATERAL, but a correlated `IN (... LIMIT take)` does the
# same through the index. `LIMIT -1` (no limit) keeps the webhooks' ORDER BY: SQLite drops an
# ORDER BY from a subquery without LIMIT when it flattens the query. There is one worker per
# SQLite database and the statement runs in a BEGIN IMMEDIATE transaction (the database's
# write lock), so no row locks are needed.
_CLAIM_SQLITE = f"""
UPDATE {EVENT_TABLE}
SET lease_owner = %(owner)s, lease_expires_at = %(lease_until)s
WHERE id IN (
    SELECT event.id
    FROM (
        SELECT id FROM {WEBHOOK_TABLE}
        WHERE is_active AND id NOT IN (SELECT value FROM json_each(%(excluded)s))
        ORDER BY id <= %(cursor)s, id
        LIMIT -1
    ) AS webhook
    JOIN {EVENT_TABLE} AS event ON event.id IN (
        SELECT due.id
        FROM {EVENT_TABLE} AS due
        WHERE due.webhook_id = webhook.id
          AND due.next_attempt_at <= %(now)s
          AND (due.lease_expires_at IS NULL OR due.lease_expires_at <= %(now)s)
        ORDER BY due.next_attempt_at
        LIMIT %(take)s
    )
    LIMIT %(limit)s
)
RETURNING {_EVENT_COLUMNS}
"""

# One event, for the API's retry: leased only if nobody holds it, whatever its schedule, so
# two concurrent retries (or a retry and a worker) never both send it.
_LEASE_ONE = f"""
UPDATE {EVENT_TABLE}
SET lease_owner = %(owner)s, lease_expires_at = %(lease_until)s
WHERE id = %(id)s AND (lease_expires_at IS NULL OR lease_expires_at <= %(now)s)
RETURNING {_EVENT_COLUMNS}
"""

# The outcome of one attempt; executemany'd for a batch (SQLite, in-process: no round trips).
# `lease_owner = me` is the guard: a worker whose lease expired and was taken over by another
# writes nothing here.
_RECORD_SQLITE = f"""
UPDATE {EVENT_TABLE}
SET delivered = %s, response_http_status = %s, response_content = %s,
    request_datetimes = %s, retry_count = %s, round_attempt_count = %s,
    next_attempt_at = %s, is_exhausted = %s,
    lease_owner = NULL, lease_expires_at = NULL, modified_date = %s
WHERE id = %s AND lease_owner = %s
"""

# PostgreSQL: the whole batch in one statement (one round trip), the rows passed as arrays
# and joined by id; the same lease guard, row by row.
_RECORD_POSTGRESQL = f"""
UPDATE {EVENT_TABLE} AS event
SET delivered = outcome.delivered,
    response_http_status = outcome.status,
    response_content = outcome.content,
    request_datetimes = outcome.datetimes::jsonb,
    retry_count = outcome.retry_count,
    round_attempt_count = outcome.round_attempt_count,
    next_attempt_at = outcome.next_attempt_at,
    is_exhausted = outcome.exhausted,
    lease_owner = NULL, lease_expires_at = NULL, modified_date = %(now)s
FROM unnest(
    %(ids)s::bigint[], %(delivered)s::boolean[], %(status)s::integer[], %(content)s::text[],
    %(datetimes)s::text[], %(retry_count)s::integer[], %(round_attempt_count)s::integer[],
    %(next_attempt_at)s::timestamptz[], %(exhausted)s::boolean[]
) AS outcome(id, delivered, status, content, datetimes, retry_count, round_attempt_count,
             next_attempt_at, exhausted)
WHERE event.id = outcome.id AND event.lease_owner = %(owner)s
"""

# Give events back untouched (their schedule stays): a draining worker, or an attempt that
# could not start in time.
_RELEASE = f"""
UPDATE {EVENT_TABLE} SET lease_owner = NULL, lease_expires_at = NULL
WHERE id = %s AND lease_owner = %s
"""

_EXTEND = f"""
UPDATE {EVENT_TABLE} SET lease_expires_at = %s
WHERE id = %s AND lease_owner = %s
"""

# The earliest future attempt (the ulak_event_due index): when to claim again if idle.
_NEXT_DUE = f"""
SELECT MIN(next_attempt_at) FROM {EVENT_TABLE} WHERE next_attempt_at > %s
"""

_WEBHOOKS = """
SELECT id, target_url, event_type, secret_key, additional_headers, config,
       retry_countdown_config, callback, is_active
FROM {table} WHERE id IN ({placeholders})
"""

_HEARTBEAT = """
INSERT INTO {table} (name, hostname, pid, started_at, seen_at, stats)
VALUES (%s, %s, %s, %s, %s, {json})
ON CONFLICT (name) DO UPDATE
SET hostname = excluded.hostname, pid = excluded.pid, started_at = excluded.started_at,
    seen_at = excluded.seen_at, stats = excluded.stats
"""


# --- Reading rows ---------------------------------------------------------------------------


def _json_value(value: Any) -> Any:
    # Django's PostgreSQL backend loads jsonb as text; SQLite stores JSON as text.
    if isinstance(value, str | bytes):
        return json.loads(value)
    return value


def _aware(value: Any) -> datetime.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def _uuid_hex(value: Any) -> str:
    if isinstance(value, uuid.UUID):
        return value.hex
    return str(value).replace("-", "")


def _claimed(row: Sequence[Any], lease_until: datetime.datetime, lease_ts: float) -> ClaimedEvent:
    return ClaimedEvent(
        id=row[0],
        uuid_hex=_uuid_hex(row[1]),
        webhook_id=row[2],
        request_payload=row[3],
        retry_count=row[4] or 0,
        round_attempt_count=row[5] or 0,
        request_datetimes=tuple(_json_value(row[6]) or ()),
        object_id=row[7],
        content_type_id=row[8],
        next_attempt_at=_aware(row[9]),
        is_exhausted=bool(row[10]),
        lease_expires_at=lease_until,
        lease_expires_ts=lease_ts,
    )


@functools.lru_cache(maxsize=4096)
def _decrypt(stored: str, keys: tuple[str, ...]) -> str:
    from ulak import secrets

    return secrets.decrypt_secret(stored, keys)


# --- The queue ------------------------------------------------------------------------------


class Queue:
    """Claims, leases and outcomes on the calling thread's connection to database ``alias``."""

    def __init__(self, alias: str = "default"):
        self.alias = alias

    @property
    def connection(self):
        return connections[self.alias]

    @property
    def vendor(self) -> str:
        return self.connection.vendor

    def _db_time(self, moment: datetime.datetime | None) -> Any:
        # Exactly what the ORM would write (SQLite: naive UTC text, compared as text).
        return self.connection.ops.adapt_datetimefield_value(moment)

    def _cursor(self):
        """PostgreSQL: a server-side binding psycopg cursor on Django's connection, so the hot
        statements can be prepared once per connection (Django's own cursors bind on the client
        and never prepare). SQLite: Django's cursor."""
        if self.vendor == "postgresql":
            import psycopg

            self.connection.ensure_connection()
            return psycopg.Cursor(self.connection.connection)
        return self.connection.cursor()

    def dedicate_to_claims(self) -> None:
        """Make this thread's connection a claiming connection (PostgreSQL): the claim's
        settings are set once for the session, and each claim is one statement in autocommit.

        For a connection that only claims (the worker's claim thread); a new connection after
        a reconnect is set up again on its first claim.
        """
        self._claim_sessions = getattr(self, "_claim_sessions", weakref.WeakSet())
        self._dedicated = True

    def _claim_session_ready(self) -> bool:
        if not getattr(self, "_dedicated", False):
            return False
        connection = self.connection
        if connection.in_atomic_block:
            return False
        connection.ensure_connection()
        raw = connection.connection
        if raw not in self._claim_sessions:
            with self._cursor() as cursor:
                for assignment in _CLAIM_SETTINGS:
                    cursor.execute(f"SET {assignment}")
            self._claim_sessions.add(raw)
        return True

    def _json_placeholder(self) -> str:
        return "CAST(%s AS jsonb)" if self.vendor == "postgresql" else "%s"

    # Claims -----------------------------------------------------------------------------

    def claim_due(
        self,
        owner: str,
        *,
        limit: int,
        take: int,
        lease_seconds: float,
        excluded_webhook_ids: Iterable[int] = (),
        cursor_webhook_id: int = 0,
        now: datetime.datetime | None = None,
    ) -> list[ClaimedEvent]:
        """Lease up to ``limit`` due events, at most ``take`` per webhook (see the module doc)."""
        if limit <= 0:
            return []
        now = now or utcnow()
        lease_until = now + datetime.timedelta(seconds=lease_seconds)
        excluded = sorted(set(excluded_webhook_ids))
        postgresql = self.vendor == "postgresql"
        params = {
            "owner": owner,
            "lease_until": self._db_time(lease_until),
            "now": self._db_time(now),
            "excluded": excluded if postgresql else json.dumps(excluded),
            "cursor": cursor_webhook_id,
            "take": max(1, take),
            "limit": limit,
        }
        if postgresql and self._claim_session_ready():
            # One statement, one round trip, its own transaction (autocommit).
            with self._cursor() as cursor:
                cursor.execute(_CLAIM_POSTGRESQL, params, prepare=True)
                rows = cursor.fetchall()
        else:
            with transaction.atomic(using=self.alias), self._cursor() as cursor:
                if postgresql:
                    # The claim must walk the (webhook_id, next_attempt_at) index in order and
                    # stop after `take` rows. Without fresh statistics (a backlog that just
                    # arrived) the planner may prefer a bitmap scan that sorts every due row of
                    # the webhook, on every claim. SET LOCAL: until this transaction ends.
                    for assignment in _CLAIM_SETTINGS:
                        cursor.execute(f"SET LOCAL {assignment}")
                    cursor.execute(_CLAIM_POSTGRESQL, params, prepare=True)
                else:
                    cursor.execute(_CLAIM_SQLITE, params)
                rows = cursor.fetchall()
        lease_ts = lease_until.timestamp()
        return [_claimed(row, lease_until, lease_ts) for row in rows]

    def lease_event(
        self, event_id: int, owner: str, *, lease_seconds: float
    ) -> ClaimedEvent | None:
        """Lease one event whatever its schedule; None if it is leased by someone (or missing)."""
        now = utcnow()
        lease_until = now + datetime.timedelta(seconds=lease_seconds)
        params = {
            "owner": owner,
            "lease_until": self._db_time(lease_until),
            "now": self._db_time(now),
            "id": event_id,
        }
        with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
            cursor.execute(_LEASE_ONE, params)
            row = cursor.fetchone()
        return _claimed(row, lease_until, lease_until.timestamp()) if row else None

    def event_exists(self, event_id: int) -> bool:
        with self.connection.cursor() as cursor:
            cursor.execute(f"SELECT 1 FROM {EVENT_TABLE} WHERE id = %s", [event_id])
            return cursor.fetchone() is not None

    def extend_lease(self, owner: str, event_id: int, until: datetime.datetime) -> bool:
        """Push one lease further; False if it is no longer ours."""
        with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
            cursor.execute(_EXTEND, [self._db_time(until), event_id, owner])
            return cursor.rowcount == 1

    def next_due_at(self, now: datetime.datetime | None = None) -> datetime.datetime | None:
        with self.connection.cursor() as cursor:
            cursor.execute(_NEXT_DUE, [self._db_time(now or utcnow())])
            row = cursor.fetchone()
        return _aware(row[0]) if row else None

    # Webhooks ---------------------------------------------------------------------------

    def load_webhooks(self, webhook_ids: Iterable[int], *, loaded_at: float = 0.0) -> dict:
        """``{id: WebhookSettings}`` for the given ids (missing ones are left out)."""
        ids = sorted(set(webhook_ids))
        if not ids:
            return {}
        from ulak.models import secret_keys

        keys = tuple(secret_keys())
        sql = _WEBHOOKS.format(table=WEBHOOK_TABLE, placeholders=", ".join(["%s"] * len(ids)))
        with self.connection.cursor() as cursor:
            cursor.execute(sql, ids)
            rows = cursor.fetchall()
        webhooks = {}
        for row in rows:
            stored_secret = row[3]
            try:
                secret = _decrypt(stored_secret, keys) if stored_secret else None
            except ValueError:
                # Keys rotated away: sending unsigned would be worse than failing loudly.
                logger.error(
                    "secret of webhook %s cannot be decrypted with ULAK_SECRET_KEYS", row[0]
                )
                secret = None
            headers = _json_value(row[4]) or {}
            webhooks[row[0]] = WebhookSettings(
                id=row[0],
                target_url=row[1],
                event_type=row[2],
                secret=secret,
                additional_headers={str(k): str(v) for k, v in headers.items()},
                config=_json_value(row[5]) or {},
                retry_countdown_config=_json_value(row[6]) or {},
                callback=row[7] or None,
                is_active=bool(row[8]),
                loaded_at=loaded_at,
            )
        return webhooks

    # Outcomes ---------------------------------------------------------------------------

    def record_outcomes(self, owner: str, records: Sequence[OutcomeRecord]) -> int:
        """Write a batch of outcomes in one transaction; returns how many leases were still ours."""
        if not records:
            return 0
        if self.vendor == "postgresql":
            params = {
                "now": utcnow(),
                "owner": owner,
                "ids": [record.event_id for record in records],
                "delivered": [record.delivered for record in records],
                "status": [record.response_http_status for record in records],
                "content": [record.response_content for record in records],
                "datetimes": [json.dumps(record.request_datetimes) for record in records],
                "retry_count": [record.retry_count for record in records],
                "round_attempt_count": [record.round_attempt_count for record in records],
                "next_attempt_at": [record.next_attempt_at for record in records],
                "exhausted": [record.is_exhausted for record in records],
            }
            # One statement (atomic by itself): one round trip, no BEGIN and COMMIT of its own.
            with self._cursor() as cursor:
                cursor.execute(_RECORD_POSTGRESQL, params, prepare=True)
                return cursor.rowcount
        modified = self._db_time(utcnow())
        params = [
            (
                record.delivered,
                record.response_http_status,
                record.response_content,
                json.dumps(record.request_datetimes),
                record.retry_count,
                record.round_attempt_count,
                self._db_time(record.next_attempt_at),
                record.is_exhausted,
                modified,
                record.event_id,
                owner,
            )
            for record in records
        ]
        with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
            cursor.executemany(_RECORD_SQLITE, params)
            written = cursor.rowcount
        # sqlite3 sums executemany's row counts; -1 would mean unknown (the guard still held).
        return written if written is not None and written >= 0 else len(records)

    def release_events(self, owner: str, event_ids: Iterable[int]) -> int:
        """Clear our lease on events without recording an attempt (their schedule stays)."""
        params = [(event_id, owner) for event_id in event_ids]
        if not params:
            return 0
        with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
            cursor.executemany(_RELEASE, params)
            return cursor.rowcount

    # Heartbeat --------------------------------------------------------------------------

    def write_heartbeat(
        self,
        name: str,
        *,
        hostname: str,
        pid: int,
        started_at: datetime.datetime,
        stats: dict[str, Any],
    ) -> None:
        sql = _HEARTBEAT.format(table=HEARTBEAT_TABLE, json=self._json_placeholder())
        with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
            cursor.execute(
                sql,
                [
                    name,
                    hostname[:255],
                    pid,
                    self._db_time(started_at),
                    self._db_time(utcnow()),
                    json.dumps(stats, sort_keys=True),
                ],
            )

    def close(self) -> None:
        """Close this thread's connection (a worker's database thread, when it stops)."""
        self.connection.close()
