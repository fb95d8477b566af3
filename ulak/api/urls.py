"""The OMS webhook API (contract §2), under its OMS paths and the library's /whisperer/ paths."""

from __future__ import annotations

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from ulak.api import publish_views, views

oms = SimpleRouter()
oms.register("webhooks", views.WebhookViewSet, basename="webhook")
oms.register("undelivered_webhooks", views.UndeliveredEventViewSet, basename="undelivered-event")
oms.register("webhook_events", views.WebhookEventViewSet, basename="webhook-event")

whisperer = SimpleRouter()
whisperer.register("hooks", views.WebhookViewSet, basename="whisperer-hook")
whisperer.register("hook_events", views.WebhookEventViewSet, basename="whisperer-hook-event")

urlpatterns = [
    path("api/v1/oms/settings/", include(oms.urls)),
    path("api/v1/oms/events/", publish_views.PublishView.as_view(), name="publish-events"),
    path("whisperer/", include(whisperer.urls)),
]
