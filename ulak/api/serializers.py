"""Serializers of the webhook API (contract §1): the seed's shapes, key order and formats."""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
import secrets as token_secrets
import socket
from collections.abc import Mapping
from typing import Any

from django.db import models
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ulak import events, targets
from ulak.conf import setting
from ulak.models import Webhook, WebhookEvent
from ulak.retry import INVALID_CHOICE, RetryConfigError, validate_retry_config
from ulak.secrets import mask_secret

# The seed's datetimes: always six microsecond digits and a literal Z (UTC).
DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

# ``"secret_key": "generate"`` asks Ulak for a strong secret in the Standard Webhooks format.
GENERATE_SECRET = "generate"
GENERATED_SECRET_PREFIX = "whsec_"
GENERATED_SECRET_BYTES = 24

MAX_TIMEOUT_SECONDS = 300
MAX_RETRY_COUNT = 1_000_000
MAX_ADDITIONAL_HEADERS = 50
MAX_HEADER_VALUE_LENGTH = 4096
AUTH_TYPES = {"basic": ("username", "password"), "token": ("url", "username", "password")}

# RFC 9110 token characters: what a header name may be made of.
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Control characters (CR and LF above all) would let a value inject headers; TAB is allowed.
HEADER_VALUE_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

REQUIRED = "This field is required."
EXPECTED_OBJECT = "Expected a JSON object."
EXPECTED_STRING = "Not a valid string."


def resolve_host(host: str) -> list[str]:
    """The addresses ``host`` resolves to; ``OSError`` when it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except UnicodeError as error:
        # A name that cannot even be IDNA-encoded does not resolve either.
        raise OSError(f"cannot resolve {host!r}: {error}") from error
    return sorted({str(info[4][0]) for info in infos})


def check_url_is_safe(url: str) -> None:
    """Raise ``ValidationError`` when contract §6 refuses ``url`` as a target."""
    allowed = targets.parse_networks(setting("ULAK_ALLOWED_NETWORKS"))
    try:
        targets.check_target_url(url, resolve=resolve_host, allowed_networks=allowed)
    except targets.TargetRefused as error:
        raise serializers.ValidationError(str(error)) from None


def generate_secret() -> str:
    """A ``whsec_`` secret: base64 of random bytes, as Standard Webhooks libraries expect."""
    raw = token_secrets.token_bytes(GENERATED_SECRET_BYTES)
    return GENERATED_SECRET_PREFIX + base64.b64encode(raw).decode("ascii")


def find_unstorable_text(value: Any) -> str | None:
    """Why ``value`` (parsed JSON) cannot be stored, or None.

    PostgreSQL refuses NUL in text and jsonb, and lone surrogates cannot be encoded
    as UTF-8 at all: both would surface as a 500 at save time.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "Null characters are not allowed."
            if any("\ud800" <= char <= "\udfff" for char in item):
                return "Surrogate characters are not allowed."
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return None


class UtcDateTimeField(serializers.DateTimeField):
    """``2022-04-15T13:40:22.651798Z``: DRF's default would drop ``.000000``."""

    def to_representation(self, value: dt.datetime | None) -> str | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).strftime(DATETIME_FORMAT)


@extend_schema_field(OpenApiTypes.OBJECT)
class JsonObjectField(serializers.JSONField):
    """A JSON object (dict) field; the schema says ``object``."""


@extend_schema_field(OpenApiTypes.OBJECT)
class StoredJsonField(serializers.Field):
    """A text column holding JSON (the exact body sent), shown parsed."""

    def __init__(self, **kwargs: Any):
        kwargs["read_only"] = True
        super().__init__(**kwargs)

    def to_representation(self, value: str) -> Any:
        try:
            return json.loads(value)
        except (TypeError, ValueError):
            # Never fail a whole list over one row; show the stored text as it is.
            return value


class UlakModelSerializer(serializers.ModelSerializer):
    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.DateTimeField: UtcDateTimeField,
    }


# What a stored ``config.auth.password`` looks like in responses.
MASKED_PASSWORD = "****"


def _validate_auth(auth: Any) -> Any:
    """``config.auth`` (contract §3): basic, or token with the URL the token comes from."""
    if not isinstance(auth, Mapping):
        return [EXPECTED_OBJECT]
    auth_type = auth.get("auth_type")
    if auth_type is None:
        return {"auth_type": [REQUIRED]}
    if not isinstance(auth_type, str) or auth_type not in AUTH_TYPES:
        return {"auth_type": [INVALID_CHOICE.format(choice=auth_type)]}
    errors: dict[str, list[str]] = {}
    for key in AUTH_TYPES[auth_type]:
        if key not in auth or auth[key] is None:
            errors[key] = [REQUIRED]
        elif not isinstance(auth[key], str):
            errors[key] = [EXPECTED_STRING]
        elif key in ("url", "username") and not auth[key].strip():
            errors[key] = ["This field may not be blank."]
    if auth_type == "token" and "url" not in errors:
        # Ulak's worker fetches the token from this URL: it is a target like any other.
        try:
            check_url_is_safe(auth["url"])
        except serializers.ValidationError as error:
            errors["url"] = error.detail
    return errors or None


