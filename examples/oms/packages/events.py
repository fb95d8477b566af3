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
    # Ulak registers the OMS catalogue (package.status.shipped among them) as plain types,
    # and refuses to register a second class for a type; so the plain one is taken out first
    # and this class, with its serializer, takes its place.
    if events.get_event_class(PackageShipped.event_type) is not PackageShipped:
        events.unregister(PackageShipped.event_type)
        events.register(PackageShipped)
