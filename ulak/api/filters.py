"""Query filters of the webhook API (contract §2); a bad value answers 400 naming the filter."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter

from ulak.models import Webhook, WebhookEvent

MAX_BIGINT = 2**63 - 1
MAX_SMALLINT = 2**15 - 1

# In a query string an unencoded "+" arrives as a space: "10:07:35 03:00" meant "+03:00".
_OFFSET_AS_SPACE = re.compile(r"(.+[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}(?::?\d{2})?)")


@extend_schema_field(OpenApiTypes.INT)
class IntegerFilter(django_filters.NumberFilter):
    """A whole number within the column's range ("1.5" and "1e3" are refused)."""

    field_class = forms.IntegerField

    def get_max_validator(self) -> None:
        return None  # bounds come from max_value


class StrictBooleanField(forms.Field):
    """``true``/``false`` (or 1/0); anything else is an error, not a silently ignored filter."""

    default_error_messages = {"invalid": "Enter true or false."}
    TRUE_VALUES = frozenset({"true", "1"})
    FALSE_VALUES = frozenset({"false", "0"})

    def to_python(self, value: Any) -> bool | None:
        if value in self.empty_values:
            return None
        text = str(value).strip().lower()
        if text in self.TRUE_VALUES:
            return True
        if text in self.FALSE_VALUES:
            return False
        raise forms.ValidationError(self.error_messages["invalid"], code="invalid")


@extend_schema_field(OpenApiTypes.BOOL)
class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


class DateOrDateTimeField(forms.Field):
    """A date (``2023-10-12``) or a datetime (``2023-10-12T10:07:35Z``; naive means UTC)."""

    default_error_messages = {
        "invalid": "Enter a date (2023-10-12) or a datetime (2023-10-12T10:07:35Z)."
    }

    def to_python(self, value: Any) -> dt.date | dt.datetime | None:
        if value in self.empty_values:
            return None
        text = str(value).strip()
        restored = _OFFSET_AS_SPACE.fullmatch(text)
        if restored:
            text = f"{restored[1]}+{restored[2]}"
        try:
            if len(text) == 10:
                return dt.date.fromisoformat(text)
            parsed = parse_datetime(text)
            if parsed is None:
                raise ValueError(text)
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=dt.UTC)
            # Offsets at the ends of the calendar would overflow when converted to UTC.
            return parsed.astimezone(dt.UTC)
        except (ValueError, OverflowError):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None


@extend_schema_field(OpenApiTypes.STR)
class DateOrDateTimeFilter(django_filters.Filter):
    """A datetime compares as itself; a date stands for its whole day in UTC.

    So ``created_date=D`` and ``created_date__lte=D`` include every moment of day D,
    ``__gt=D`` starts after it, ``__gte=D`` at its first moment and ``__lt=D`` ends before it.
    """

    field_class = DateOrDateTimeField

    def filter(self, qs: QuerySet, value: dt.date | dt.datetime | None) -> QuerySet:
        if value is None:
            return qs
        name, lookup = self.field_name, self.lookup_expr
        if isinstance(value, dt.datetime):
            return qs.filter(**{f"{name}__{lookup}": value})
        start = dt.datetime.combine(value, dt.time.min, tzinfo=dt.UTC)
        try:
            end: dt.datetime | None = start + dt.timedelta(days=1)
        except OverflowError:
            end = None  # 9999-12-31: the day has no successor
        if lookup == "gte":
            return qs.filter(**{f"{name}__gte": start})
        if lookup == "lt":
            return qs.filter(**{f"{name}__lt": start})
        if lookup == "gt":
            return qs.none() if end is None else qs.filter(**{f"{name}__gte": end})
        if lookup == "lte":
            return qs if end is None else qs.filter(**{f"{name}__lt": end})
        # exact: the whole day
        qs = qs.filter(**{f"{name}__gte": start})
        return qs if end is None else qs.filter(**{f"{name}__lt": end})


class WebhookFilter(django_filters.FilterSet):
    target_url = django_filters.CharFilter(field_name="target_url", lookup_expr="iexact")
    event_type = django_filters.CharFilter(field_name="event_type", lookup_expr="iexact")
    is_active = StrictBooleanFilter(field_name="is_active")

    class Meta:
        model = Webhook
        fields: list[str] = []


class WebhookEventFilter(django_filters.FilterSet):
    """Filters of the undelivered list (contract §2)."""

    event_type = django_filters.CharFilter(field_name="webhook__event_type", lookup_expr="iexact")
    webhook = IntegerFilter(field_name="webhook_id", min_value=0, max_value=MAX_BIGINT)
    uuid = django_filters.UUIDFilter(field_name="uuid")
    object_id = IntegerFilter(field_name="object_id", min_value=0, max_value=MAX_BIGINT)
    content_type = IntegerFilter(field_name="content_type_id", min_value=0, max_value=MAX_BIGINT)
    response_http_status = IntegerFilter(
        field_name="response_http_status", min_value=0, max_value=MAX_SMALLINT
    )
    created_date = DateOrDateTimeFilter(field_name="created_date", lookup_expr="exact")
    created_date__gt = DateOrDateTimeFilter(field_name="created_date", lookup_expr="gt")
    created_date__gte = DateOrDateTimeFilter(field_name="created_date", lookup_expr="gte")
    created_date__lt = DateOrDateTimeFilter(field_name="created_date", lookup_expr="lt")
    created_date__lte = DateOrDateTimeFilter(field_name="created_date", lookup_expr="lte")
    retry_count__gte = IntegerFilter(
        field_name="retry_count", lookup_expr="gte", min_value=0, max_value=MAX_BIGINT
    )
    is_exhausted = StrictBooleanFilter(field_name="is_exhausted")

    class Meta:
        model = WebhookEvent
        fields: list[str] = []


class AllWebhookEventFilter(WebhookEventFilter):
    """The list of all events adds ``delivered``."""

    delivered = StrictBooleanFilter(field_name="delivered")

    class Meta(WebhookEventFilter.Meta):
        pass


class StrictOrderingFilter(OrderingFilter):
    """``?ordering=`` that answers 400 for an unknown field, and always ends on ``id``.

    The ``id`` tie-breaker keeps pages stable when many rows share a value.
    """

    def get_ordering(self, request, queryset, view) -> list[str] | None:
        raw = request.query_params.get(self.ordering_param)
        if raw:
            terms = [term.strip() for term in raw.split(",") if term.strip()]
            allowed = [
                name for name, _ in self.get_valid_fields(queryset, view, {"request": request})
            ]
            unknown = [term for term in terms if term.lstrip("-") not in allowed]
            if unknown:
                raise ValidationError(
                    {
                        self.ordering_param: [
                            f'Unknown ordering field "{unknown[0]}"; '
                            f"choose from: {', '.join(allowed)}."
                        ]
                    }
                )
        ordering = super().get_ordering(request, queryset, view)
        if ordering and not any(term.lstrip("-") in ("id", "pk") for term in ordering):
            ordering = [*ordering, "-id"]
        return ordering
