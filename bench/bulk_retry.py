"""Bulk recovery at scale: ``POST .../undelivered_webhooks/retry/`` over a million matches.

    python -m bench.bulk_retry [--quick] [--events N] [--backends sqlite,postgresql]

For each database engine a fresh database gets N undelivered, exhausted events (raw SQL:
``generate_series`` on PostgreSQL, a recursive CTE on SQLite; ten webhooks of one owner).
Then, in one process with Django set up:

- ``answer``: the bulk retry request through the API view (DRF's test client, in process: the
  server's own work, no HTTP), as a superuser with no filter and as the owner with an
  ``event_type`` filter (a fifth of the events). Baseline: a bare
  ``SELECT COUNT(*) ... WHERE NOT delivered`` in the same run, the least any answer that
  reports the number of matches must do. The goal is an answer within one second.
- ``work``: the request worked through by ``ulak.queue.process_retry_requests`` batch after
  batch, as a worker does (without its pauses). Baseline: one bare ``UPDATE`` giving every
  matching event its new round in a single statement, which holds the write lock (SQLite) or
  every row lock (PostgreSQL) for its whole length; the batches hold them for one batch.

Prints one JSON object: per engine the timings, the ratios and whether the goal was met.
``--quick`` uses 100,000 events.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench import common

GOAL_ANSWER_SECONDS = 1.0
WEBHOOKS = 10
EVENT_TYPES = ("package.status.shipped", "package.created", "shipment.created", "x.y", "x.z")
COLUMNS = (
    "webhook_id, created_date, modified_date, uuid, request_payload, response_content, "
    "response_http_status, delivered, request_datetimes, retry_count, object_id, "
    "content_type_id, next_attempt_at, lease_owner, lease_expires_at, is_exhausted, "
    "round_attempt_count"
)


def load_events(connection: Any, count: int, first_webhook: int) -> None:
    hooks = ", ".join(f"({k}, {first_webhook + k})" for k in range(WEBHOOKS))
    if connection.vendor == "postgresql":
        sql = f"""
            INSERT INTO ulak_webhookevent ({COLUMNS})
            SELECT w.id, now(), now(), md5('bulk-' || g)::uuid,
                   '{{"event":{{}},"payload":{{"n":' || g || '}}}}', 'b''500''', 500, FALSE,
                   '[]'::jsonb, 18, g, NULL, NULL, NULL, NULL, TRUE, 18
            FROM generate_series(1, {count}) AS g
            JOIN (VALUES {hooks}) AS w(k, id) ON w.k = g % {WEBHOOKS}
        """
    else:
        sql = f"""
            WITH RECURSIVE seq(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM seq WHERE g < {count}),
            hooks(k, id) AS (VALUES {hooks})
            INSERT INTO ulak_webhookevent ({COLUMNS})
            SELECT w.id, strftime('%Y-%m-%d %H:%M:%f', 'now'), strftime('%Y-%m-%d %H:%M:%f', 'now'),
                   printf('%016x%016x', g * 2654435761, g),
                   '{{"event":{{}},"payload":{{"n":' || g || '}}}}', 'b''500''', 500, 0,
                   '[]', 18, g, NULL, NULL, NULL, NULL, 1, 18
            FROM seq JOIN hooks AS w ON w.k = g % {WEBHOOKS}
        """
    with connection.cursor() as cursor:
        cursor.execute(sql)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE ulak_webhookevent")


def timed(function, repeat: int = 1) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def child(count: int) -> dict[str, Any]:
    """Runs with Django set up on the database named by the environment."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ulak.server.settings")
    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from rest_framework.test import APIClient

    from ulak.models import ApiToken, RetryRequest, Webhook
    from ulak.queue import process_retry_requests

    call_command("migrate", "--noinput", verbosity=0)
    from django.contrib.auth import get_user_model

    users = get_user_model()
    root = users.objects.create_superuser("root", password="x")
    owner = users.objects.create_user("alice", password="x")
    hooks = [
        Webhook.objects.create(
            owner=owner,
            retry_countdown_config={"choice": "fixed", "kwargs": {"seconds": 60}},
            target_url=f"https://receiver.example.com/{k}",
            event_type=EVENT_TYPES[k // 2],
        )
        for k in range(WEBHOOKS)
    ]
    common.log("%s: loading %d events", connection.vendor, count)
    load_seconds, _ = timed(lambda: load_events(connection, count, hooks[0].id))

    def bare_count() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM ulak_webhookevent WHERE NOT delivered")
            return cursor.fetchone()[0]

    count_seconds, counted = timed(bare_count, repeat=5)
    assert counted == count

    def post(user, body):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION="Token " + ApiToken.create_for(user))

        def call():
            RetryRequest.objects.all().delete()
            response = client.post(
                "/api/v1/oms/settings/undelivered_webhooks/retry/", body, format="json"
            )
            assert response.status_code == 202, response.content
            return response.json()["scheduled"]

        return call

    post(root, {"confirm": True})()  # warm-up (imports, first queries)
    answer_all, scheduled_all = timed(post(root, {"confirm": True}), repeat=3)
    answer_owner, scheduled_owner = timed(
        post(owner, {"event_type": EVENT_TYPES[0], "confirm": True}), repeat=3
    )
    assert scheduled_all == count and scheduled_owner == count // 5
    RetryRequest.objects.all().delete()
    post(root, {"confirm": True})()

    common.log("%s: working through %d events in batches", connection.vendor, count)
    batches: list[float] = []
    started = time.perf_counter()
    while True:
        batch_started = time.perf_counter()
        progress = process_retry_requests()
        batches.append(time.perf_counter() - batch_started)
        if progress is None or progress.finished:
            break
    work_seconds = time.perf_counter() - started
    assert progress is not None and progress.scheduled == count

    def bare_update() -> None:
        from django.db import transaction

        now = connection.ops.adapt_datetimefield_value(django.utils.timezone.now())
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "UPDATE ulak_webhookevent SET next_attempt_at = %s, round_attempt_count = 0, "
                "is_exhausted = %s, lease_owner = NULL, lease_expires_at = NULL, "
                "modified_date = %s WHERE NOT delivered",
                [now, False, now],
            )

    import django.utils.timezone

    update_seconds, _ = timed(bare_update)
    batch_stats = common.summarize_latencies(batches)
    return {
        "events": count,
        "load_seconds": round(load_seconds, 2),
        "answer": {
            "superuser_all_ms": round(answer_all * 1000, 1),
            "owner_event_type_ms": round(answer_owner * 1000, 1),
            "baseline_bare_count_ms": round(count_seconds * 1000, 1),
            "ratio_superuser_all_to_baseline": round(answer_all / count_seconds, 2),
            "goal_seconds": GOAL_ANSWER_SECONDS,
            "goal_met": max(answer_all, answer_owner) <= GOAL_ANSWER_SECONDS,
        },
        "work": {
            "batches": len(batches),
            "batch_ms": batch_stats,
            "total_seconds": round(work_seconds, 2),
            "events_per_second": round(count / work_seconds),
            "baseline_single_update_seconds": round(update_seconds, 2),
            "ratio_total_to_baseline": round(work_seconds / update_seconds, 2),
            # How long one transaction holds its locks: a batch against the single UPDATE.
            "ratio_longest_lock_to_baseline": round(max(batches) / update_seconds, 4),
        },
    }


