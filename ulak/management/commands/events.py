"""``ulak events list [--undelivered] [--event-type T] [--webhook ID]`` and ``ulak events retry``."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db.models import QuerySet

from ulak.models import WebhookEvent

LIST_LIMIT_DEFAULT = 100


def add_filters(parser) -> None:
    parser.add_argument("--event-type", help="only this event type")
    parser.add_argument("--webhook", type=int, help="only this webhook id")
    parser.add_argument("--undelivered", action="store_true", help="only undelivered events")
    parser.add_argument(
        "--exhausted", action="store_true", help="only events whose automatic retries ended"
    )


def filtered_events(options) -> QuerySet[WebhookEvent]:
    events = WebhookEvent.objects.all()
    if options.get("undelivered"):
        events = events.filter(delivered=False)
    if options.get("exhausted"):
        events = events.filter(is_exhausted=True)
    if options.get("event_type"):
        events = events.filter(webhook__event_type__iexact=options["event_type"])
    if options.get("webhook") is not None:
        events = events.filter(webhook_id=options["webhook"])
    return events


class Command(BaseCommand):
    help = "List events, or give matching undelivered events a new round of attempts."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        listing = actions.add_parser("list", help="one line per event, newest first")
        add_filters(listing)
        listing.add_argument("--limit", type=int, default=LIST_LIMIT_DEFAULT)
        retry = actions.add_parser("retry", help="bulk retry of undelivered events")
        add_filters(retry)

    def handle(self, *args, action: str, **options):
        if action == "list":
            self.list_events(options)
        else:
            self.retry_events(options)

    def list_events(self, options) -> None:
        if options["limit"] < 1:
            raise CommandError("--limit must be at least 1")
        rows = (
            filtered_events(options)
            .order_by("-id")
            .values_list(
                "id",
                "webhook__event_type",
                "webhook_id",
                "delivered",
                "retry_count",
                "created_date",
            )[: options["limit"]]
        )
        for event_id, event_type, webhook_id, delivered, retry_count, created in rows:
            state = "delivered" if delivered else "undelivered"
            self.stdout.write(
                f"{event_id}\t{event_type}\twebhook={webhook_id}\t{state}\t"
                f"retry_count={retry_count}\t{created.isoformat()}"
            )

    def retry_events(self, options) -> None:
        from ulak.management.progress import ProgressBar
        from ulak.queue import schedule_retry

        events = filtered_events(options).filter(delivered=False)
        ids = list(events.order_by("id").values_list("id", flat=True))
        bar = ProgressBar("scheduling")
        scheduled = 0
        # Bounded batches: each is a short transaction, so the worker keeps going meanwhile.
        for start in range(0, len(ids), 1000):
            scheduled += schedule_retry(ids[start : start + 1000])
            bar.update(scheduled, len(ids))
        bar.finish()
        self.stdout.write(f"scheduled {scheduled} event(s) for a new round")
