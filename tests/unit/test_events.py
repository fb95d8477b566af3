"""The event registry: the default catalogue, register(), ULAK_EVENT_TYPES, serialising."""

from __future__ import annotations

import json

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from rest_framework import serializers

from ulak import events
from ulak.events import Event

OMS_CATALOGUE = [
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
]


# Imported by dotted path through ULAK_EVENT_TYPES (not registered at import).
class OrderShippedEvent(Event):
    event_type = "test.order.shipped"


class NotAnEvent:
    event_type = "test.not_an_event"


@pytest.fixture
def forget_test_types():
    """Unregister whatever a test registered under test.* types."""
    yield
    for event_type in events.registered_event_types():
        if event_type.startswith("test."):
            events.unregister(event_type)


def test_the_oms_catalogue_and_ulaks_own_type_are_registered_by_default():
    types = events.registered_event_types()
    assert set(OMS_CATALOGUE) | {"webhook_event.exhausted"} <= set(types)
    assert types == sorted(types)
    assert events.is_registered("package.status.shipped")
    assert events.is_registered("webhook_event.exhausted")
    assert not events.is_registered("package.teleported")


def test_register_works_as_a_class_decorator(forget_test_types):
    @events.register
    class InvoiceCreated(Event):
        event_type = "test.invoice.created"

    assert InvoiceCreated.event_type == "test.invoice.created"
    assert events.is_registered("test.invoice.created")
    assert events.get_event_class("test.invoice.created") is InvoiceCreated
    assert "test.invoice.created" in events.registered_event_types()


def test_register_takes_several_classes_and_plain_type_strings(forget_test_types):
    class First(Event):
        event_type = "test.first"

    events.register(First, "test.second")
    assert events.get_event_class("test.first") is First
    second = events.get_event_class("test.second")
    assert issubclass(second, Event) and second.event_type == "test.second"


def test_registering_a_type_twice_is_an_error_naming_it(forget_test_types):
    with pytest.raises(events.AlreadyRegistered, match=r"'webhook_event\.exhausted'"):
        events.register("webhook_event.exhausted")  # Ulak's own type is not a placeholder

    class Original(Event):
        event_type = "test.twice"

    class Impostor(Event):
        event_type = "test.twice"

    events.register(Original)
    events.register(Original)  # the same class again is not a second registration
    with pytest.raises(events.AlreadyRegistered, match=r"'test\.twice'"):
        events.register(Impostor)
    assert events.get_event_class("test.twice") is Original


def test_register_refuses_what_is_not_an_event_class():
    with pytest.raises(ImproperlyConfigured, match="not a subclass"):
        events.register(NotAnEvent)

    class Nameless(Event):
        pass

    with pytest.raises(ImproperlyConfigured, match="no event_type"):
        events.register(Nameless)


def test_unknown_event_type_names_it():
    with pytest.raises(events.UnknownEventType, match=r"'package\.teleported'") as raised:
        events.get_event_class("package.teleported")
    assert raised.value.event_type == "package.teleported"


def test_the_setting_adds_event_classes_by_dotted_path_and_plain_types():
    with override_settings(
        ULAK_EVENT_TYPES=["tests.unit.test_events.OrderShippedEvent", "test.order.returned"]
    ):
        assert events.get_event_class("test.order.shipped") is OrderShippedEvent
        assert events.is_registered("test.order.returned")
        assert "package.created" in events.registered_event_types()
    # The setting's types go away with the setting.
    assert not events.is_registered("test.order.shipped")
    assert not events.is_registered("test.order.returned")


def test_a_setting_that_repeats_a_registered_type_is_an_error_naming_it():
    with override_settings(ULAK_EVENT_TYPES=["test.exhausted", "webhook_event.exhausted"]):
        with pytest.raises(events.AlreadyRegistered, match=r"'webhook_event\.exhausted'"):
            events.registered_event_types()
    with override_settings(ULAK_EVENT_TYPES=["test.dup", "test.dup"]):
        with pytest.raises(events.AlreadyRegistered, match=r"'test\.dup'"):
            events.is_registered("test.dup")
    assert events.is_registered("package.created")  # fine again without the setting


def test_a_setting_naming_a_missing_class_says_so():
    with override_settings(ULAK_EVENT_TYPES=["tests.unit.test_events.Missing"]):
        with pytest.raises(ImproperlyConfigured, match="cannot import event class"):
            events.registered_event_types()


def test_serialize_uses_the_serializer_class_a_dict_as_it_is_else_djangos_json():
    class ContentTypeSerializer(serializers.ModelSerializer):
        class Meta:
            model = ContentType
            fields = ["id", "app_label", "model"]

    class WithSerializer(Event):
        event_type = "test.with_serializer"
        serializer_class = ContentTypeSerializer

    class WithoutSerializer(Event):
        event_type = "test.without_serializer"

    content_type = ContentType(pk=7, app_label="oms", model="package")
    assert WithSerializer().serialize(content_type) == {
        "id": 7,
        "app_label": "oms",
        "model": "package",
    }
    assert WithSerializer().serialize([content_type]) == [
        {"id": 7, "app_label": "oms", "model": "package"}
    ]
    assert WithSerializer().serialize({"id": 1}) == {"id": 1}
    # As the webhook library did: Django's JSON serializer, a string.
    text = WithoutSerializer().serialize(content_type)
    assert isinstance(text, str)
    assert json.loads(text) == [
        {
            "model": "contenttypes.contenttype",
            "pk": 7,
            "fields": {"app_label": "oms", "model": "package"},
        }
    ]


def test_customizes_payload_tells_whether_the_hook_is_overridden():
    class Plain(Event):
        event_type = "test.plain"

    class Custom(Event):
        event_type = "test.custom"

        def customize_payload(self, payload):
            return payload

    assert not Plain.customizes_payload()
    assert Custom.customizes_payload()
    body = {"event": {"type": "test.plain", "uuid": "0" * 32}, "payload": {}}
    assert Plain().customize_payload(body) is body


def test_a_project_class_takes_the_place_of_a_catalogue_name_once():
    from ulak import events

    class Shipped(events.Event):
        event_type = "package.status.shipped"

    class OtherShipped(events.Event):
        event_type = "package.status.shipped"

    original = events.get_event_class("package.status.shipped")
    try:
        events.register(Shipped)
        assert events.get_event_class("package.status.shipped") is Shipped
        with pytest.raises(events.AlreadyRegistered, match="package.status.shipped"):
            events.register(OtherShipped)
    finally:
        events.unregister("package.status.shipped")
        events.registry.register(original)
    assert events.get_event_class("package.status.shipped") is original