class WebhookSerializer(UlakModelSerializer):
    """A webhook in the seed's key order; the secret is masked and ``owner`` is never shown."""

    retry_countdown_config = JsonObjectField()
    target_url = serializers.CharField(max_length=255)
    secret_key = serializers.CharField(
        max_length=124, required=False, allow_null=True, allow_blank=True
    )
    event_type = serializers.CharField(max_length=124)
    callback = serializers.CharField(
        max_length=64, required=False, allow_null=True, allow_blank=True
    )
    additional_headers = JsonObjectField(required=False)
    config = JsonObjectField(required=False)

    class Meta:
        model = Webhook
        fields = (
            "id",
            "retry_countdown_config",
            "created_date",
            "modified_date",
            "target_url",
            "is_active",
            "secret_key",
            "event_type",
            "callback",
            "additional_headers",
            "config",
        )
        read_only_fields = ("id", "created_date", "modified_date")
        # (owner, target_url, event_type) is checked when saving: the view answers 406.
        validators: list = []

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.generated_secret: str | None = None

    def validate_retry_countdown_config(self, value: Any) -> dict[str, Any]:
        try:
            return validate_retry_config(value)
        except RetryConfigError as error:
            raise serializers.ValidationError(error.errors) from None

    def validate_event_type(self, value: str) -> str:
        if not events.is_registered(value):
            raise serializers.ValidationError(INVALID_CHOICE.format(choice=value))
        return value

    def validate_target_url(self, value: str) -> str:
        check_url_is_safe(value)
        return value

    def validate_secret_key(self, value: str | None) -> str | None:
        if value == GENERATE_SECRET:
            self.generated_secret = generate_secret()
            return self.generated_secret
        if self.instance is not None and value and value.startswith("****"):
            # A client that read the webhook and sends it back unchanged sends the mask:
            # keep the real secret rather than replacing it with its mask.
            if value == mask_secret(self.instance.secret_key):
                return self.instance.secret_key
        return value

    def validate_callback(self, value: str | None) -> str | None:
        if not value:
            return value
        if self.instance is not None and value == self.instance.callback:
            return value  # unchanged: whoever set it was allowed to
        request = self.context.get("request")
        user = getattr(request, "user", None)
        if not (user is not None and user.is_superuser):
            raise serializers.ValidationError("Only a superuser may set a callback.")
        if value not in setting("ULAK_CALLBACKS"):
            raise serializers.ValidationError(
                f'"{value}" is not an allowed callback (see the ULAK_CALLBACKS setting).'
            )
        return value

    def validate_additional_headers(self, value: Any) -> dict[str, str]:
        if not isinstance(value, Mapping):
            raise serializers.ValidationError(EXPECTED_OBJECT)
        if len(value) > MAX_ADDITIONAL_HEADERS:
            raise serializers.ValidationError(
                f"Ensure there are no more than {MAX_ADDITIONAL_HEADERS} headers."
            )
        errors: dict[str, list[str]] = {}
        for name, header_value in value.items():
            key = name if find_unstorable_text(name) is None else repr(name)
            if not HEADER_NAME.fullmatch(name):
                errors[key] = ["Not a valid header name."]
            elif not isinstance(header_value, str):
                errors[key] = ["Header values must be strings."]
            elif HEADER_VALUE_FORBIDDEN.search(header_value):
                errors[key] = ["Header values may not contain control characters (CR, LF, ...)."]
            elif find_unstorable_text(header_value) is not None:
                errors[key] = [find_unstorable_text(header_value)]
            elif len(header_value) > MAX_HEADER_VALUE_LENGTH:
                errors[key] = [
                    f"Ensure this value has at most {MAX_HEADER_VALUE_LENGTH} characters."
                ]
        if errors:
            raise serializers.ValidationError(errors)
        return dict(value)

    def validate_config(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise serializers.ValidationError(EXPECTED_OBJECT)
        problem = find_unstorable_text(value)
        if problem is not None:
            raise serializers.ValidationError(problem)
        errors: dict[str, Any] = {}
        if "timeout" in value:
            timeout = value["timeout"]
            if isinstance(timeout, bool) or not isinstance(timeout, int | float):
                errors["timeout"] = ["A valid number is required."]
            elif not math.isfinite(timeout) or timeout <= 0:
                errors["timeout"] = ["Ensure this value is greater than 0."]
            elif timeout > MAX_TIMEOUT_SECONDS:
                errors["timeout"] = [
                    f"Ensure this value is less than or equal to {MAX_TIMEOUT_SECONDS}."
                ]
        if "max_retry_count" in value:
            count = value["max_retry_count"]
            if isinstance(count, bool) or not isinstance(count, int):
                errors["max_retry_count"] = ["A valid integer is required."]
            elif count < 0:
                errors["max_retry_count"] = ["Ensure this value is greater than or equal to 0."]
            elif count > MAX_RETRY_COUNT:
                errors["max_retry_count"] = [
                    f"Ensure this value is less than or equal to {MAX_RETRY_COUNT}."
                ]
        if "auth" in value:
            auth_errors = _validate_auth(value["auth"])
            if auth_errors:
                errors["auth"] = auth_errors
        if errors:
            raise serializers.ValidationError(errors)
        value = dict(value)
        stored_auth = (self.instance.config or {}).get("auth") if self.instance else None
        if (
            isinstance(value.get("auth"), Mapping)
            and value["auth"].get("password") == MASKED_PASSWORD
            and isinstance(stored_auth, Mapping)
        ):
            # The client sent back what it read: keep the real password, not its mask.
            value["auth"] = {**value["auth"], "password": stored_auth.get("password")}
        return value

    def to_representation(self, instance: Webhook) -> dict[str, Any]:
        data = super().to_representation(instance)
        secret = instance.secret_key
        if self.generated_secret is not None and secret == self.generated_secret:
            data["secret_key"] = secret  # shown once, in the answer to the request that made it
        else:
            data["secret_key"] = mask_secret(secret)
        auth = (data.get("config") or {}).get("auth")
        if isinstance(auth, Mapping) and auth.get("password"):
            # Target credentials are as secret as the signing key: never shown back.
            data["config"] = {**data["config"], "auth": {**auth, "password": MASKED_PASSWORD}}
        return data


class WebhookEventSerializer(UlakModelSerializer):
    """An event exactly in the seed's shape, with its webhook nested."""

    webhook = WebhookSerializer(read_only=True)
    request_payload = StoredJsonField()
    content_type = serializers.IntegerField(source="content_type_id", read_only=True)

    class Meta:
        model = WebhookEvent
        fields = (
            "id",
            "webhook",
            "created_date",
            "modified_date",
            "uuid",
            "request_payload",
            "response_content",
            "response_http_status",
            "delivered",
            "request_datetimes",
            "retry_count",
            "object_id",
            "content_type",
        )
        read_only_fields = fields


# --- Retries (contract §2). These describe the bodies in the OpenAPI schema; the views check
# the bodies themselves, strictly (a "force" that is not a JSON boolean is a 400).


class EventRetrySerializer(serializers.Serializer):
    force = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Attempt even while automatic retries go on (a JSON boolean).",
    )


