"""The event registry (contract §5): which event types exist and how an instance becomes a payload.

An event class names its ``event_type`` and may give a DRF ``serializer_class`` (and a
``queryset`` the instance is reloaded through, for its ``select_related`` and the like) and a
``customize_payload(body)`` hook. The meaning follows the webhook library the OMS used, so its
event classes move over unchanged:

- an instance is serialised by ``serializer_class(instance).data``; without a serializer, by
  Django's JSON serializer (a string, as the library sent it); a dict is taken as it is;
- ``customize_payload`` receives the whole body ``{"event": {...}, "payload": ...}`` and
  returns the body to send.

Ulak registers the OMS catalogue and its own ``webhook_event.exhausted``; the
``ULAK_EVENT_TYPES`` setting adds dotted paths of event classes (the last part starts with a
capital letter: ``"oms.events.OrderCreated"``) or plain type strings (``"order.created"``).

Interface others rely on: ``registered_event_types()`` and ``is_registered(event_type)``.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from ulak.conf import setting

__all__ = [
    "Event",
    "AlreadyRegistered",
    "UnknownEventType",
    "register",
    "unregister",
    "get_event_class",
    "registered_event_types",
    "is_registered",
    "OMS_EVENT_TYPES",
    "EXHAUSTED_EVENT_TYPE",
]

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


class AlreadyRegistered(ImproperlyConfigured):
    """An event type was registered twice."""


class UnknownEventType(LookupError):
    """An event type nobody registered."""

    def __init__(self, event_type: str):
        super().__init__(f"Unknown event type {event_type!r}.")
        self.event_type = event_type


class Event:
    """Base class of event classes. Subclass it, set ``event_type``, and ``register`` it."""

    event_type: ClassVar[str] = ""
    # A DRF serializer class: ``serializer_class(instance).data`` is the payload.
    serializer_class: ClassVar[Any] = None
    # Reloads the instance before serialising (for select_related/prefetch_related).
    queryset: ClassVar[Any] = None

    def reload(self, instance: Any) -> Any:
        """The instance through ``queryset``, or the instance itself when gone or no queryset."""
        if self.queryset is None or getattr(instance, "pk", None) is None:
            return instance
        try:
            return self.queryset.get(pk=instance.pk)
        except self.queryset.model.DoesNotExist:
            return instance

    def serialize(self, instance: Any) -> Any:
        """The payload for ``instance`` (a model object, a list of them, or a dict)."""
        if isinstance(instance, dict):
            return instance
        if self.serializer_class is None:
            from django.core import serializers

            objects = instance if isinstance(instance, list) else [instance]
            return serializers.serialize("json", objects)
        return self.serializer_class(instance, many=isinstance(instance, list)).data

    def customize_payload(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Change the whole body (``{"event": ..., "payload": ...}``) before it is frozen."""
        return payload

    @classmethod
    def customizes_payload(cls) -> bool:
        """Whether ``customize_payload`` is overridden (otherwise publishing skips the call)."""
        return cls.customize_payload is not Event.customize_payload


def _plain_event_class(event_type: str) -> type[Event]:
    """An event class for a type registered by name only (no serializer)."""
    name = "".join(part.title() for part in event_type.replace("_", ".").split(".")) + "Event"
    return type(name, (Event,), {"event_type": event_type, "__module__": __name__})


