"""Business operations of the example OMS."""

from __future__ import annotations

from django.db import transaction

import ulak
from packages.models import Package


@transaction.atomic
def change_status(package: Package, status: str, *, tracking_number: str = "") -> list:
    """Move ``package`` to ``status``; shipping publishes ``package.status.shipped``.

    The event rows are written in this same transaction: if anything after this (or the
    caller's enclosing transaction) fails and rolls back, no event exists and nothing is sent.
    The worker sends the event only once the transaction has committed.
    """
    package.status = status
    if tracking_number:
        package.tracking_number = tracking_number
    package.save(update_fields=["status", "tracking_number", "modified_date"])
    if status == Package.Status.SHIPPED:
        # The payload comes from the event class's serializer; the event names the package
        # (object_id and content_type) so the undelivered list can be filtered by it.
        return ulak.publish("package.status.shipped", instance=package)
    return []