class EventRetryResultSerializer(serializers.Serializer):
    """The answer to a one-event retry, as the webhook library gave it."""

    detail = serializers.CharField()
    response_status = serializers.IntegerField(
        allow_null=True, help_text="The target's HTTP status; null when no HTTP answer came."
    )
    response_content = serializers.CharField(
        help_text="The response body as text, or what happened when no answer came."
    )
    delivered = serializers.BooleanField()
    response_time = serializers.CharField(
        help_text='Seconds the attempt took, as a decimal string ("0.012345"), as the '
        "webhook library answered."
    )


_DATE_HELP = "A date (2023-10-12) or a datetime (2023-10-12T10:07:35Z)."


class BulkRetrySerializer(serializers.Serializer):
    """The undelivered list's filters, in the body; every one is optional."""

    event_type = serializers.CharField(required=False, help_text="Case-insensitive.")
    webhook = serializers.IntegerField(required=False)
    uuid = serializers.UUIDField(required=False)
    object_id = serializers.IntegerField(required=False)
    content_type = serializers.IntegerField(required=False)
    response_http_status = serializers.IntegerField(required=False)
    created_date = serializers.CharField(required=False, help_text=_DATE_HELP)
    created_date__gt = serializers.CharField(required=False, help_text=_DATE_HELP)
    created_date__gte = serializers.CharField(required=False, help_text=_DATE_HELP)
    created_date__lt = serializers.CharField(required=False, help_text=_DATE_HELP)
    created_date__lte = serializers.CharField(required=False, help_text=_DATE_HELP)
    retry_count__gte = serializers.IntegerField(required=False)
    is_exhausted = serializers.BooleanField(required=False)
    confirm = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Required (true) when more than 10,000 events match.",
    )


class BulkRetryResultSerializer(serializers.Serializer):
    scheduled = serializers.IntegerField(
        help_text="Undelivered events matching the filters: each gets a new round."
    )
