"""The delivery worker: one asyncio loop that claims due events, sends them, records outcomes.

Shape of the loop (design.md, "The worker"):

    claim loop ──► one task per claimed event ──► recorder
      ▲  (DB thread)   per-target semaphore          (DB thread, batched, lease-guarded)
      │                aiohttp Sender                      │
      └──────────── wake: NOTIFY, room freed, poll, next due ┘

- All database work runs on one dedicated thread with its own connection, as short
  transactions (``ulak.queue``); the event loop never waits on the database while HTTP is in
  flight, and no transaction is open during an attempt.
- The worker holds at most ``ULAK_WORKER_CONCURRENCY`` events at once (claimed and not yet
  recorded) and claims again as soon as there is room, so the next batch is leased while the
  previous one is still in flight.
- Fairness: at most ``ULAK_TARGET_CONCURRENCY`` attempts in flight per target (scheme, host,
  port); a target already holding twice that many events is left out of claims; and each
  claim takes at most that many events per webhook, webhooks visited round-robin.
- Wake-ups: PostgreSQL ``LISTEN ulak_events`` on a dedicated connection (thread), the
  recorder when room frees up, ``wake_local_workers()`` from the same process, and otherwise
  a poll every ``ULAK_POLL_INTERVAL`` seconds or at the next scheduled attempt if sooner.
- Stop: SIGTERM/SIGINT stop claiming, let attempts in flight finish for up to
  ``ULAK_DRAIN_SECONDS``, record them, release the rest. SIGKILL loses nothing either: leases
  expire and any worker claims the events again.
- A database that goes away is retried with backoff; outcomes wait in memory meanwhile (and
  if their leases expire first, the events are simply sent again: at-least-once).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import datetime
import functools
import gc
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from django.db import InterfaceError, OperationalError, connections
from yarl import URL

from ulak.conf import setting
from ulak.delivery.callbacks import run_callback
from ulak.delivery.client import Sender
from ulak.delivery.outcome import AttemptOutcome, OutcomeKind
from ulak.metrics import observe_duration
from ulak.queue import ClaimedEvent, OutcomeRecord, Queue, WebhookSettings, plan_record, utcnow
from ulak.recovery import work_on_retry_requests
from ulak.targets import parse_networks

logger = logging.getLogger(__name__)

try:  # the channel publishing NOTIFYs; the same string if publishing is not importable
    from ulak.publishing import WAKEUP_CHANNEL
except ImportError:  # pragma: no cover
    WAKEUP_CHANNEL = "ulak_events"

# Webhook settings (URL, secret, headers, config) are reloaded when older than this.
WEBHOOK_CACHE_SECONDS = 1.0
# An attempt starts only if its lease outlives its deadline by this much (else it is extended).
LEASE_MARGIN_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 5.0
# The recorder waits this long for more outcomes when it has only a few to write.
RECORD_GATHER_SECONDS = 0.005
GIL_SWITCH_INTERVAL = 0.0005

_running_workers: weakref.WeakSet[Worker] = weakref.WeakSet()


def _unavailable_errors() -> tuple[type[BaseException], ...]:
    # Django's wrappers, and psycopg's own (queue.py runs some statements on a raw psycopg
    # cursor, whose errors Django does not wrap).
    errors: list[type[BaseException]] = [OperationalError, InterfaceError]
    try:
        import psycopg

        errors += [psycopg.OperationalError, psycopg.InterfaceError]
    except ImportError:  # pragma: no cover - SQLite-only installations
        pass
    return tuple(errors)


_UNAVAILABLE_ERRORS = _unavailable_errors()


class DatabaseUnavailable(Exception):
    """The database could not be reached (or is restarting); the call may be retried."""


def make_worker_name() -> str:
    """A unique lease owner: host, pid and a random part (a restarted pid is a new owner)."""
    host = socket.gethostname()[:40]
    return f"{host}:{os.getpid()}:{secrets.token_hex(4)}"[:64]


def wake_local_workers() -> None:
    """Wake the workers running in this process (for publishers sharing it, e.g. on SQLite)."""
    for worker in list(_running_workers):
        worker.wake_threadsafe()


def target_of(webhook: WebhookSettings) -> str:
    """The per-target key: scheme, host and port, as keep-alive pools are kept."""
    try:
        url = URL(webhook.target_url)
        return f"{url.scheme}://{url.host}:{url.port}"
    except (ValueError, TypeError):
        return webhook.target_url


class _TargetLanes:
    """The events waiting for one target, and how many lanes are sending to it."""

    __slots__ = ("target", "waiting", "running")

    def __init__(self, target: str) -> None:
        self.target = target
        self.waiting: collections.deque[tuple[ClaimedEvent, WebhookSettings]] = collections.deque()
        self.running = 0


class _Backoff:
    def __init__(self) -> None:
        self.delay = 0.0

    def next(self) -> float:
        self.delay = min(max(self.delay * 2, 0.25), MAX_BACKOFF_SECONDS)
        return self.delay

    def reset(self) -> None:
        self.delay = 0.0


class Worker:
    """One delivery worker. ``await worker.run(stop_event)`` until the event is set."""

    def __init__(
        self,
        *,
        name: str | None = None,
        alias: str = "default",
        batch_size: int | None = None,
        concurrency: int | None = None,
        target_concurrency: int | None = None,
        poll_interval: float | None = None,
        lease_seconds: float | None = None,
        drain_seconds: float | None = None,
        heartbeat_seconds: float | None = None,
    ):
        self.name = name or make_worker_name()
        self.owner = self.name
        self.batch_size = int(batch_size or setting("ULAK_WORKER_BATCH_SIZE"))
        self.concurrency = int(concurrency or setting("ULAK_WORKER_CONCURRENCY"))
        self.target_concurrency = int(target_concurrency or setting("ULAK_TARGET_CONCURRENCY"))
        self.poll_interval = float(poll_interval or setting("ULAK_POLL_INTERVAL"))
        self.lease_seconds = float(lease_seconds or setting("ULAK_LEASE_SECONDS"))
        self.drain_seconds = float(
            drain_seconds if drain_seconds is not None else setting("ULAK_DRAIN_SECONDS")
        )
        self.heartbeat_seconds = float(heartbeat_seconds or setting("ULAK_HEARTBEAT_SECONDS"))
        self.store_limit = int(setting("ULAK_RESPONSE_STORE_LIMIT"))
        self.allowed_networks = parse_networks(setting("ULAK_ALLOWED_NETWORKS"))
        # Each claim takes at most this many events of one webhook, and a target holding
        # `target_backlog` events (in flight or waiting for a lane) is left out of claims:
        # enough waiting to keep its lanes busy until the next claim, not so many that a slow
        # target ties up leases (or capacity) that other targets could use.
        self.take_per_webhook = 2 * self.target_concurrency
        self.target_backlog = 4 * self.target_concurrency
        self.queue = Queue(alias)
        # The claim thread's own Queue: its connection only claims (see dedicate_to_claims).
        self.claim_queue = Queue(alias)
        self.alias = alias
        self.stats: collections.Counter[str] = collections.Counter()
        self._last_claim_excluded = False
        self.started_at = utcnow()

        self._webhooks: dict[int, WebhookSettings] = {}
        self._targets: dict[int, str] = {}
        self._held = 0
        self._held_by_target: collections.Counter[str] = collections.Counter()
        self._lanes_by_target: dict[str, _TargetLanes] = {}
        self._lanes: set[asyncio.Task] = set()
        self._callbacks: set[asyncio.Future] = set()
        self._pending: list[tuple[OutcomeRecord, str, bool]] = []
        self._releases: list[tuple[int, str]] = []
        self._cursor = 0
        self._stopping = False
        self._closing = False
        self._wake_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._records_ready: asyncio.Event | None = None
        self._sender: Sender | None = None
        self._db_executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._claim_executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._callback_executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._listener: threading.Thread | None = None
        self._listener_stop = threading.Event()
        self._database_down_since: float | None = None

    # --- Database thread --------------------------------------------------------------------

    def _call_db(self, function: Callable, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except _UNAVAILABLE_ERRORS as error:
            # A dropped connection (server restart) or a lock timeout: start afresh next time.
            try:
                connections[self.alias].close()
            except Exception:
                pass
            raise DatabaseUnavailable(
                str(error).strip().splitlines()[0] if str(error) else repr(error)
            ) from error

    async def _db(
        self,
        function: Callable,
        *args: Any,
        executor: concurrent.futures.ThreadPoolExecutor | None = None,
        **kwargs: Any,
    ) -> Any:
        assert self._loop is not None and self._db_executor is not None
        try:
            result = await self._loop.run_in_executor(
                executor or self._db_executor,
                functools.partial(self._call_db, function, *args, **kwargs),
            )
        except DatabaseUnavailable as error:
            if self._database_down_since is None:
                self._database_down_since = time.monotonic()
                logger.warning("database unavailable, retrying with backoff: %s", error)
            raise
        if self._database_down_since is not None:
            logger.warning(
                "database reachable again after %.1f s",
                time.monotonic() - self._database_down_since,
            )
            self._database_down_since = None
        return result

    # --- Lifecycle --------------------------------------------------------------------------

    async def _open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._records_ready = asyncio.Event()
        self._db_executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ulak-db")
        # PostgreSQL: claims on a connection of their own, so a claim never waits behind the
        # commit of a batch of outcomes (publish-to-attempt latency). SQLite has one writer
        # at a time anyway: one connection does both.
        self._claim_executor = self._db_executor
        if connections[self.alias].vendor == "postgresql":
            self._claim_executor = concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix="ulak-claim"
            )
            self.claim_queue.dedicate_to_claims()
            # Outcomes commit without waiting for the WAL flush (see the method's doc: an
            # outcome lost in a server crash means the event is sent again, at-least-once).
            self.queue.relax_commit_durability()
        self._callback_executor = concurrent.futures.ThreadPoolExecutor(
            2, thread_name_prefix="ulak-callback"
        )
        self._sender = Sender(
            allowed_networks=self.allowed_networks,
            target_concurrency=self.target_concurrency,
            total_concurrency=self.concurrency,
            read_limit=int(setting("ULAK_RESPONSE_READ_LIMIT")),
            retry_after_cap=float(setting("ULAK_RETRY_AFTER_CAP")),
        )
        await self._sender.open()
        _running_workers.add(self)

    async def _close(self) -> None:
        _running_workers.discard(self)
        self._listener_stop.set()
        if self._sender is not None:
            await self._sender.close()
        if self._callback_executor is not None:
            self._callback_executor.shutdown(wait=False, cancel_futures=True)
        for executor in {self._db_executor, self._claim_executor} - {None}:
            try:
                await self._loop.run_in_executor(executor, self.queue.close)
            except Exception:
                pass
            executor.shutdown(wait=True)
        if self._listener is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._listener.join, 5)

    async def run(self, stop: asyncio.Event | None = None, *, until_idle: bool = False) -> None:
        """Deliver until ``stop`` is set, then drain (see the module doc).

        ``until_idle``: also stop once nothing is due and nothing is held (tests and tools).
        """
        stop = stop or asyncio.Event()
        await self._open()
        logger.info(
            "worker %s started (%s, batch %s, concurrency %s, per target %s)",
            self.name,
            connections[self.alias].vendor,
            self.batch_size,
            self.concurrency,
            self.target_concurrency,
        )
        if connections[self.alias].vendor == "postgresql" and not until_idle:
            self._start_listener()
        claimer = asyncio.create_task(self._claim_loop(until_idle), name="ulak-claim")
        recorder = asyncio.create_task(self._record_loop(), name="ulak-record")
        heartbeat = asyncio.create_task(self._heartbeat_loop(), name="ulak-heartbeat")
        stopped = asyncio.create_task(stop.wait())
        failure: BaseException | None = None
        try:
            done, _ = await asyncio.wait(
                {stopped, claimer, recorder, heartbeat}, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done - {stopped}:
                failure = task.exception()
                if failure is not None:
                    logger.error(
                        "worker %s: %s stopped", self.name, task.get_name(), exc_info=failure
                    )
        finally:
            stopped.cancel()
            await self._drain(claimer, recorder, heartbeat)
            await self._close()
            logger.info("worker %s stopped: %s", self.name, dict(self.stats))
        if failure is not None:
            raise failure

    async def _drain(
        self, claimer: asyncio.Task, recorder: asyncio.Task, heartbeat: asyncio.Task
    ) -> None:
        self._stopping = True
        self._wake.set()
        deadline = time.monotonic() + self.drain_seconds
        await asyncio.gather(claimer, return_exceptions=True)
        if self._lanes:
            logger.info(
                "worker %s draining %d attempts in flight (up to %.0f s)",
                self.name,
                sum(lanes.running for lanes in self._lanes_by_target.values()),
                self.drain_seconds,
            )
            _, late = await asyncio.wait(
                set(self._lanes), timeout=max(0.0, deadline - time.monotonic())
            )
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        # Claimed but never started: give them back.
        for lanes in self._lanes_by_target.values():
            while lanes.waiting:
                event, _ = lanes.waiting.popleft()
                self._releases.append((event.id, lanes.target))
        if self._callbacks:
            await asyncio.wait(set(self._callbacks), timeout=max(0.1, deadline - time.monotonic()))
        self._closing = True
        self._records_ready.set()
        try:
            await asyncio.wait_for(recorder, timeout=max(5.0, deadline - time.monotonic()))
        except (TimeoutError, asyncio.CancelledError):
            logger.warning(
                "worker %s could not record %d outcomes before stopping; their leases will expire",
                self.name,
                len(self._pending) + len(self._releases),
            )
        heartbeat.cancel()
        await asyncio.gather(heartbeat, return_exceptions=True)
        try:
            await self._write_heartbeat()
        except DatabaseUnavailable:
            pass

    def wake_threadsafe(self) -> None:
        """Make the claim loop look for due events now (callable from any thread)."""
        loop = self._loop
        if loop is None or self._wake_scheduled:
            return
        self._wake_scheduled = True
        try:
            loop.call_soon_threadsafe(self._wake_now)
        except RuntimeError:  # the loop is closed
            pass

    def _wake_now(self) -> None:
        self._wake_scheduled = False
        self._wake.set()

    async def _sleep_until_woken(self, timeout: float) -> None:
        if timeout <= 0:
            return
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            pass

    # --- Claiming ---------------------------------------------------------------------------

    def _claim_job(self, limit: int, excluded: list[int], fresh: set[int]) -> tuple:
        """Database thread: claim, load the webhooks not cached, and if idle the next due time."""
        claimed = self.claim_queue.claim_due(
            self.owner,
            limit=limit,
            take=self.take_per_webhook,
            lease_seconds=self.lease_seconds,
            excluded_webhook_ids=excluded,
            cursor_webhook_id=self._cursor,
        )
        missing = {event.webhook_id for event in claimed} - fresh
        queue = self.claim_queue
        webhooks = queue.load_webhooks(missing, loaded_at=time.monotonic()) if missing else {}
        next_due = None if claimed else queue.next_due_at()
        return claimed, webhooks, next_due

    def _claim_arguments(self) -> tuple[list[int], set[int]]:
        saturated = {
            target for target, held in self._held_by_target.items() if held >= self.target_backlog
        }
        excluded = [
            webhook_id for webhook_id, target in self._targets.items() if target in saturated
        ]
        horizon = time.monotonic() - WEBHOOK_CACHE_SECONDS
        fresh = {
            webhook_id
            for webhook_id, webhook in self._webhooks.items()
            if webhook.loaded_at > horizon
        }
        return excluded, fresh

    async def claim_once(self, limit: int) -> tuple[int, datetime.datetime | None]:
        """Claim up to ``limit`` events and start their attempts; (claimed, next due if none)."""
        excluded, fresh = self._claim_arguments()
        # Remembered for until_idle: a claim that skipped saturated targets found nothing
        # of theirs, which does not mean nothing of theirs is due.
        self._last_claim_excluded = bool(excluded)
        claimed, webhooks, next_due = await self._db(
            self._claim_job, limit, excluded, fresh, executor=self._claim_executor
        )
        for webhook in webhooks.values():
            self._webhooks[webhook.id] = webhook
            self._targets[webhook.id] = target_of(webhook)
        self.stats["claims"] += 1
        if claimed:
            self.stats["claimed"] += len(claimed)
            self._advance_cursor(claimed)
            for event in claimed:
                self._start_attempt(event)
        return len(claimed), next_due

    def _advance_cursor(self, claimed: list[ClaimedEvent]) -> None:
        # Webhooks are walked from the one after the cursor, wrapping around; the next claim
        # starts after the last webhook this one served.
        served = {event.webhook_id for event in claimed}
        wrapped = [webhook_id for webhook_id in served if webhook_id <= self._cursor]
        self._cursor = max(wrapped) if wrapped else max(served)

    async def _claim_loop(self, until_idle: bool = False) -> None:
        backoff = _Backoff()
        minimum_room = max(1, self.batch_size // 8)
        while not self._stopping:
            room = self.concurrency - self._held
            if room < minimum_room:
                self._wake.clear()
                await self._sleep_until_woken(self.poll_interval)
                continue
            self._wake.clear()
            limit = min(self.batch_size, room)
            try:
                count, next_due = await self.claim_once(limit)
            except DatabaseUnavailable:
                await asyncio.sleep(backoff.next())
                continue
            backoff.reset()
            if count >= limit:
                continue  # probably more due: claim again at once (attempts are in flight)
            if until_idle and count == 0 and self._held == 0 and not self._last_claim_excluded:
                return
            timeout = self.poll_interval
            if next_due is not None:
                timeout = min(timeout, max(0.0, (next_due - utcnow()).total_seconds()))
            await self._sleep_until_woken(timeout)

    # --- Attempts ---------------------------------------------------------------------------

    def _start_attempt(self, event: ClaimedEvent) -> None:
        webhook = self._webhooks.get(event.webhook_id)
        if webhook is None:  # deleted since the claim: its events are gone with it
            return
        target = self._targets[webhook.id]
        self._held += 1
        self._held_by_target[target] += 1
        lanes = self._lanes_by_target.get(target)
        if lanes is None:
            lanes = self._lanes_by_target[target] = _TargetLanes(target)
        lanes.waiting.append((event, webhook))
        # Up to ULAK_TARGET_CONCURRENCY lanes per target, each sending one attempt at a time:
        # the per-target limit, without a task (or a semaphore wait) per event.
        if lanes.running < self.target_concurrency:
            lanes.running += 1
            task = self._loop.create_task(self._run_lane(lanes))
            self._lanes.add(task)
            task.add_done_callback(self._lanes.discard)

    async def _run_lane(self, lanes: _TargetLanes) -> None:
        try:
            while lanes.waiting and not self._stopping:
                event, webhook = lanes.waiting.popleft()
                await self._attempt(event, webhook, lanes.target)
        finally:
            lanes.running -= 1

    async def _lease_covers(self, event: ClaimedEvent, webhook: WebhookSettings) -> bool:
        """True if our lease outlasts this attempt's deadline (extending it if needed)."""
        needed = webhook.timeout + LEASE_MARGIN_SECONDS
        if time.time() + needed <= event.lease_expires_ts:
            return True
        until = utcnow() + datetime.timedelta(seconds=max(self.lease_seconds, needed))
        try:
            return await self._db(self.queue.extend_lease, self.owner, event.id, until)
        except DatabaseUnavailable:
            return False

    async def _attempt(self, event: ClaimedEvent, webhook: WebhookSettings, target: str) -> None:
        try:
            # The common case (the lease outlives the deadline) without awaiting a coroutine.
            if time.time() + webhook.timeout + LEASE_MARGIN_SECONDS > event.lease_expires_ts and (
                not await self._lease_covers(event, webhook)
            ):
                self.stats["lease_lost"] += 1
                self._releases.append((event.id, target))
                self._records_ready.set()
                return
            outcome = await self._sender.send(
                webhook, event.request_payload.encode("utf-8"), event.uuid_hex
            )
        except asyncio.CancelledError:
            # Draining: give the event back untouched (the target may have it: at-least-once).
            self._releases.append((event.id, target))
            self._records_ready.set()
            raise
        except Exception:
            # A bug, not the target: record a failed attempt so the event follows its retry
            # schedule (releasing it would make it due again at once, in a tight loop).
            logger.exception(
                "worker %s: attempt of event %s failed unexpectedly", self.name, event.id
            )
            outcome = AttemptOutcome(
                started_at=utcnow(),
                duration=0.0,
                kind=OutcomeKind.FAILED_NETWORK,
                error="Delivery error",
            )
        record = plan_record(
            event,
            webhook,
            outcome,
            automatic=True,
            finished_at=outcome.started_at + datetime.timedelta(seconds=outcome.duration),
            store_limit=self.store_limit,
        )
        became_exhausted = record.is_exhausted and not event.is_exhausted
        self._pending.append((record, target, became_exhausted))
        self._records_ready.set()
        self.stats[outcome.kind.value] += 1
        observe_duration(self.stats, outcome.duration)
        if webhook.callback:
            self._start_callback(event, webhook, outcome)

    def _start_callback(
        self, event: ClaimedEvent, webhook: WebhookSettings, outcome: AttemptOutcome
    ) -> None:
        future = self._loop.run_in_executor(
            self._callback_executor,
            functools.partial(run_callback, webhook, event, outcome, close_connections=True),
        )
        self._callbacks.add(future)

        def finished(done: asyncio.Future) -> None:
            self._callbacks.discard(done)
            if done.cancelled() or done.exception() is not None or not done.result():
                self.stats["callback_errors"] += 1

        future.add_done_callback(finished)

    # --- Recording --------------------------------------------------------------------------

    def _record_job(self, records: list[OutcomeRecord], release_ids: list[int]) -> int:
        written = self.queue.record_outcomes(self.owner, records)
        if release_ids:
            self.queue.release_events(self.owner, release_ids)
        return written

    async def flush_records(self) -> None:
        """Write every outcome and release waiting so far (one transaction each)."""
        pending, self._pending = self._pending, []
        releases, self._releases = self._releases, []
        if not pending and not releases:
            return
        try:
            written = await self._db(
                self._record_job, [record for record, _, _ in pending], [i for i, _ in releases]
            )
        except DatabaseUnavailable:
            self._pending[:0] = pending
            self._releases[:0] = releases
            raise
        self.stats["record_batches"] += 1
        self.stats["lease_lost"] += len(pending) - written
        self.stats["released"] += len(releases)
        self.stats["exhausted"] += sum(1 for _, _, exhausted in pending if exhausted)
        for _, target, _ in pending:
            self._held_by_target[target] -= 1
        for _, target in releases:
            self._held_by_target[target] -= 1
        self._held -= len(pending) + len(releases)
        # Room freed: claim again at once (there may be more behind a per-webhook cap).
        self._wake.set()

    async def _record_loop(self) -> None:
        backoff = _Backoff()
        while True:
            await self._records_ready.wait()
            if not self._closing and len(self._pending) < self.batch_size // 4:
                # Gather a few more outcomes: one transaction for many rows is far cheaper
                # than one each, and a few milliseconds of delay here cost nothing.
                await asyncio.sleep(RECORD_GATHER_SECONDS)
            self._records_ready.clear()
            if not self._pending and not self._releases:
                if self._closing:
                    return
                continue
            try:
                await self.flush_records()
                backoff.reset()
            except DatabaseUnavailable:
                await asyncio.sleep(backoff.next())
                self._records_ready.set()
            if self._closing and not self._pending and not self._releases:
                return

    # --- Heartbeat ----------------------------------------------------------------------------

    async def _write_heartbeat(self) -> None:
        stats = dict(self.stats)
        stats["held"] = self._held
        await self._db(
            self.queue.write_heartbeat,
            self.name,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            started_at=self.started_at,
            stats=stats,
        )

    async def _heartbeat_loop(self) -> None:
        while True:
            try:
                await self._write_heartbeat()
            except DatabaseUnavailable:
                pass
            await work_on_retry_requests(self, self.heartbeat_seconds)  # bulk retries, till next

    # --- PostgreSQL LISTEN ----------------------------------------------------------------

    def _start_listener(self) -> None:
        params = connections[self.alias].get_connection_params()
        for key in ("cursor_factory", "context", "prepare_threshold"):
            params.pop(key, None)
        self._listener = threading.Thread(
            target=self._listen, args=(params,), name="ulak-listen", daemon=True
        )
        self._listener.start()

    def _listen(self, params: dict[str, Any]) -> None:
        import psycopg
        from psycopg import sql

        delay = 0.25
        while not self._listener_stop.is_set():
            try:
                with psycopg.connect(**params, autocommit=True) as connection:
                    connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(WAKEUP_CHANNEL)))
                    # Anything published while we were not listening: look now.
                    self.wake_threadsafe()
                    delay = 0.25
                    while not self._listener_stop.is_set():
                        for _ in connection.notifies(timeout=0.5, stop_after=1):
                            self.wake_threadsafe()
            except psycopg.Error as error:
                if self._listener_stop.is_set():
                    return
                logger.warning("LISTEN connection lost (%s); reconnecting in %.1f s", error, delay)
                self._listener_stop.wait(delay)
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)

    # --- Tests and tools ------------------------------------------------------------------

    async def deliver_due(self, *, max_seconds: float = 30.0) -> None:
        """Attempt everything due, record it, and return once nothing is due or held.

        For tests and one-off tools: the same loop as ``run`` (without LISTEN), stopped when
        idle or after ``max_seconds``.
        """
        stop = asyncio.Event()
        timer = asyncio.get_running_loop().call_later(max_seconds, stop.set)
        try:
            await self.run(stop, until_idle=True)
        finally:
            timer.cancel()


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where available (faster sockets and timers), asyncio's loop otherwise."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run_worker(
    *, install_signal_handlers: bool = True, stop: threading.Event | None = None, **options: Any
) -> Worker:
    """Run a worker on this thread until SIGTERM/SIGINT (or ``stop`` is set); returns it."""
    worker = Worker(**options)
    # The database and LISTEN threads hand results back to the event loop; with Python's
    # default 5 ms GIL switch interval each hand-off can wait that long behind the busy loop,
    # which showed as a 100 ms tail in publish-to-attempt latency.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    # Everything imported so far (Django, aiohttp, ...) lives as long as the process: keep it
    # out of the cyclic collector's full passes, which otherwise scan it all and stall the loop
    # for tens of milliseconds (a latency tail).
    gc.collect()
    gc.freeze()

    async def main() -> None:
        stop_event = asyncio.Event()
        loop = asyncio.get_running_loop()
        if install_signal_handlers:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop_event.set)
        if stop is not None:
            # A thread-safe stop for a worker running beside the API (``ulak serve``).
            threading.Thread(
                target=lambda: (stop.wait(), loop.call_soon_threadsafe(stop_event.set)),
                name="ulak-worker-stop",
                daemon=True,
            ).start()
        await worker.run(stop_event)

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(main())
    return worker


__all__ = [
    "DatabaseUnavailable",
    "OutcomeKind",
    "Worker",
    "make_worker_name",
    "run_worker",
    "target_of",
    "wake_local_workers",
]