class EventRegistry:
    """Registered event classes by type: those registered in code plus ``ULAK_EVENT_TYPES``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._registered: dict[str, type[Event]] = {}
        # The setting's entries, rebuilt when the setting's value changes (override_settings).
        self._settings_value: tuple[Any, ...] | None = None
        self._from_settings: dict[str, type[Event]] = {}
        self._all: dict[str, type[Event]] = {}

    def register(self, *events: type[Event] | str) -> None:
        with self._lock:
            for event in events:
                event_class = self._as_event_class(event)
                existing = self._registered.get(event_class.event_type)
                if existing is not None and getattr(existing, "catalogue_placeholder", False):
                    # The built-in catalogue only names the OMS types: a project's own class
                    # for one of them (with its serializer) takes the name's place.
                    existing = None
                if existing is not None and existing is not event_class:
                    raise AlreadyRegistered(
                        f"Event type {event_class.event_type!r} is already registered "
                        f"(by {existing.__module__}.{existing.__qualname__})."
                    )
                self._registered[event_class.event_type] = event_class
            self._settings_value = None  # merge again on the next lookup

    def unregister(self, event_type: str) -> None:
        with self._lock:
            self._registered.pop(event_type, None)
            self._settings_value = None

    def classes(self) -> dict[str, type[Event]]:
        """Every registered class by type (a snapshot; cheap when nothing changed)."""
        value = setting("ULAK_EVENT_TYPES")
        key = (value,) if isinstance(value, str) else tuple(value or ())
        if key != self._settings_value:
            with self._lock:
                self._all = self._merge_settings(key)
                self._settings_value = key
        return self._all

    def _merge_settings(self, entries: tuple[Any, ...]) -> dict[str, type[Event]]:
        merged = dict(self._registered)
        for entry in entries:
            # A dotted path may import a module that registers the class itself:
            # the same class under the same type is not a duplicate.
            event_class = self._as_event_class(entry, from_setting=True)
            existing = merged.get(event_class.event_type)
            if existing is not None and getattr(existing, "catalogue_placeholder", False):
                existing = None  # as in register(): a class takes a catalogue name's place
            if existing is not None and existing is not event_class:
                raise AlreadyRegistered(
                    f"Event type {event_class.event_type!r} in ULAK_EVENT_TYPES is already registered."
                )
            merged[event_class.event_type] = event_class
        return merged

    @staticmethod
    def _as_event_class(event: Any, *, from_setting: bool = False) -> type[Event]:
        if isinstance(event, str):
            last_part = event.rsplit(".", 1)[-1]
            if from_setting and last_part[:1].isupper():
                try:
                    event = import_string(event)
                except ImportError as error:
                    raise ImproperlyConfigured(
                        f"ULAK_EVENT_TYPES: cannot import event class {event!r}: {error}"
                    ) from error
            else:
                if not event or len(event) > 124:
                    raise ImproperlyConfigured(
                        f"Event type {event!r} must have 1 to 124 characters."
                    )
                return _plain_event_class(event)
        if not (isinstance(event, type) and issubclass(event, Event)):
            raise ImproperlyConfigured(f"{event!r} is not a subclass of ulak.events.Event.")
        if not isinstance(event.event_type, str) or not event.event_type:
            raise ImproperlyConfigured(f"{event.__qualname__} has no event_type.")
        if len(event.event_type) > 124:
            raise ImproperlyConfigured(f"Event type {event.event_type!r} is over 124 characters.")
        return event


registry = EventRegistry()


def register(*events: Any) -> Any:
    """Register event classes (or plain type strings); usable as a class decorator.

    Registering a type that is already registered (by another class) raises AlreadyRegistered.
    """
    registry.register(*events)
    return events[0] if len(events) == 1 else None


def unregister(event_type: str) -> None:
    """Forget an event type registered in code (for tests and plug-ins)."""
    registry.unregister(event_type)


def get_event_class(event_type: str) -> type[Event]:
    """The class registered for ``event_type``; UnknownEventType if there is none."""
    try:
        return registry.classes()[event_type]
    except KeyError:
        raise UnknownEventType(event_type) from None


def registered_event_types() -> list[str]:
    """Every known event type, sorted."""
    return sorted(registry.classes())


def is_registered(event_type: str) -> bool:
    return event_type in registry.classes()


def _register_catalogue() -> None:
    placeholders = []
    for event_type in OMS_EVENT_TYPES:
        event_class = _plain_event_class(event_type)
        event_class.catalogue_placeholder = True
        placeholders.append(event_class)
    registry.register(*placeholders, EXHAUSTED_EVENT_TYPE)


_register_catalogue()
