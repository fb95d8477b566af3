"""Django admin for webhooks and their events: find what did not arrive and send it again."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.utils.html import format_html

from ulak.models import ApiToken, RetryRequest, Webhook, WebhookEvent
from ulak.secrets import mask_secret


def pretty_json(text_or_value) -> str:
    if isinstance(text_or_value, str):
        try:
            text_or_value = json.loads(text_or_value)
        except ValueError:
            return text_or_value
    return json.dumps(text_or_value, indent=2, ensure_ascii=False, sort_keys=False)


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ("id", "event_type", "target_url", "is_active", "owner", "modified_date")
    list_filter = ("is_active", "event_type")
    search_fields = ("target_url", "event_type")
    readonly_fields = ("created_date", "modified_date", "masked_secret")
    exclude = ("secret_key",)
    actions = ["activate", "deactivate"]

    @admin.display(description="secret key")
    def masked_secret(self, webhook: Webhook) -> str:
        return mask_secret(webhook.secret_key) or "-"

    @admin.action(description="Activate selected webhooks")
    def activate(self, request, queryset):
        count = queryset.update(is_active=True)
        self.message_user(request, f"{count} webhook(s) activated.", messages.SUCCESS)

    @admin.action(description="Deactivate selected webhooks")
    def deactivate(self, request, queryset):
        count = queryset.update(is_active=False)
        self.message_user(request, f"{count} webhook(s) deactivated.", messages.SUCCESS)


class ExhaustedFilter(admin.SimpleListFilter):
    title = "automatic retries"
    parameter_name = "exhausted"

    def lookups(self, request, model_admin):
        return (("yes", "exhausted"), ("no", "still retrying or delivered"))

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(is_exhausted=True)
        if self.value() == "no":
            return queryset.filter(is_exhausted=False)
        return queryset


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "event_type_display",
        "webhook",
        "delivered",
        "is_exhausted",
        "response_http_status",
        "retry_count",
        "created_date",
        "next_attempt_at",
    )
    list_filter = (
        "delivered",
        ExhaustedFilter,
        "webhook__event_type",
        "response_http_status",
        "created_date",
        "modified_date",
    )
    list_select_related = ("webhook",)
    search_fields = ("=uuid", "=object_id", "webhook__target_url", "webhook__event_type")
    date_hierarchy = "created_date"
    show_full_result_count = False  # an exact count over millions of rows is slow
    actions = ["retry_now", "schedule_retry"]
    fields = (
        "webhook",
        "uuid",
        "delivered",
        "is_exhausted",
        "retry_count",
        "response_http_status",
        "response_view",
        "request_datetimes_view",
        "payload_view",
        "object_id",
        "content_type",
        "next_attempt_at",
        "created_date",
        "modified_date",
    )
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False  # events come from publishing, not from forms

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # the delivery state changes only through the queue

    @admin.display(description="event type", ordering="webhook__event_type")
    def event_type_display(self, event: WebhookEvent) -> str:
        return event.webhook.event_type

    @admin.display(description="request payload")
    def payload_view(self, event: WebhookEvent) -> str:
        return format_html(
            "<pre style='white-space: pre-wrap'>{}</pre>", pretty_json(event.request_payload)
        )

    @admin.display(description="response content")
    def response_view(self, event: WebhookEvent) -> str:
        return format_html(
            "<pre style='white-space: pre-wrap'>{}</pre>", event.response_content or ""
        )

    @admin.display(description="request datetimes")
    def request_datetimes_view(self, event: WebhookEvent) -> str:
        return format_html("<pre>{}</pre>", "\n".join(event.request_datetimes or []))

    @admin.action(description="Retry now (one attempt each, at once)")
    def retry_now(self, request, queryset):
        from ulak.delivery import EventBusy, EventNotFound, attempt_event_now

        delivered = failed = skipped = busy = 0
        # select_related(None): the changelist's queryset joins the webhook, only() defers it.
        for event in queryset.select_related(None).only("id", "delivered")[:100]:
            if event.delivered:
                skipped += 1
                continue
            try:
                result = attempt_event_now(event.id)
            except EventBusy:
                busy += 1  # a worker (or another retry) is attempting it right now
                continue
            except EventNotFound:
                continue  # purged meanwhile
            if result.delivered:
                delivered += 1
            else:
                failed += 1
        level = messages.SUCCESS if not failed and not busy else messages.WARNING
        text = f"{delivered} delivered, {failed} failed, {skipped} already delivered."
        if busy:
            text += f" {busy} being attempted right now (not sent again)."
        self.message_user(request, text, level)

    @admin.action(description="Schedule retry (a new round of automatic attempts)")
    def schedule_retry(self, request, queryset):
        from ulak.queue import schedule_retry

        count = schedule_retry(
            queryset.filter(delivered=False).values_list("id", flat=True),
            requested_by=f"admin:{request.user.get_username()}",
        )
        self.message_user(request, f"{count} event(s) scheduled for a new round.", messages.SUCCESS)


@admin.register(RetryRequest)
class RetryRequestAdmin(admin.ModelAdmin):
    """Bulk retries and how far the workers got with them (read only)."""

    list_display = (
        "id",
        "requested_by",
        "owner",
        "matched",
        "scheduled",
        "created_date",
        "finished_date",
    )
    list_filter = ("finished_date",)
    readonly_fields = (
        "owner",
        "requested_by",
        "filters",
        "matched",
        "scheduled",
        "cursor",
        "last_event_id",
        "deferred_ids",
        "created_date",
        "finished_date",
    )

    def has_add_permission(self, request) -> bool:
        return False  # made by the API's bulk retry and `ulak events retry`

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("prefix", "user", "created_date", "revoked")
    list_filter = ("revoked",)
    search_fields = ("user__username", "prefix")
    readonly_fields = ("user", "prefix", "key_hash", "created_date")
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False  # keys are made with `ulak token create`, which shows the key once

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        count = queryset.update(revoked=True)
        self.message_user(request, f"{count} token(s) revoked.", messages.SUCCESS)
