"""The event registry (contract §5). STUB: the publishing issue replaces this module.

Interface others rely on:
- ``registered_event_types() -> list[str]``: every known event type, sorted.
- ``is_registered(event_type: str) -> bool``.
"""

from __future__ import annotations

OMS_EVENT_TYPES = (
    "package.created",
    "package.status.transitioned",
    "package.status.packed",
    "package.status.cancelled",
    "package.status.shipped",
    "package.status.packed_for_refund",
    "package.shipment.awb_number",
    "shipment.created",
    "shipment.status.updated",
    "shipment.cancelled",
    "transfer.status.transitioned",
    "transfer.status.created",
    "transfer.status.in_transit",
    "transfer.status.transferred",
    "transfer.status.cancelled",
    "transfer.status.ready_to_shipment",
    "stock_location.created",
    "stock_location.updated",
)
EXHAUSTED_EVENT_TYPE = "webhook_event.exhausted"


def registered_event_types() -> list[str]:
    return sorted({*OMS_EVENT_TYPES, EXHAUSTED_EVENT_TYPE})


def is_registered(event_type: str) -> bool:
    return event_type in registered_event_types()
