"""The example's own tests: `python manage.py test packages`.

These check the outbox side (what is written, in which transaction). The delivery to a real
receiver by `manage.py worker` is shown by Ulak's tests/acceptance/test_example_project.py.
"""

from __future__ import annotations

import json

from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.test import TestCase

from packages.models import Package
from packages.services import change_status
from ulak.models import Webhook, WebhookEvent


class ShippingPublishesTests(TestCase):
    def setUp(self):
        self.webhook = Webhook.objects.create(
            target_url="https://erp.example.com/hooks/packages",
            event_type="package.status.shipped",
            retry_countdown_config={"choice": "fixed", "kwargs": {"seconds": 60}},
        )
        self.package = Package.objects.create(number="P-1", city="İZMİR", customer_name="Gülşen")

    def test_shipping_publishes_the_serialized_package(self):
        events = change_status(self.package, Package.Status.SHIPPED, tracking_number="TR1")
        self.assertEqual(len(events), 1)
        event = WebhookEvent.objects.get()
        body = json.loads(event.request_payload)
        self.assertEqual(body["event"], {"type": "package.status.shipped", "uuid": event.uuid.hex})
        self.assertEqual(body["payload"]["number"], "P-1")
        self.assertEqual(body["payload"]["status"], "shipped")
        self.assertEqual(body["payload"]["state"]["translations"]["tr-tr"]["name"], "Kargolanmış")
        self.assertEqual(event.object_id, self.package.pk)
        self.assertEqual(event.content_type, ContentType.objects.get_for_model(Package))

    def test_a_rollback_leaves_neither_the_status_nor_the_event(self):
        with self.assertRaises(RuntimeError), transaction.atomic():
            change_status(self.package, Package.Status.SHIPPED)
            raise RuntimeError("the caller failed after shipping")
        self.package.refresh_from_db()
        self.assertEqual(self.package.status, Package.Status.WAITING)
        self.assertFalse(WebhookEvent.objects.exists())

    def test_other_status_changes_publish_nothing(self):
        self.assertEqual(change_status(self.package, Package.Status.PREPARING), [])
        self.assertFalse(WebhookEvent.objects.exists())
