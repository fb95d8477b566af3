"""Registers the package event; whisperer's AppConfig.ready() imports every app's ``webhooks``."""

from __future__ import annotations

from whisperer.events import WhispererEvent, registry

from bench.payload import EVENT_TYPE


class PackageCreatedEvent(WhispererEvent):
    # A dict instance is sent as it is: the same payload Ulak's scenarios send.
    event_type = EVENT_TYPE


registry.register(PackageCreatedEvent)
