"""Placeholder: the API issue fills this module."""

from __future__ import annotations

from rest_framework import viewsets

from ulak.models import Webhook, WebhookEvent


class WebhookViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Webhook.objects.none()


class UndeliveredEventViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = WebhookEvent.objects.none()


class WebhookEventViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = WebhookEvent.objects.none()
