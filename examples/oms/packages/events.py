"""The example's event classes, registered with Ulak's event registry."""

from __future__ import annotations

from packages.models import Package
from packages.serializers import PackageSerializer
from ulak import events


class PackageShipped(events.Event):
    """``package.status.shipped``: the payload is the package, through PackageSerializer."""

    event_type = "package.status.shipped"
    serializer_class = PackageSerializer
    # The package is read again through this queryset when the event is published.
    queryset = Package.objects.all()


def register_events() -> None:
    # Ulak's built-in catalogue only names package.status.shipped; this class, with its
    # serializer, takes the name's place.
    events.register(PackageShipped)
