"""``ulak worker``: run one delivery worker until SIGTERM/SIGINT (which drain it)."""

from __future__ import annotations

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run a delivery worker: claim due webhook events, send them, record the outcomes."

    def add_arguments(self, parser):
        parser.add_argument("--name", help="lease owner name (default: host:pid:random)")
        parser.add_argument("--batch-size", type=int, help="events claimed per round trip")
        parser.add_argument("--concurrency", type=int, help="events held at once")
        parser.add_argument("--target-concurrency", type=int, help="attempts in flight per target")

    def handle(self, *args, **options):
        from ulak.delivery.worker import run_worker

        run_worker(
            name=options.get("name"),
            batch_size=options.get("batch_size"),
            concurrency=options.get("concurrency"),
            target_concurrency=options.get("target_concurrency"),
        )
