"""Ulak's settings with their defaults.

Every setting can be overridden in the Django settings module; ``setting(name)`` reads
it at call time so tests can use ``override_settings``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Extra event types (dotted paths of event classes, or plain type strings).
    "ULAK_EVENT_TYPES": [],
    # Dotted paths a superuser may use as a webhook's ``callback``.
    "ULAK_CALLBACKS": [],
    # Comma-separated CIDRs (or a list) that targets may reach despite the safety rules.
    "ULAK_ALLOWED_NETWORKS": "",
    # Seconds for a whole attempt when the webhook's config has no ``timeout``.
    "ULAK_DEFAULT_TIMEOUT": 10.0,
    # Automatic attempts when the webhook's config has no ``max_retry_count``.
    "ULAK_DEFAULT_MAX_RETRY_COUNT": 18,
    # Publishing limits (bytes): one payload, one HTTP request.
    "ULAK_MAX_PAYLOAD_BYTES": 1024 * 1024,
    "ULAK_MAX_REQUEST_BYTES": 16 * 1024 * 1024,
    # How much of a target's response body is read, and how much is stored.
    "ULAK_RESPONSE_READ_LIMIT": 64 * 1024,
    "ULAK_RESPONSE_STORE_LIMIT": 4 * 1024,
    # Upper bound (seconds) for a target's Retry-After.
    "ULAK_RETRY_AFTER_CAP": 3600,
    # Keys that encrypt webhook secrets at rest, newest first; old ones still decrypt.
    # Empty: one key derived from Django's SECRET_KEY.
    "ULAK_SECRET_KEYS": [],
    # The API's hot statements (token lookup, webhook match, insert) as prepared statements
    # on PostgreSQL. False behind PgBouncer in transaction mode before 1.21.
    "ULAK_PREPARED_STATEMENTS": True,
    # API throttling per token, for example "100/second"; None turns it off.
    "ULAK_THROTTLE_RATE": None,
    # Lease a worker takes on claimed events (seconds); a dead worker's events come back after it.
    "ULAK_LEASE_SECONDS": 30,
    # The delivery worker: events claimed per database round trip; events a worker holds at
    # once (leased, in flight or being recorded); attempts in flight to one target
    # (scheme, host, port); seconds between polls when nothing wakes it; seconds a SIGTERM'd
    # worker lets attempts in flight finish; seconds between heartbeats.
    "ULAK_WORKER_BATCH_SIZE": 256,
    "ULAK_WORKER_CONCURRENCY": 1024,
    "ULAK_TARGET_CONCURRENCY": 64,
    "ULAK_POLL_INTERVAL": 0.25,
    "ULAK_DRAIN_SECONDS": 10.0,
    "ULAK_HEARTBEAT_SECONDS": 5.0,
}


def setting(name: str) -> Any:
    """Return the Django setting ``name`` or Ulak's default for it."""
    return getattr(settings, name, DEFAULTS[name])
