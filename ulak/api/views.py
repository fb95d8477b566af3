"""The webhook API (contract §2): webhook CRUD and the event lists, scoped to their owner."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

from django.core.handlers.wsgi import get_bytes_from_wsgi
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from ulak import events
from ulak.api.defaults import UlakApiDefaults
from ulak.api.exceptions import WEBHOOK_ALREADY_REGISTERED, CodedError
from ulak.api.filters import (
    AllWebhookEventFilter,
    StrictOrderingFilter,
    WebhookEventFilter,
    WebhookFilter,
)
from ulak.api.serializers import WebhookEventSerializer, WebhookSerializer
from ulak.models import Webhook, WebhookEvent


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):
    """Describes ``Authorization: Token <key>`` in the OpenAPI schema (registered on import)."""

    target_class = "ulak.api.authentication.TokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": 'Token-based authentication: "Token <key>".',
        }


def check_query_string(request: Request) -> None:
    """Refuse a query string that is not UTF-8, rather than filter on U+FFFD replacements."""
    raw = get_bytes_from_wsgi(request.META, "QUERY_STRING", "")
    for pair in raw.split(b"&"):
        name, _, value = pair.partition(b"=")
        try:
            decoded_name = unquote_to_bytes(name.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationError(
                {"query_string": ["A parameter name is not valid UTF-8."]}
            ) from None
        try:
            unquote_to_bytes(value.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationError({decoded_name: ["Not valid UTF-8."]}) from None


class OwnedQuerysetMixin(UlakApiDefaults):
    """Non-superusers see only their own webhooks and their events; others' ids answer 404."""

    owner_lookup = "owner"
    request: Request

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # authenticates first: 401 before 400
        check_query_string(request)

    def scope_to_user(self, queryset: QuerySet) -> QuerySet:
        if getattr(self, "swagger_fake_view", False):
            return queryset.none()  # schema generation: no user
        user = self.request.user
        if user.is_superuser:
            return queryset
        return queryset.filter(**{self.owner_lookup: user})


class WebhookViewSet(OwnedQuerysetMixin, viewsets.ModelViewSet):
    """Webhook subscriptions. DELETE is a soft delete: ``is_active`` becomes false."""

    serializer_class = WebhookSerializer
    filterset_class = WebhookFilter
    filter_backends = [DjangoFilterBackend, StrictOrderingFilter]
    ordering_fields = [
        "id",
        "created_date",
        "modified_date",
        "target_url",
        "event_type",
        "is_active",
    ]
    ordering = ["-id"]

    def get_queryset(self) -> QuerySet:
        return self.scope_to_user(Webhook.objects.all())

    def perform_create(self, serializer: WebhookSerializer) -> None:
        save_webhook(serializer, owner=self.request.user)

    def perform_update(self, serializer: WebhookSerializer) -> None:
        save_webhook(serializer)

    def perform_destroy(self, instance: Webhook) -> None:
        # Soft delete: the webhook and its events stay readable; publishing skips it.
        instance.is_active = False
        instance.save(update_fields=["is_active", "modified_date"])

    @extend_schema(
        responses={200: serializers.ListSerializer(child=serializers.CharField())},
        description="The registered event types.",
    )
    @action(
        detail=False,
        methods=["get"],
        url_path="registry",
        pagination_class=None,
        filter_backends=[],
    )
    def registry(self, request: Request) -> Response:
        return Response(events.registered_event_types())


def save_webhook(serializer: WebhookSerializer, **extra: Any) -> None:
    """Save, answering 406 ``webhook_100_2`` for a duplicate (owner, target_url, event_type).

    The unique constraint decides, so two requests racing each other are caught too; only
    ownerless webhooks (made outside the API), where NULL owners never collide in SQL, need
    the explicit look-up.
    """
    instance = serializer.instance
    data = serializer.validated_data
    owner = extra.get("owner", instance.owner if instance is not None else None)
    target_url = data.get("target_url", instance.target_url if instance is not None else None)
    event_type = data.get("event_type", instance.event_type if instance is not None else None)
    duplicates = Webhook.objects.filter(
        owner=owner, target_url=target_url, event_type=event_type
    ).exclude(pk=instance.pk if instance is not None else None)
    try:
        with transaction.atomic():
            if owner is None and duplicates.exists():
                raise CodedError(*WEBHOOK_ALREADY_REGISTERED)
            serializer.save(**extra)
    except IntegrityError:
        if duplicates.exists():
            raise CodedError(*WEBHOOK_ALREADY_REGISTERED) from None
        raise


class BaseEventViewSet(OwnedQuerysetMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = WebhookEventSerializer
    filter_backends = [DjangoFilterBackend, StrictOrderingFilter]
    ordering_fields = [
        "id",
        "created_date",
        "modified_date",
        "retry_count",
        "response_http_status",
        "object_id",
        "delivered",
        "webhook",
    ]
    ordering = ["-id"]
    owner_lookup = "webhook__owner"

    def get_queryset(self) -> QuerySet:
        # One query per page: the webhook comes joined, content_type is its id column.
        return self.scope_to_user(WebhookEvent.objects.select_related("webhook"))


class UndeliveredEventViewSet(BaseEventViewSet):
    """Events not delivered yet, newest first: the seed's undelivered list."""

    filterset_class = WebhookEventFilter

    def get_queryset(self) -> QuerySet:
        return super().get_queryset().filter(delivered=False)


class WebhookEventViewSet(BaseEventViewSet):
    """All events, delivered or not."""

    filterset_class = AllWebhookEventFilter
