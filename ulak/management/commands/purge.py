"""``ulak purge --older-than DAYS [--include-undelivered]``."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from ulak.maintenance import DEFAULT_BATCH_SIZE, purge_events
from ulak.management.progress import ProgressBar


class Command(BaseCommand):
    help = "Delete delivered events older than DAYS, in bounded batches."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=float, required=True, metavar="DAYS")
        parser.add_argument(
            "--include-undelivered",
            action="store_true",
            help="delete undelivered events too (they can no longer be retried)",
        )
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)

    def handle(
        self, *args, older_than: float, include_undelivered: bool, batch_size: int, **options
    ):
        if older_than < 0:
            raise CommandError("--older-than must be 0 or more days")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        bar = ProgressBar("purging")
        deleted = purge_events(
            older_than,
            include_undelivered=include_undelivered,
            batch_size=batch_size,
            on_progress=bar.update if bar.enabled else None,
        )
        bar.finish()
        self.stdout.write(f"deleted {deleted} event(s)")
