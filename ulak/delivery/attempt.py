"""One attempt of one event, now: the API's retry (contract §2) through the worker's sender.

``attempt_event_now(event_id)`` leases the event (whatever its schedule), sends it with the
same ``Sender`` the worker uses, records the attempt through ``ulak.queue`` like any other
(it counts in ``retry_count`` and ``request_datetimes``; the automatic schedule is left as
it was, or cleared if delivered), runs the webhook's callback, and returns an
``AttemptResult``. The lease makes it exclusive: if a worker or another retry holds the
event, ``EventBusy`` is raised and nothing is sent.

It runs on the caller's thread and database connection (a Django view), so it is
synchronous: the HTTP part runs in a private event loop, with no transaction open.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import secrets
import socket

from django.db import transaction

from ulak.conf import setting
from ulak.delivery.callbacks import run_callback
from ulak.delivery.client import Sender
from ulak.delivery.outcome import AttemptOutcome, AttemptResult
from ulak.queue import ClaimedEvent, Queue, WebhookSettings, plan_record, utcnow
from ulak.targets import parse_networks

# The manual attempt's lease outlives its deadline by this much.
LEASE_MARGIN_SECONDS = 5.0


class EventNotFound(LookupError):
    """No event with that id."""


class EventBusy(Exception):
    """The event is leased (a worker or another retry is attempting it right now)."""


async def send_once(webhook: WebhookSettings, event: ClaimedEvent) -> AttemptOutcome:
    """One attempt with a short-lived sender (the worker's code, its own session)."""
    async with Sender(
        allowed_networks=parse_networks(setting("ULAK_ALLOWED_NETWORKS")),
        target_concurrency=1,
        total_concurrency=2,
        read_limit=int(setting("ULAK_RESPONSE_READ_LIMIT")),
        retry_after_cap=float(setting("ULAK_RETRY_AFTER_CAP")),
    ) as sender:
        return await sender.send(webhook, event.request_payload.encode("utf-8"), event.uuid_hex)


def attempt_event_now(event_id: int, *, using: str = "default") -> AttemptResult:
    """Attempt event ``event_id`` once, now, and record it (see the module doc).

    Raises ``EventNotFound`` or ``EventBusy``. Whether the event may be retried (already
    delivered, still in its automatic retries) is the caller's decision.
    """
    if transaction.get_connection(using).in_atomic_block:
        # The lease must be committed before sending, or a worker could not see it.
        raise RuntimeError("attempt_event_now must not run inside a transaction")
    queue = Queue(using)
    owner = f"retry:{socket.gethostname()[:32]}:{os.getpid()}:{secrets.token_hex(4)}"[:64]
    # First a lease long enough for the default timeout; the webhook's own comes next.
    event = queue.lease_event(
        event_id,
        owner,
        lease_seconds=float(setting("ULAK_DEFAULT_TIMEOUT")) + LEASE_MARGIN_SECONDS,
    )
    if event is None:
        if queue.event_exists(event_id):
            raise EventBusy(f"event {event_id} is being attempted right now")
        raise EventNotFound(f"no event {event_id}")
    try:
        webhook = queue.load_webhooks([event.webhook_id])[event.webhook_id]
        if webhook.timeout > float(setting("ULAK_DEFAULT_TIMEOUT")):
            until = utcnow() + datetime.timedelta(seconds=webhook.timeout + LEASE_MARGIN_SECONDS)
            queue.extend_lease(owner, event.id, until)
        outcome = asyncio.run(send_once(webhook, event))
    except BaseException:
        queue.release_events(owner, [event.id])
        raise
    record = plan_record(
        event,
        webhook,
        outcome,
        automatic=False,
        finished_at=utcnow(),
        store_limit=int(setting("ULAK_RESPONSE_STORE_LIMIT")),
    )
    recorded = queue.record_outcomes(owner, [record]) == 1
    if webhook.callback:
        run_callback(webhook, event, outcome)
    content = (
        outcome.error if outcome.error is not None else outcome.body.decode("utf-8", "replace")
    )
    return AttemptResult(
        event_id=event.id,
        delivered=outcome.delivered,
        status=outcome.status,
        content=content,
        duration=outcome.duration,
        recorded=recorded,
    )
