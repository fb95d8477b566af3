"""Bulk recovery of undelivered events (contract §2): retry requests, and the worker's share.

A bulk retry is a ``RetryRequest``: the undelivered list's filters, whose events they may
touch (an owner, or everyone's), and how far it got. ``request_bulk_retry`` validates the
filters, counts the matches and stores the request; that is all the API does, so it answers
at once however many events match. The workers then give the matching events a new round in
bounded batches (``ulak.queue.process_retry_requests``, one short transaction each), from the
heartbeat loop (``work_on_retry_requests``); ``ulak events retry`` works through its own
request in the foreground, with a progress bar.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db.models import Max, QuerySet

from ulak import queue
from ulak.models import RetryRequest, Webhook, WebhookEvent

logger = logging.getLogger(__name__)

# Above this many matches a bulk retry must be confirmed ("confirm": true).
CONFIRM_ABOVE = 10_000
# How often a worker looks for retry requests when there are none.
IDLE_SECONDS = 1.0
# After a batch the worker pauses about as long as the batch took (at least this long), so the
# database thread (and, on SQLite, the write lock) stays free half of the time for deliveries.
MIN_PAUSE_SECONDS = 0.01


class BulkRetryError(ValueError):
    """The request cannot be accepted; ``errors`` is ``{field: [message, ...]}`` (a 400)."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(f"{field}: {' '.join(text)}" for field, text in errors.items()))


@dataclass(frozen=True, slots=True)
class BulkRetry:
    """What ``request_bulk_retry`` did: how many events match, and the request (None if none)."""

    matched: int
    request: RetryRequest | None


def filter_names() -> list[str]:
    """The filters a bulk retry takes: those of the undelivered list."""
    from ulak.api.filters import WebhookEventFilter

    return list(WebhookEventFilter.base_filters)


def clean_filters(data: Mapping[str, Any]) -> dict[str, str]:
    """The filters of a bulk retry as query values, validated by the undelivered list's own
    FilterSet. Raises ``BulkRetryError`` naming each bad or unknown field."""
    from ulak.api.filters import WebhookEventFilter

    names = filter_names()
    errors: dict[str, list[str]] = {}
    values: dict[str, str] = {}
    for name, value in data.items():
        if name not in names:
            errors[name] = [f"Unknown filter; choose from: {', '.join(names)}."]
        elif value is None:
            continue
        elif isinstance(value, bool):
            values[name] = "true" if value else "false"
        elif isinstance(value, int | float | str):
            values[name] = str(value)
        else:
            errors[name] = ["Must be a string, a number or a boolean."]
    if errors:
        raise BulkRetryError(errors)
    filterset = WebhookEventFilter(data=values, queryset=WebhookEvent.objects.none())
    if not filterset.is_valid():
        raise BulkRetryError({field: list(text) for field, text in filterset.errors.items()})
    return values


def undelivered_events_matching(
    filters: Mapping[str, str], *, owner_id: int | None, using: str = "default"
) -> QuerySet:
    """The undelivered events the (clean) filters select, of ``owner_id``'s webhooks or of all."""
    from ulak.api.filters import WebhookEventFilter

    events = WebhookEvent.objects.using(using).filter(delivered=False)
    if owner_id is not None:
        # A subquery, not a join: the count of a large match stays one pass over the events.
        owned = Webhook.objects.using(using).filter(owner_id=owner_id).values("id")
        events = events.filter(webhook_id__in=owned)
    filterset = WebhookEventFilter(data=dict(filters), queryset=events)
    if not filterset.is_valid():  # stored filters were valid when stored; never widen
        raise BulkRetryError({field: list(text) for field, text in filterset.errors.items()})
    return filterset.qs.order_by()


def request_bulk_retry(
    filters: Mapping[str, Any],
    *,
    owner_id: int | None,
    confirm: bool = False,
    requested_by: str = "",
    using: str = "default",
) -> BulkRetry:
    """Validate, count and store a bulk retry (see the module doc); nothing is changed yet.

    Raises ``BulkRetryError`` for bad filters, and when more than ``CONFIRM_ABOVE`` events
    match without ``confirm``.
    """
    clean = clean_filters(filters)
    # Events published from now on are not swept in: the request stops at today's newest id.
    last_event_id = WebhookEvent.objects.using(using).aggregate(last=Max("id"))["last"] or 0
    matched = (
        undelivered_events_matching(clean, owner_id=owner_id, using=using)
        .filter(id__lte=last_event_id)
        .count()
    )
    if matched > CONFIRM_ABOVE and not confirm:
        raise BulkRetryError(
            {
                "confirm": [
                    f"This retry matches {matched} events, more than {CONFIRM_ABOVE:,}: "
                    'send "confirm": true to go ahead.'
                ]
            }
        )
    if not matched:
        return BulkRetry(0, None)
    request = RetryRequest.objects.using(using).create(
        owner_id=owner_id,
        requested_by=requested_by[:150],
        filters=clean,
        last_event_id=last_event_id,
        matched=matched,
    )
    logger.info(
        "bulk retry %s requested by %s: %d events match %s",
        request.pk,
        requested_by or "-",
        matched,
        clean,
    )
    return BulkRetry(matched, request)


async def work_on_retry_requests(worker: Any, seconds: float) -> None:
    """The worker's share of bulk retries, for ``seconds`` (between two heartbeats).

    Batches run on the worker's database thread (``worker._db``), one short transaction each,
    with a pause after each about as long as the batch took; with no retry request waiting it
    looks again every ``IDLE_SECONDS``. It never raises (but for cancellation): a failure is
    logged and tried again later, the worker goes on delivering.
    """
    from ulak.delivery.worker import DatabaseUnavailable  # the worker logs those itself

    deadline = time.monotonic() + seconds
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        pause = min(IDLE_SECONDS, remaining)
        started = time.monotonic()
        try:
            progress = await worker._db(queue.process_retry_requests, using=worker.alias)
        except asyncio.CancelledError:
            raise
        except DatabaseUnavailable:
            progress = None
        except Exception:  # noqa: BLE001 - a database outage or a bug: never stop the worker
            logger.warning("retry requests: batch failed; trying again later", exc_info=True)
            progress = None
        if progress is not None and progress.scheduled_now:
            worker.wake_threadsafe()  # events are due now
        if progress is not None and (
            progress.scheduled_now or progress.walking or progress.finished
        ):
            # More to walk (or another request may be waiting): go on after a short pause.
            pause = min(max(MIN_PAUSE_SECONDS, time.monotonic() - started), remaining)
        await asyncio.sleep(pause)
