"""The webhook API (contract §2): webhook CRUD and the event lists, scoped to their owner."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import unquote_to_bytes

from django.core.handlers.wsgi import get_bytes_from_wsgi
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.generics import get_object_or_404
from rest_framework.request import Request
from rest_framework.response import Response

from ulak import events
from ulak.api.defaults import UlakApiDefaults
from ulak.api.exceptions import (
    EVENT_ALREADY_DELIVERED,
    EVENT_IN_RETRY_PROCESS,
    WEBHOOK_ALREADY_REGISTERED,
    CodedError,
)
from ulak.api.filters import (
    AllWebhookEventFilter,
    StrictOrderingFilter,
    WebhookEventFilter,
    WebhookFilter,
)
from ulak.api.serializers import (
    BulkRetryResultSerializer,
    BulkRetrySerializer,
    EventRetryResultSerializer,
    EventRetrySerializer,
    WebhookEventSerializer,
    WebhookSerializer,
)
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

    @extend_schema(
        request=EventRetrySerializer,
        responses={
            200: EventRetryResultSerializer,
            406: OpenApiResponse(
                EventRetryResultSerializer,
                description="The attempt failed (this body), or the event may not be retried: "
                '`{"code": "event_100_3", "en": "Event already delivered"}`, '
                '`{"code": "event_100_6", "en": "Event is still in retry process"}` '
                '(send `"force": true` to attempt anyway).',
            ),
            409: OpenApiResponse(
                description="The event is being attempted right now (by a worker or another "
                "retry): nothing was sent."
            ),
        },
        description="Attempt one event once, now, through the delivery worker's sender; the "
        "attempt is recorded like any other (it counts in `retry_count`).",
    )
    @action(detail=True, methods=["post"], url_path="retry", filter_backends=[])
    def retry(self, request: Request, pk: str | None = None) -> Response:
        return retry_event(self, request, pk)


def parse_body_object(request: Request) -> dict[str, Any]:
    """The JSON body as a dict (an empty body is ``{}``); 400 for anything else."""
    data = request.data
    if data is None or (hasattr(data, "keys") and not data):
        return {}
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": ["Expected a JSON object."]})
    return data


def strict_boolean(data: dict[str, Any], name: str) -> bool:
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise ValidationError({name: ["Must be a JSON boolean (true or false)."]})
    return value


EVENT_BUSY_DETAIL = (
    "The event is being attempted right now (by a worker or another retry); nothing was sent. "
    "Try again in a few seconds."
)


def retry_event(view: BaseEventViewSet, request: Request, pk: str | None) -> Response:
    """Contract §2, retry of one event. Runs without a transaction (the attempt's lease must
    be committed before sending), synchronously: the answer carries the attempt's outcome."""
    from ulak.delivery import EventBusy, EventNotFound, attempt_event_now

    # Whatever list the path names, a delivered event answers event_100_3, not 404; another
    # owner's event is a 404 like everywhere else.
    event = get_object_or_404(view.scope_to_user(WebhookEvent.objects.all()), pk=pk)
    force = strict_boolean(parse_body_object(request), "force")
    if event.delivered:
        raise CodedError(*EVENT_ALREADY_DELIVERED)
    still_retrying = not event.is_exhausted and event.next_attempt_at is not None
    if still_retrying and not force:
        raise CodedError(*EVENT_IN_RETRY_PROCESS)
    try:
        result = attempt_event_now(event.pk)
    except EventNotFound:
        raise NotFound() from None  # deleted (purged) meanwhile
    except EventBusy:
        # Not leased: either someone holds it, or it was delivered a moment ago (a concurrent
        # retry or the worker); nothing was sent either way.
        if WebhookEvent.objects.filter(pk=event.pk, delivered=True).exists():
            raise CodedError(*EVENT_ALREADY_DELIVERED) from None
        return Response({"detail": EVENT_BUSY_DETAIL}, status=status.HTTP_409_CONFLICT)
    return Response(
        {
            "detail": "Webhook event delivered successfully"
            if result.delivered
            else "Webhook event delivery failed",
            "response_status": result.status,
            "response_content": result.content,
            "delivered": result.delivered,
            # As the webhook library answered (a DurationField rendered by DRF's encoder).
            "response_time": str(dt.timedelta(seconds=result.duration).total_seconds()),
        },
        status=status.HTTP_200_OK if result.delivered else status.HTTP_406_NOT_ACCEPTABLE,
    )


class UndeliveredEventViewSet(BaseEventViewSet):
    """Events not delivered yet, newest first: the seed's undelivered list."""

    filterset_class = WebhookEventFilter

    def get_queryset(self) -> QuerySet:
        return super().get_queryset().filter(delivered=False)

    @extend_schema(
        operation_id="api_v1_oms_settings_undelivered_webhooks_bulk_retry",
        request=BulkRetrySerializer,
        responses={
            202: BulkRetryResultSerializer,
            400: OpenApiResponse(
                description="A bad or unknown filter (named), or more than 10,000 matches "
                'without `"confirm": true`.'
            ),
        },
        description="Bulk recovery: every undelivered event matching the list's filters (given "
        "in the body) gets a new round: an attempt now, then the webhook's automatic attempts. "
        "The answer comes at once; the delivery workers give the events their new round in "
        "batches right after.",
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="retry",
        filter_backends=[],
        pagination_class=None,
    )
    def bulk_retry(self, request: Request) -> Response:
        from ulak.recovery import BulkRetryError, request_bulk_retry

        data = dict(parse_body_object(request))
        confirm = strict_boolean(data, "confirm")
        data.pop("confirm", None)
        user = request.user
        try:
            bulk = request_bulk_retry(
                data,
                owner_id=None if user.is_superuser else user.pk,
                confirm=confirm,
                requested_by=f"api:{user.get_username()}",
            )
        except BulkRetryError as error:
            raise ValidationError(error.errors) from None
        return Response({"scheduled": bulk.matched}, status=status.HTTP_202_ACCEPTED)


class WebhookEventViewSet(BaseEventViewSet):
    """All events, delivered or not."""

    filterset_class = AllWebhookEventFilter
