"""Prometheus metrics for every process, not only the one answering the scrape.

Each worker keeps cumulative counters (attempts by outcome, an attempt-duration
histogram) and writes them with its heartbeat; the queue's state (waiting, exhausted,
oldest due) is read from the database. So any API process can answer ``/metrics`` for
the whole installation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from django.db.models import Count, Min, Q
from django.utils import timezone

from ulak.models import WebhookEvent, WorkerHeartbeat

OUTCOMES = ("delivered", "failed_http", "failed_network", "refused")
# Upper bounds (seconds) of the attempt-duration histogram buckets; the worker uses the same.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# A worker silent for longer than this is not counted as alive.
ALIVE_SECONDS = 30


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{_escape(str(value))}"' for key, value in labels.items()) + "}"


class Exposition:
    """Prometheus text format 0.0.4, written family by family."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, labels: Mapping[str, str] | None = None) -> None:
        self.lines.append(f"{name}{_labels(labels or {})} {float(value)!r}")

    def render(self) -> str:
        return "\n".join(self.lines) + "\n"


def histogram_of(stats: Mapping) -> tuple[dict[str, float], float, float]:
    """(cumulative buckets by upper bound, sum, count) from a worker's stats."""
    buckets = stats.get("duration_buckets") or {}
    return (
        {str(bound): float(buckets.get(str(bound), 0)) for bound in DURATION_BUCKETS},
        float(stats.get("duration_sum", 0.0)),
        float(stats.get("duration_count", 0)),
    )


def render_metrics(
    now: dt.datetime | None = None, workers: Iterable[WorkerHeartbeat] | None = None
) -> str:
    now = now or timezone.now()
    workers = list(workers if workers is not None else WorkerHeartbeat.objects.all())
    out = Exposition()

    out.family("ulak_attempts_total", "counter", "Delivery attempts by outcome, per worker.")
    for worker in workers:
        for outcome in OUTCOMES:
            out.sample(
                "ulak_attempts_total",
                worker.stats.get(outcome, 0),
                {"worker": worker.name, "outcome": outcome},
            )

    out.family(
        "ulak_exhausted_total", "counter", "Events whose automatic attempts ran out, per worker."
    )
    for worker in workers:
        out.sample(
            "ulak_exhausted_total", worker.stats.get("exhausted", 0), {"worker": worker.name}
        )

    out.family(
        "ulak_attempt_duration_seconds", "histogram", "Duration of delivery attempts, all workers."
    )
    totals = {str(bound): 0.0 for bound in DURATION_BUCKETS}
    total_sum = total_count = 0.0
    for worker in workers:
        buckets, duration_sum, duration_count = histogram_of(worker.stats)
        for bound, value in buckets.items():
            totals[bound] += value
        total_sum += duration_sum
        total_count += duration_count
    for bound in DURATION_BUCKETS:
        out.sample("ulak_attempt_duration_seconds_bucket", totals[str(bound)], {"le": str(bound)})
    out.sample("ulak_attempt_duration_seconds_bucket", total_count, {"le": "+Inf"})
    out.sample("ulak_attempt_duration_seconds_sum", total_sum)
    out.sample("ulak_attempt_duration_seconds_count", total_count)

    alive_since = now - dt.timedelta(seconds=ALIVE_SECONDS)
    out.family("ulak_workers_alive", "gauge", "Workers whose heartbeat is recent.")
    out.sample("ulak_workers_alive", sum(1 for worker in workers if worker.seen_at >= alive_since))

    # The queue's state. Each count walks a partial index (due or undelivered rows only).
    due = WebhookEvent.objects.filter(next_attempt_at__isnull=False, next_attempt_at__lte=now)
    waiting = due.count()
    oldest = due.aggregate(oldest=Min("next_attempt_at"))["oldest"]
    undelivered = WebhookEvent.objects.filter(delivered=False)
    counts = undelivered.aggregate(
        undelivered=Count("id"), exhausted=Count("id", filter=Q(is_exhausted=True))
    )
    out.family("ulak_events_waiting", "gauge", "Events due now and not yet attempted.")
    out.sample("ulak_events_waiting", waiting)
    out.family("ulak_events_undelivered", "gauge", "Events not delivered (yet).")
    out.sample("ulak_events_undelivered", counts["undelivered"])
    out.family(
        "ulak_events_exhausted", "gauge", "Undelivered events whose automatic retries ended."
    )
    out.sample("ulak_events_exhausted", counts["exhausted"])
    out.family("ulak_oldest_due_age_seconds", "gauge", "How long the oldest due event has waited.")
    out.sample(
        "ulak_oldest_due_age_seconds", max((now - oldest).total_seconds(), 0.0) if oldest else 0.0
    )
    return out.render()


_BUCKET_KEYS = tuple((bound, str(bound)) for bound in DURATION_BUCKETS)
_EMPTY_BUCKETS = {key: 0 for _, key in _BUCKET_KEYS}


def observe_duration(stats: dict, seconds: float) -> None:
    """Count one attempt's duration in a worker's ``stats`` (the histogram ``histogram_of`` reads).

    ``duration_buckets`` holds cumulative counts by upper bound. The dict is replaced, not
    changed in place: the heartbeat serialises a copy of ``stats`` on another thread, and a
    bucket must never show more than the ``duration_count`` beside it.
    """
    buckets = dict(stats.get("duration_buckets") or _EMPTY_BUCKETS)
    for bound, key in _BUCKET_KEYS:
        if seconds <= bound:
            buckets[key] += 1
    stats["duration_buckets"] = buckets
    stats["duration_sum"] = stats.get("duration_sum", 0.0) + seconds
    stats["duration_count"] = stats.get("duration_count", 0) + 1
