"""``python manage.py ship NUMBER [--city C] [--rollback]``: ship a package (creating it if new)."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import transaction

from packages.models import Package
from packages.services import change_status


class SimulatedFailure(Exception):
    """Raised by --rollback after the status change, to show that a rollback sends nothing."""


class Command(BaseCommand):
    help = "Ship a package: its status becomes shipped and package.status.shipped is published."

    def add_arguments(self, parser):
        parser.add_argument("number")
        parser.add_argument("--city", default="İSTANBUL")
        parser.add_argument("--customer", default="Şükrü Çağlar")
        parser.add_argument(
            "--rollback",
            action="store_true",
            help="fail after publishing, so the whole transaction rolls back",
        )

    def handle(self, *args, number: str, city: str, customer: str, rollback: bool, **options):
        package, _ = Package.objects.get_or_create(
            number=number, defaults={"city": city, "customer_name": customer}
        )
        try:
            with transaction.atomic():
                events = change_status(
                    package, Package.Status.SHIPPED, tracking_number=f"TR{package.pk:08d}"
                )
                self.stdout.write(
                    f"package {number} shipped; {len(events)} event(s) published: "
                    + ", ".join(str(event.uuid) for event in events)
                )
                if rollback:
                    raise SimulatedFailure("something failed after the status change")
        except SimulatedFailure as error:
            package.refresh_from_db()
            self.stdout.write(
                f"rolled back ({error}): package {number} is {package.status}, "
                "and its events were rolled back with it: nothing will be sent"
            )
