"""What one delivery attempt came to: small value objects, no I/O.

``AttemptOutcome`` is what the sender returns for every attempt, whether the target answered
or not; ``queue.plan_record`` turns it into the row written back. ``AttemptResult`` is what
``attempt_event_now`` gives the API's one-event retry.
"""

from __future__ import annotations

import datetime
import enum
from dataclasses import dataclass
from typing import Any


class OutcomeKind(enum.StrEnum):
    """How an attempt ended; also the names of the worker's counters."""

    DELIVERED = "delivered"  # a 2xx answer
    FAILED_HTTP = "failed_http"  # any other HTTP answer (3xx included: redirects are not followed)
    FAILED_NETWORK = "failed_network"  # no HTTP answer: refused, timeout, TLS, DNS, ...
    REFUSED = "refused"  # the target's address is not allowed (contract §6)


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """One attempt: when it started, how long it took, and the answer or the reason there was none."""

    started_at: datetime.datetime
    duration: float
    kind: OutcomeKind
    status: int | None = None
    # The response body as read (decompressed, at most ULAK_RESPONSE_READ_LIMIT bytes).
    body: bytes = b""
    # One line, without internal details, when no HTTP answer came ("Connection refused").
    error: str | None = None
    # Seconds a 429/503 answer asked to wait (Retry-After), already capped.
    retry_after: float | None = None
    headers: Any = None

    @property
    def delivered(self) -> bool:
        return self.kind is OutcomeKind.DELIVERED

    def stored_content(self, store_limit: int) -> str:
        """``response_content`` as the seed stores it: the body's Python bytes literal, cut to
        ``store_limit`` bytes (``"b'500 Internal Server Error'"``), or the one-line error."""
        if self.error is not None:
            return self.error
        return repr(self.body[:store_limit])


class AttemptResponse:
    """The ``response`` handed to a webhook's ``callback(response, event_type, instance, payload)``.

    It mimics the attributes of the ``requests.Response`` that dj-whisperer passed, so existing
    callbacks keep working: ``status_code`` (None when no HTTP answer came), ``content``,
    ``text``, ``ok``, ``headers``, plus ``error`` and ``elapsed`` (seconds).
    """

    __slots__ = ("status_code", "content", "headers", "error", "elapsed", "url")

    def __init__(self, outcome: AttemptOutcome, url: str):
        self.status_code = outcome.status
        self.content = outcome.body
        self.headers = dict(outcome.headers or {})
        self.error = outcome.error
        self.elapsed = outcome.duration
        self.url = url

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        return f"<AttemptResponse [{self.status_code}]>"


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What ``attempt_event_now`` reports: the API's retry answer is built from it."""

    event_id: int
    delivered: bool
    status: int | None
    # The body as text (UTF-8, undecodable bytes replaced), or the one-line network error.
    content: str
    # Seconds the attempt took.
    duration: float
    # False when this worker's lease was taken over before the outcome could be written.
    recorded: bool = True
