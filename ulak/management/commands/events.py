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
        retry = actions.add_parser(
            "retry", help="bulk retry: matching undelivered events get a new round of attempts"
        )
        add_filters(retry)
        retry.add_argument("--since", metavar="DATE", help="created at or after (date or datetime)")
        retry.add_argument("--until", metavar="DATE", help="created before (date or datetime)")
        retry.add_argument("--status", type=int, help="only events whose last HTTP status was this")

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
        """The bulk retry of the API, in the foreground: the same retry request, worked
        through here batch by batch (one short transaction each) with a progress bar."""
        import time

        from ulak.management.progress import ProgressBar
        from ulak.models import RetryRequest
        from ulak.queue import process_retry_requests
        from ulak.recovery import BulkRetryError, request_bulk_retry

        try:
            bulk = request_bulk_retry(
                retry_filters(options), owner_id=None, confirm=True, requested_by="cli"
            )
        except BulkRetryError as error:
            raise CommandError(str(error)) from None
        if bulk.request is None:
            self.stdout.write("no undelivered event matches: nothing to retry")
            return
        request_id = bulk.request.pk
        bar = ProgressBar("scheduling")
        while True:
            progress = process_retry_requests(request_id=request_id)
            if progress is None:
                # A worker is on this request right now (PostgreSQL), or has finished it.
                request = RetryRequest.objects.get(pk=request_id)
                if request.finished_date or request.cursor >= request.last_event_id:
                    break
                time.sleep(0.05)
                continue
            bar.update(progress.scheduled + progress.deferred, progress.matched)
            if progress.finished or not progress.walking:
                break  # what is left is held by workers: they finish it as they let go
        bar.finish()
        request = RetryRequest.objects.get(pk=request_id)
        self.stdout.write(f"scheduled {request.scheduled} event(s) for a new round")
        if request.deferred_ids:
            self.stdout.write(
                f"{len(request.deferred_ids)} event(s) being attempted right now get theirs "
                f"when the attempt ends (retry request {request_id}, finished by the workers)"
            )


def retry_filters(options) -> dict[str, object]:
    """The command line's filters as the API's bulk-retry filters."""
    filters: dict[str, object] = {}
    if options.get("event_type"):
        filters["event_type"] = options["event_type"]
    if options.get("webhook") is not None:
        filters["webhook"] = options["webhook"]
    if options.get("exhausted"):
        filters["is_exhausted"] = True
    if options.get("since"):
        filters["created_date__gte"] = options["since"]
    if options.get("until"):
        filters["created_date__lt"] = options["until"]
    if options.get("status") is not None:
        filters["response_http_status"] = options["status"]
    return filters
