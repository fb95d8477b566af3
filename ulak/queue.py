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

from ulak import retry, statements
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

# What the PostgreSQL claim returns: _EVENT_COLUMNS, with the uuid as hex text and
# next_attempt_at as integer microseconds since the epoch (exact: extract() is numeric). Both
# are cheap to produce on the server, where psycopg's Python-level timestamptz and UUID
# loaders cost the worker several microseconds per claimed row.
_CLAIM_RETURNING_POSTGRESQL = (
    "event.id, replace(event.uuid::text, '-', ''), event.webhook_id, event.request_payload, "
    "event.retry_count, event.round_attempt_count, event.request_datetimes, event.object_id, "
    "event.content_type_id, (extract(epoch FROM event.next_attempt_at) * 1000000)::bigint, "
    "event.is_exhausted"
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
RETURNING {_CLAIM_RETURNING_POSTGRESQL}
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
# two concurrent retries (or a retry and a worker) never both send it; and only if it is not
# delivered, so a retry that comes right after another one delivered it sends nothing.
_LEASE_ONE = f"""
UPDATE {EVENT_TABLE}
SET lease_owner = %(owner)s, lease_expires_at = %(lease_until)s
WHERE id = %(id)s AND (lease_expires_at IS NULL OR lease_expires_at <= %(now)s) AND NOT delivered
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
    if value == "[]":  # request_datetimes of a new event: most claimed rows
        return []
    if isinstance(value, str | bytes):
        return json.loads(value)
    return value


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)


def _aware(value: Any) -> datetime.datetime | None:
    if value is None:
        return None
    if isinstance(value, int):  # microseconds since the epoch (the PostgreSQL claim)
        return _EPOCH + datetime.timedelta(microseconds=value)
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
            return statements.raw_cursor(self.connection)
        return self.connection.cursor()

    def dedicate_to_claims(self) -> None:
        """Make this thread's connection a claiming connection (PostgreSQL): the claim's
        settings are set once for the session, and each claim is one statement in autocommit.

        For a connection that only claims (the worker's claim thread); a new connection after
        a reconnect is set up again on its first claim.
        """
        self._claim_sessions = getattr(self, "_claim_sessions", weakref.WeakSet())
        self._dedicated = True

    def relax_commit_durability(self) -> None:
        """PostgreSQL: this thread's connection commits without waiting for the WAL flush
        (``synchronous_commit = off``), for a worker's outcomes and releases.

        At-least-once still holds: an outcome lost in a server crash (the last few hundred
        milliseconds of commits) leaves the row as it was claimed, leased; the lease expires
        and the event is sent again. Nothing is lost, some events may be sent twice, which
        receivers already handle (they drop duplicates by uuid). Set once per connection (a
        new connection after a reconnect is set up again on its first use).
        """
        self._relaxed_sessions = getattr(self, "_relaxed_sessions", weakref.WeakSet())

    def _relax_session(self) -> None:
        relaxed = getattr(self, "_relaxed_sessions", None)
        if relaxed is None:
            return
        connection = self.connection
        connection.ensure_connection()
        raw = connection.connection
        if raw not in relaxed:
            with self._cursor() as cursor:
                cursor.execute("SET synchronous_commit = off")
            relaxed.add(raw)

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
        if _needs_exhaustion_notices(self, records):  # Recovery section: same transaction
            return _record_with_exhaustion_notices(self, owner, records)
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
            self._relax_session()
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


# --- Recovery: retries and exhaustion notices -----------------------------------------------
#
# A new round (contract §2, the bulk retry): an undelivered event becomes due now with a fresh
# count of automatic attempts (next_attempt_at = now, round_attempt_count = 0,
# is_exhausted = false), so it gets an attempt at once and then up to max_retry_count
# automatic attempts in all, as a newly published event does.
#
# Leases. An event leased right now (a worker or a one-event retry is attempting it) is not
# touched: the holder writes its outcome under its lease, and that outcome (planned from the
# row as it was claimed) would undo the new round. Such events are *deferred*: kept in the
# retry request and visited again once the lease is gone. An event whose lease has expired
# gets its lease cleared with the new round, so a late outcome from the old holder writes
# nothing (the lease guard of record_outcomes).
#
# Locks. Each batch is one short transaction. PostgreSQL: the batch's rows are locked with
# FOR UPDATE SKIP LOCKED, so a batch never waits for (nor deadlocks with) a claim or a record
# in progress; rows skipped that way are deferred too. SQLite: the transaction holds the
# database's write lock (BEGIN IMMEDIATE), so nothing changes under it.
#
# Exhaustion notices. When automatic attempts run out, Ulak publishes its own event
# `webhook_event.exhausted` in the transaction that records the outcome, to the active
# webhooks subscribed to it that may see the exhausted event (same owner, or an operator's:
# no owner or a superuser). An exhausted notice never announces itself (no recursion).

# Events given a new round per transaction.
RETRY_BATCH_SIZE = 2000


@dataclass(frozen=True, slots=True)
class RetryProgress:
    """Where a retry request stands after one batch (``process_retry_requests``)."""

    request_id: int
    matched: int
    scheduled: int
    deferred: int
    finished: bool
    # Events given a new round by this batch (0: only deferred ones were visited, still held).
    scheduled_now: int
    # Matching events are left to walk (beyond the deferred ones).
    walking: bool


def _id_list_sql(connection: Any) -> str:
    # One parameter for a whole list of ids, whatever its length.
    if connection.vendor == "postgresql":
        return "= ANY(%s::bigint[])"
    return "IN (SELECT value FROM json_each(%s))"


def _id_list_param(connection: Any, ids: Sequence[int]) -> Any:
    return list(ids) if connection.vendor == "postgresql" else json.dumps(list(ids))


def _notify_workers(alias: str) -> None:
    """PostgreSQL: wake every worker when this transaction commits (SQLite workers poll)."""
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return
    from ulak.publishing import WAKEUP_CHANNEL

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, '')", [WAKEUP_CHANNEL])


def start_new_rounds(
    event_ids: Iterable[int], *, using: str = "default", now: datetime.datetime | None = None
) -> tuple[int, list[int]]:
    """Give the undelivered, unleased events among ``event_ids`` a new round, now.

    Must run inside a transaction (see the section's doc). Returns (how many got it, the ids
    of undelivered events held by someone right now: to be visited again). Delivered and
    missing events are left out of both.
    """
    connection = connections[using]
    if not connection.in_atomic_block:
        raise RuntimeError("start_new_rounds must run inside a transaction")
    ids = sorted({int(event_id) for event_id in event_ids})
    if not ids:
        return 0, []
    now = now or utcnow()
    postgresql = connection.vendor == "postgresql"
    in_ids = _id_list_sql(connection)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, lease_expires_at FROM {EVENT_TABLE} "
            f"WHERE id {in_ids} AND NOT delivered"
            + (" ORDER BY id FOR UPDATE SKIP LOCKED" if postgresql else ""),
            [_id_list_param(connection, ids)],
        )
        rows = cursor.fetchall()
        free = [row[0] for row in rows if row[1] is None or _aware(row[1]) <= now]
        held = {row[0] for row in rows} - set(free)
        seen = {row[0] for row in rows}
        missing = [event_id for event_id in ids if event_id not in seen]
        if missing and postgresql:
            # Skipped because locked (a claim or a record in progress), or delivered, or gone:
            # the undelivered ones are held by someone, so visited again.
            cursor.execute(
                f"SELECT id FROM {EVENT_TABLE} WHERE id {in_ids} AND NOT delivered",
                [_id_list_param(connection, missing)],
            )
            held.update(row[0] for row in cursor.fetchall())
        if free:
            cursor.execute(
                f"UPDATE {EVENT_TABLE} SET next_attempt_at = %s, round_attempt_count = 0, "
                "is_exhausted = %s, lease_owner = NULL, lease_expires_at = NULL, "
                f"modified_date = %s WHERE id {in_ids}",
                [
                    connection.ops.adapt_datetimefield_value(now),
                    False,
                    connection.ops.adapt_datetimefield_value(now),
                    _id_list_param(connection, free),
                ],
            )
    return len(free), sorted(held)


def schedule_retry(
    event_ids: Iterable[int], *, using: str = "default", requested_by: str = ""
) -> int:
    """Give these events a new round now: the admin's "schedule retry", and tools.

    One short transaction per call (per ``RETRY_BATCH_SIZE`` ids when given more). Delivered
    events are skipped. Events held by a worker right now get their round as soon as it lets
    go of them: a retry request with their ids, which the workers finish. Returns how many
    undelivered events were given a new round (now or deferred that way).
    """
    from ulak.models import RetryRequest

    ids = sorted({int(event_id) for event_id in event_ids})
    total = 0
    for start in range(0, len(ids), RETRY_BATCH_SIZE):
        with transaction.atomic(using=using):
            scheduled, deferred = start_new_rounds(
                ids[start : start + RETRY_BATCH_SIZE], using=using
            )
            if deferred:
                RetryRequest.objects.using(using).create(
                    requested_by=requested_by[:150],
                    matched=len(deferred),
                    deferred_ids=deferred,
                )
            if scheduled:
                _notify_workers(using)
        total += scheduled + len(deferred)
    return total


def process_retry_requests(
    *,
    using: str = "default",
    request_id: int | None = None,
    batch_size: int = RETRY_BATCH_SIZE,
) -> RetryProgress | None:
    """Work one bounded batch of a retry request, in one short transaction.

    The oldest unfinished request (or ``request_id``): first its deferred events (held by a
    worker when last visited), then the next ``batch_size`` matching events after its cursor.
    Returns its progress, or None if there was nothing to do (no unfinished request, or each
    is being worked on by another worker right now: PostgreSQL skips locked requests).
    """
    from ulak.models import RetryRequest

    now = utcnow()
    with transaction.atomic(using=using):
        requests = (
            RetryRequest.objects.using(using)
            .select_for_update(skip_locked=True)
            .filter(finished_date__isnull=True)
        )
        if request_id is not None:
            requests = requests.filter(pk=request_id)
        request = requests.order_by("id").first()
        if request is None:
            return None
        scheduled, deferred = start_new_rounds(request.deferred_ids or (), using=using, now=now)
        if request.cursor < request.last_event_id:
            ids = list(
                _events_of_retry_request(request, using)
                .filter(id__gt=request.cursor, id__lte=request.last_event_id)
                .order_by("id")
                .values_list("id", flat=True)[:batch_size]
            )
            # A short batch means nothing is left up to last_event_id.
            request.cursor = ids[-1] if len(ids) >= batch_size else request.last_event_id
            more, held = start_new_rounds(ids, using=using, now=now)
            scheduled += more
            deferred = sorted({*deferred, *held})
        request.scheduled += scheduled
        request.deferred_ids = deferred
        if request.cursor >= request.last_event_id and not deferred:
            request.finished_date = now
        request.save(update_fields=["cursor", "scheduled", "deferred_ids", "finished_date"])
        if scheduled:
            _notify_workers(using)
    return RetryProgress(
        request_id=request.pk,
        matched=request.matched,
        scheduled=request.scheduled,
        deferred=len(deferred),
        finished=request.finished_date is not None,
        scheduled_now=scheduled,
        walking=request.cursor < request.last_event_id,
    )


def _events_of_retry_request(request: Any, using: str) -> Any:
    """The undelivered events a retry request's filters and owner select (a QuerySet)."""
    from ulak.recovery import undelivered_events_matching

    return undelivered_events_matching(request.filters, owner_id=request.owner_id, using=using)


def _needs_exhaustion_notices(queue: Queue, records: Sequence[OutcomeRecord]) -> bool:
    if getattr(queue, "_recording_with_notices", False):
        return False  # the inner call of _record_with_exhaustion_notices
    return any(record.is_exhausted and not record.delivered for record in records)


def _record_with_exhaustion_notices(
    queue: Queue, owner: str, records: Sequence[OutcomeRecord]
) -> int:
    """record_outcomes, and the exhaustion notices of the events it exhausts, in one transaction."""
    by_id = {record.event_id: record for record in records}
    candidates = [
        record.event_id for record in records if record.is_exhausted and not record.delivered
    ]
    with transaction.atomic(using=queue.alias):
        exhausting = _lock_events_becoming_exhausted(queue, owner, candidates)
        queue._recording_with_notices = True
        try:
            written = queue.record_outcomes(owner, records)
        finally:
            queue._recording_with_notices = False
        if exhausting:
            publish_exhaustion_notices(exhausting, by_id, using=queue.alias)
    return written


def _lock_events_becoming_exhausted(
    queue: Queue, owner: str, event_ids: Sequence[int]
) -> list[tuple[int, Any, int, str, str, int | None]]:
    """(id, uuid, webhook id, event type, target url, owner id) of the events among
    ``event_ids`` that this record will exhaust: still leased by ``owner`` (so the record
    writes them) and not exhausted yet (a manual retry of an exhausted event is no news)."""
    if not event_ids:
        return []
    connection = queue.connection
    lock = " FOR UPDATE OF event" if connection.vendor == "postgresql" else ""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT event.id, event.uuid, event.webhook_id, webhook.event_type, "
            "webhook.target_url, webhook.owner_id "
            f"FROM {EVENT_TABLE} AS event JOIN {WEBHOOK_TABLE} AS webhook "
            "ON webhook.id = event.webhook_id "
            f"WHERE event.id {_id_list_sql(connection)} AND event.lease_owner = %s "
            f"AND NOT event.is_exhausted AND NOT event.delivered ORDER BY event.id{lock}",
            [_id_list_param(connection, sorted(event_ids)), owner],
        )
        return cursor.fetchall()


def exhaustion_notice_payload(
    event_id: int,
    event_uuid: Any,
    webhook_id: int,
    event_type: str,
    target_url: str,
    record: OutcomeRecord,
) -> dict[str, Any]:
    """The payload of a ``webhook_event.exhausted`` event."""
    return {
        "id": event_id,
        "uuid": str(uuid.UUID(_uuid_hex(event_uuid))),
        "webhook": webhook_id,
        "event_type": event_type,
        "target_url": target_url,
        "response_http_status": record.response_http_status,
        "retry_count": record.retry_count,
    }


def publish_exhaustion_notices(
    exhausting: Sequence[tuple[int, Any, int, str, str, int | None]],
    records: dict[int, OutcomeRecord],
    *,
    using: str = "default",
) -> int:
    """Insert the ``webhook_event.exhausted`` events for these exhausted events (in the
    caller's transaction); returns how many were created.

    Each goes to every active webhook subscribed to the type that may see the exhausted event:
    one of the same owner, or an operator's (no owner, or a superuser). The body is built as
    publishing builds it (contract §3); ``object_id`` and ``content_type`` name the exhausted
    event. An exhausted notice announces nothing (no notices about notices).
    """
    from django.contrib.contenttypes.models import ContentType

    from ulak.events import EXHAUSTED_EVENT_TYPE
    from ulak.models import Webhook, WebhookEvent
    from ulak.publishing import encode_json

    exhausting = [row for row in exhausting if row[3] != EXHAUSTED_EVENT_TYPE]
    if not exhausting:
        return 0
    subscribers = list(
        Webhook.objects.using(using)
        .filter(event_type=EXHAUSTED_EVENT_TYPE, is_active=True)
        .order_by("id")
        .values_list("id", "owner_id", "owner__is_superuser")
    )
    if not subscribers:
        return 0
    content_type = ContentType.objects.db_manager(using).get_for_model(WebhookEvent)
    now = utcnow()
    notices = []
    for event_id, event_uuid, webhook_id, event_type, target_url, owner_id in exhausting:
        payload = exhaustion_notice_payload(
            event_id, event_uuid, webhook_id, event_type, target_url, records[event_id]
        )
        for subscriber_id, subscriber_owner_id, is_superuser in subscribers:
            if not (subscriber_owner_id is None or is_superuser or subscriber_owner_id == owner_id):
                continue
            notice_uuid = uuid.uuid4()
            body = {"event": {"type": EXHAUSTED_EVENT_TYPE, "uuid": notice_uuid.hex}}
            body["payload"] = payload
            notices.append(
                WebhookEvent(
                    webhook_id=subscriber_id,
                    uuid=notice_uuid,
                    request_payload=encode_json(body),
                    object_id=event_id,
                    content_type=content_type,
                    next_attempt_at=now,
                )
            )
    if notices:
        WebhookEvent.objects.using(using).bulk_create(notices)
        _notify_workers(using)
        logger.info("published %d exhaustion notice(s)", len(notices))
    return len(notices)
