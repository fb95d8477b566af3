"""Housekeeping: deleting old events in bounded batches.

Each batch is its own short transaction, so the worker and the API keep writing between
batches (on SQLite a long DELETE would hold the single write lock for its whole length).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable

from django.db import transaction
from django.utils import timezone

from ulak.models import WebhookEvent

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 2000


def purge_events(
    older_than_days: float,
    *,
    include_undelivered: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    pause_seconds: float = 0.01,
    on_progress: Callable[[int, int], None] | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Delete events created more than ``older_than_days`` ago; return how many were deleted.

    Only delivered events unless ``include_undelivered``. An event leased by a worker right
    now is left alone: its attempt is in flight and the worker will record it.
    """
    cutoff = (now or timezone.now()) - dt.timedelta(days=older_than_days)
    candidates = WebhookEvent.objects.filter(created_date__lt=cutoff)
    if not include_undelivered:
        candidates = candidates.filter(delivered=True)
    total = candidates.count() if on_progress else 0
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(
                candidates.filter(lease_owner__isnull=True)
                .order_by("id")
                .values_list("id", flat=True)[:batch_size]
            )
            if not ids:
                break
            count, _ = WebhookEvent.objects.filter(id__in=ids).delete()
        deleted += count
        if on_progress:
            on_progress(deleted, total)
        # Leave the write lock free for a moment: the worker records outcomes in between.
        time.sleep(pause_seconds)
    logger.info("purged %d events older than %s days", deleted, older_than_days)
    return deleted
