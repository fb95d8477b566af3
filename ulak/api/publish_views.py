"""POST /api/v1/oms/events/ (contract §5): publish one event or a list of up to 1,000.

The body is read here, not by DRF's parsers: against Ulak's own limits (413 rather than
Django's DATA_UPLOAD_MAX_MEMORY_SIZE 400), once, and hashed as received for the
``Idempotency-Key``. Validation is hand-written because it runs for every event of every
request: a DRF serializer per event cost more than the insert itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import permissions, serializers, status
from rest_framework.exceptions import APIException, ParseError, UnsupportedMediaType
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.views import APIView

from ulak import publishing
from ulak.api.defaults import UlakApiDefaults
from ulak.conf import setting
from ulak.models import IdempotencyRecord

logger = logging.getLogger(__name__)

MAX_EVENTS_PER_REQUEST = 1000
MAX_IDEMPOTENCY_KEY_LENGTH = 255
EVENT_FIELDS = frozenset({"event_type", "payload", "object_id", "content_type", "config_filter"})


class CanPublish(permissions.BasePermission):
    """A superuser or a holder of ``ulak.publish_event`` (contract §2)."""

    message = "Publishing events needs a superuser or the ulak.publish_event permission."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and (user.is_superuser or user.has_perm("ulak.publish_event")))


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"


PUBLISH_ITEM = inline_serializer(
    "PublishedEventRequest",
    {
        "event_type": serializers.CharField(),
        "payload": serializers.JSONField(help_text="A JSON object."),
        "object_id": serializers.IntegerField(required=False, allow_null=True),
        "content_type": serializers.CharField(
            required=False, allow_null=True, help_text='"app_label.model" or a content type id.'
        ),
        "config_filter": serializers.JSONField(required=False, allow_null=True),
    },
)
PUBLISH_ANSWER = inline_serializer(
    "PublishedEvents",
    {
        "events": inline_serializer(
            "PublishedEvent",
            {
                "id": serializers.IntegerField(),
                "uuid": serializers.UUIDField(),
                "webhook": serializers.IntegerField(),
            },
            many=True,
        )
    },
)


class JsonOnly(BaseContentNegotiation):
    """JSON in and out, whatever ``Accept`` says: this view parses and answers by itself.

    DRF's negotiation parses the Accept header on every request (~15% of the view's CPU
    before this); errors raised through DRF are still rendered by the view's JSONRenderer.
    """

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class PublishView(UlakApiDefaults, APIView):
    permission_classes = [permissions.IsAuthenticated, CanPublish]
    content_negotiation_class = JsonOnly

    @extend_schema(
        summary="Publish one event, or a list of up to 1,000",
        description=(
            "Creates one WebhookEvent per active matching webhook. The body is one event "
            "object or a JSON list of them. An `Idempotency-Key` header makes a repeated "
            "call return the first answer and create nothing."
        ),
        request=PUBLISH_ITEM,
        responses={202: PUBLISH_ANSWER},
        parameters=[
            OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False)
        ],
    )
    def post(self, request, *args: Any, **kwargs: Any) -> HttpResponse:
        raw_body = read_body(request)
        key = request.META.get("HTTP_IDEMPOTENCY_KEY")
        request_hash = ""
        if key is not None:
            if not key or len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
                return json_response(
                    {
                        "Idempotency-Key": [
                            f"Must have 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters."
                        ]
                    },
                    400,
                )
            request_hash = hashlib.sha256(raw_body).hexdigest()
            stored = stored_answer(request.user, key, request_hash)
            if stored is not None:
                return stored

        data = parse_json(raw_body)
        many = isinstance(data, list)
        items = data if many else [data]
        if not many and not isinstance(data, dict):
            raise ParseError("Expected one event (a JSON object) or a JSON list of events.")
        if len(items) > MAX_EVENTS_PER_REQUEST:
            return json_response(
                {
                    "detail": f"At most {MAX_EVENTS_PER_REQUEST} events per request; "
                    f"this one has {len(items)}."
                },
                400,
            )

        try:
            publications = to_publications(items)
            if key is None:
                created = publishing.publish_many(publications)
                return json_response(answer_for(created), 202)
            with transaction.atomic():
                created = publishing.publish_many(publications)
                answer = answer_for(created)
                # In the events' transaction: the unique (user, key) index makes a concurrent
                # identical request wait for this commit, fail, and answer what is stored.
                IdempotencyRecord.objects.create(
                    user=request.user,
                    key=key,
                    request_hash=request_hash,
                    response_status=202,
                    response_body=answer,
                )
            return json_response(answer, 202)
        except publishing.InvalidEvent as error:
            status_code = 413 if isinstance(error, publishing.PayloadTooLarge) else 400
            return json_response(describe_errors(error.errors, many), status_code)
        except IntegrityError:
            if key is None:
                raise
            # A concurrent request with the same key committed first; ours rolled back.
            stored = stored_answer(request.user, key, request_hash)
            if stored is None:
                raise
            logger.info(
                "A concurrent request with the same Idempotency-Key (user %s) answered first; "
                "replaying its answer",
                request.user.pk,
            )
            return stored


def read_body(request) -> bytes:
    """The raw body, at most ULAK_MAX_REQUEST_BYTES (413 otherwise); JSON content types only."""
    content_type = request.META.get("CONTENT_TYPE", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type and media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(media_type)
    limit = int(setting("ULAK_MAX_REQUEST_BYTES"))
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise RequestTooLarge(too_large_message(declared, limit))
    django_request = request._request
    if hasattr(django_request, "_body"):  # already read (by a middleware, say)
        raw_body = django_request._body
    else:
        # read(), unlike .body, does not apply DATA_UPLOAD_MAX_MEMORY_SIZE: Ulak's limit rules.
        raw_body = django_request.read(limit + 1)
    if len(raw_body) > limit:
        raise RequestTooLarge(too_large_message(len(raw_body), limit, at_least=True))
    return raw_body


def too_large_message(size: int, limit: int, *, at_least: bool = False) -> str:
    described = f"over {limit}" if at_least else f"{size}"
    return (
        f"The request body is {described} bytes, over the limit of {limit} bytes "
        "(ULAK_MAX_REQUEST_BYTES)."
    )


def parse_json(raw_body: bytes) -> Any:
    if not raw_body:
        raise ParseError("The body is empty: send one event (a JSON object) or a list of events.")
    try:
        return json.loads(raw_body)
    except (ValueError, UnicodeDecodeError) as error:
        raise ParseError(f"JSON parse error - {error}") from None


def to_publications(items: list[Any]) -> list[publishing.Publication]:
    """Publications for the items; InvalidEvent naming every bad item and field."""
    publications: list[publishing.Publication] = []
    errors: dict[int, dict[str, list[str]]] = {}
    for index, item in enumerate(items):
        problems = check_item(item)
        if problems:
            errors[index] = problems
            continue
        publications.append(
            publishing.Publication(
                event_type=item["event_type"],
                payload=item["payload"],
                object_id=item.get("object_id"),
                content_type=item.get("content_type"),
                config_filter=item.get("config_filter"),
            )
        )
    if errors:
        # Report what publishing would also refuse in the other items (unknown types, sizes).
        valid_indexes = [index for index in range(len(items)) if index not in errors]
        too_large = False
        try:
            publishing.check_events(publications)
        except publishing.InvalidEvent as error:
            too_large = isinstance(error, publishing.PayloadTooLarge)
            for position, problems in error.errors.items():
                errors[valid_indexes[position]] = problems
        errors = dict(sorted(errors.items()))
        raise (publishing.PayloadTooLarge if too_large else publishing.InvalidEvent)(errors)
    return publications


def check_item(item: Any) -> dict[str, list[str]]:
    """The shape of one event object (what publishing does not check itself)."""
    if not isinstance(item, dict):
        return {"non_field_errors": ["Expected a JSON object with event_type and payload."]}
    problems: dict[str, list[str]] = {}
    for name in item.keys() - EVENT_FIELDS:
        problems[name] = ["Unknown field."]
    event_type = item.get("event_type")
    if event_type is None:
        problems["event_type"] = ["This field is required."]
    elif not isinstance(event_type, str):
        problems["event_type"] = ["Must be a string."]
    if "payload" not in item:
        problems["payload"] = ["This field is required."]
    elif not isinstance(item["payload"], dict):
        problems["payload"] = ["Must be a JSON object."]
    object_id = item.get("object_id")
    if object_id is not None and (not isinstance(object_id, int) or isinstance(object_id, bool)):
        problems["object_id"] = ["A valid integer is required."]
    content_type = item.get("content_type")
    if content_type is not None and (
        not isinstance(content_type, str | int) or isinstance(content_type, bool)
    ):
        problems["content_type"] = ['Must be "app_label.model" or an integer id.']
    config_filter = item.get("config_filter")
    if config_filter is not None and not isinstance(config_filter, dict):
        problems["config_filter"] = ["Must be a JSON object."]
    return problems


def describe_errors(errors: dict[int, dict[str, list[str]]], many: bool) -> dict[str, Any]:
    """One event: {field: [messages]}; a list: {"index": {field: [messages]}}."""
    if not many:
        return errors.get(0, {})
    return {str(index): problems for index, problems in errors.items()}


def answer_for(created: list) -> dict[str, list[dict[str, Any]]]:
    return {
        "events": [
            {"id": event.id, "uuid": str(event.uuid), "webhook": event.webhook_id}
            for event in created
        ]
    }


def stored_answer(user, key: str, request_hash: str) -> HttpResponse | None:
    """The first answer for (user, key), or 422 when the key came with another body."""
    record = (
        IdempotencyRecord.objects.filter(user=user, key=key)
        .only("request_hash", "response_status", "response_body")
        .first()
    )
    if record is None:
        return None
    if record.request_hash != request_hash:
        return json_response(
            {
                "detail": "This Idempotency-Key was already used with a different request body; "
                "use a new key for a new request."
            },
            422,
        )
    response = json_response(record.response_body, record.response_status)
    response["Idempotent-Replayed"] = "true"
    return response


def json_response(data: Any, status_code: int) -> HttpResponse:
    # A plain HttpResponse: DRF's renderer and content negotiation add nothing for this body.
    return HttpResponse(
        json.dumps(data, ensure_ascii=False, separators=(",", ":")),
        status=status_code,
        content_type="application/json",
    )
