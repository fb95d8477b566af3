"""Ulak's data: webhooks (subscriptions) and webhook events (the outbox and the queue).

The field names and types are the seed's. Scheduling columns (``next_attempt_at``, the
lease, ``is_exhausted``, ``round_attempt_count``) are Ulak's own; only ``queue.py``
changes them.
"""

from __future__ import annotations

import hashlib
import secrets as token_secrets
import uuid

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Q

from ulak import secrets
from ulak.conf import setting


def secret_keys() -> list[str]:
    keys = list(setting("ULAK_SECRET_KEYS"))
    return keys or [settings.SECRET_KEY]


class EncryptedTextField(models.TextField):
    """A text column whose value is encrypted in the database and plain in Python."""

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return secrets.decrypt_secret(value, secret_keys())

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        # Python values are always plain (from_db_value decrypts), so always encrypt: a
        # secret that merely starts with the prefix must not be stored unencrypted.
        return secrets.encrypt_secret(value, secret_keys())


class Webhook(models.Model):
    """A subscription: POST events of ``event_type`` to ``target_url``."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="ulak_webhooks",
    )
    retry_countdown_config = models.JSONField()
    created_date = models.DateTimeField(auto_now_add=True)
    modified_date = models.DateTimeField(auto_now=True)
    target_url = models.CharField(max_length=255)
    is_active = models.BooleanField(default=True)
    # Encrypted at rest, so the column is wider than the 124 characters a secret may have.
    secret_key = EncryptedTextField(null=True, blank=True)
    event_type = models.CharField(max_length=124)
    callback = models.CharField(max_length=64, null=True, blank=True)
    additional_headers = models.JSONField(default=dict, blank=True)
    config = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "target_url", "event_type"], name="ulak_webhook_unique_target"
            )
        ]
        indexes = [models.Index(fields=["event_type", "is_active"], name="ulak_webhook_type")]

    def __str__(self) -> str:
        return f"{self.event_type} → {self.target_url}"

    @property
    def max_retry_count(self) -> int:
        value = (self.config or {}).get("max_retry_count")
        return int(value) if value is not None else int(setting("ULAK_DEFAULT_MAX_RETRY_COUNT"))


class WebhookEvent(models.Model):
    """One event for one webhook: the delivery record, and the job the worker runs."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="events")
    created_date = models.DateTimeField(auto_now_add=True, db_index=True)
    modified_date = models.DateTimeField(auto_now=True)
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # The exact JSON body sent to the target, as text: a jsonb column would reorder keys,
    # and every attempt (and every signature) must use the same bytes.
    request_payload = models.TextField()
    response_content = models.TextField(null=True, blank=True)
    response_http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    delivered = models.BooleanField(default=False)
    # Attempt start times as ISO 8601 strings, newest first (JSON: works on SQLite too).
    request_datetimes = models.JSONField(default=list, blank=True)
    retry_count = models.PositiveIntegerField(default=0)
    object_id = models.PositiveBigIntegerField(null=True, blank=True)
    content_type = models.ForeignKey(
        ContentType, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    # Scheduling. NULL next_attempt_at means nothing is scheduled (delivered or exhausted).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=64, null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    is_exhausted = models.BooleanField(default=False)
    # Automatic attempts in the current round; a bulk retry starts a new round.
    round_attempt_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-id"]
        permissions = [("publish_event", "Can publish events")]
        indexes = [
            # The undelivered list: newest first, only the undelivered rows, so its size
            # follows the undelivered count, not the whole table.
            models.Index(
                fields=["-id"], condition=Q(delivered=False), name="ulak_event_undelivered"
            ),
            models.Index(
                fields=["webhook", "-id"],
                condition=Q(delivered=False),
                name="ulak_event_undelivered_hook",
            ),
            # The worker's claim: only rows with something scheduled are in this index.
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(next_attempt_at__isnull=False),
                name="ulak_event_due",
            ),
            # The claim walks webhooks and takes each one's earliest due events (fairness).
            models.Index(
                fields=["webhook", "next_attempt_at"],
                condition=Q(next_attempt_at__isnull=False),
                name="ulak_event_due_hook",
            ),
            models.Index(fields=["object_id", "content_type"], name="ulak_event_object"),
        ]

    def __str__(self) -> str:
        return f"{self.uuid} ({'delivered' if self.delivered else 'undelivered'})"

    @property
    def event_type(self) -> str:
        return self.webhook.event_type


class ApiToken(models.Model):
    """An API key. Only its SHA-256 is stored; the key itself is shown once."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ulak_tokens"
    )
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8)
    created_date = models.DateTimeField(auto_now_add=True)
    revoked = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @staticmethod
    def hash_key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    @classmethod
    def create_for(cls, user) -> str:
        """Create a token for ``user`` and return the key (the only time it is known)."""
        key = token_secrets.token_urlsafe(32)  # 43 characters of [A-Za-z0-9_-]
        cls.objects.create(user=user, key_hash=cls.hash_key(key), prefix=key[:8])
        return key


class IdempotencyRecord(models.Model):
    """The first answer to a publish request with an ``Idempotency-Key``."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created_date = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="ulak_idempotency_unique")
        ]


class WorkerHeartbeat(models.Model):
    """Each worker writes its row every few seconds; /healthz and metrics read them."""

    name = models.CharField(max_length=64, primary_key=True)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField()
    stats = models.JSONField(default=dict)


class RetryRequest(models.Model):
    """A bulk retry (contract §2): the undelivered events matching ``filters`` get a new round.

    The API (or ``ulak events retry``) counts the matches, stores one of these and answers at
    once; workers then work through it in bounded batches (``ulak.queue.process_retry_requests``),
    walking event ids from ``cursor`` up to ``last_event_id`` (the newest event when it was
    requested, so later events are not swept in). Events a worker held when their batch came
    are kept in ``deferred_ids`` and visited again once their lease is gone.
    """

    # Whose events: NULL means every owner's (a superuser's request, or the command line).
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    requested_by = models.CharField(max_length=150, blank=True, default="")
    # The undelivered list's filters, as validated query values (``{"event_type": "..."}``).
    filters = models.JSONField(default=dict, blank=True)
    last_event_id = models.PositiveBigIntegerField(default=0)
    cursor = models.PositiveBigIntegerField(default=0)
    matched = models.PositiveIntegerField(default=0)
    scheduled = models.PositiveIntegerField(default=0)
    deferred_ids = models.JSONField(default=list, blank=True)
    created_date = models.DateTimeField(auto_now_add=True)
    finished_date = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["id"],
                condition=Q(finished_date__isnull=True),
                name="ulak_retry_unfinished",
            )
        ]

    def __str__(self) -> str:
        state = "finished" if self.finished_date else "in progress"
        return f"retry #{self.pk}: {self.scheduled}/{self.matched} ({state})"