def run_backend(backend: str, count: int, server: common.PostgresServer | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="ulak-bench-bulk-") as home:
        env = dict(os.environ)
        env["ULAK_HOME"] = home
        env["ULAK_LOG_LEVEL"] = "WARNING"
        env.pop("ULAK_SQLITE_PATH", None)
        env.pop("DATABASE_URL", None)
        if server is not None:
            env["DATABASE_URL"] = server.url
        completed = subprocess.run(
            [sys.executable, "-m", "bench.bulk_retry", "--child", "--events", str(count)],
            env=env,
            cwd=common.REPO_ROOT,
            stdout=subprocess.PIPE,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"{backend}: the measuring process failed")
        return json.loads(completed.stdout)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--events", type=int)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    count = options.events or (100_000 if options.quick else 1_000_000)
    if options.child:
        print(json.dumps(child(count)))
        return
    common.raise_on_termination_signals()
    results: dict[str, Any] = {"scenario": "bulk_retry", "events": count, "backends": {}}
    for backend in options.backends.split(","):
        if backend == "postgresql":
            with common.postgres_server(durable=True) as server:
                results["backends"][backend] = run_backend(backend, count, server)
                results.setdefault("machine", common.describe_machine(server.url))
        else:
            results["backends"][backend] = run_backend(backend, count, None)
    results.setdefault("machine", common.describe_machine(None))
    common.print_json(results)


if __name__ == "__main__":
    main()
