"""Publishing speed (contract §5): ``publish_many`` and ``POST /api/v1/oms/events/``.

    python -m bench.publish [--quick]

Prints one JSON object:

- ``publish_many``: 10,000 events (one matching webhook each) in one transaction, in
  events/s, on SQLite and on PostgreSQL (a throw-away server with default durability);
- ``raw_sqlite_insert``: the same rows inserted with the ``sqlite3`` module alone
  (``executemany`` in one transaction) in the same run: the machine's baseline, and
  ``publish_many`` as a fraction of it;
- ``raw_postgresql_commits``: 8 connections inserting one row per transaction with psycopg
  alone: the server's durable-commit ceiling, which bounds one-event HTTP requests there;
- ``http``: 8 keep-alive clients (``bench.load``, lean: they share the cores with the
  server) against ``ulak api`` (granian): requests/s with one
  event per request and events/s with 100 events per request, for several set-ups
  (processes × threads) on SQLite and on PostgreSQL, and the best of them.

Goals: >= 10,000 events/s for publish_many on both databases; over HTTP >= 1,000 requests/s
with one event per request and >= 10,000 events/s with 100 per request.

Each database part runs in a child process of its own (Django's settings are read once per
process); the HTTP clients run here, without Django.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    REPO_ROOT,
    ProcessSet,
    describe_machine,
    free_port,
    log,
    postgres_server,
    print_json,
    raise_on_termination_signals,
    run_json_part,
    wait_for_http,
)
from bench.load import post_in_loop
from bench.payload import build_package_payload

EVENT_TYPE = "package.created"
EVENTS_PER_BATCH = 10_000
LARGE_BODY_BYTES = 2048  # a package with its items: bench.payload's package at 2 KB
HTTP_CLIENTS = 8
GOALS = {
    "publish_many_events_per_second": 10_000,
    "http_single_requests_per_second": 1_000,
    "http_batch_events_per_second": 10_000,
}


def status_payload(number: int = 1) -> dict[str, Any]:
    """A typical OMS status event (about 400 bytes as a body): what most events look like."""
    return {
        "id": 800_000 + number,
        "number": f"PKG-2024-{number:07d}",
        "status": "shipped",
        "previous_status": "packed",
        "order_number": f"SIP-{number:09d}",
        "stock_location": {"id": 12, "name": "İstanbul Ümraniye Depo"},
        "carrier": "Yurtiçi Kargo",
        "tracking_number": f"YK{number:010d}TR",
        "customer_name": "Şükrü Çağlar Öztürk",
        "updated_at": "2024-03-01T12:34:56.789012Z",
    }


PAYLOADS = {
    "status_event": status_payload,
    "package_2kb": lambda: build_package_payload(LARGE_BODY_BYTES),
}

# (worker class, processes, threads per process); ``ulak api --workers N --threads T``.
# (processes, threads per process) of `ulak api` (granian).
FULL_SERVER_SETUPS = [(1, 1), (1, 2), (2, 1), (2, 2), (2, 4)]
QUICK_SERVER_SETUPS = [(1, 1), (2, 1)]


# --------------------------------------------------------------------------- child parts


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ulak.server.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def create_webhook() -> int:
    from ulak.models import Webhook

    webhook, _ = Webhook.objects.get_or_create(
        target_url="https://receiver.example.com/hook",
        event_type=EVENT_TYPE,
        owner=None,
        defaults={"retry_countdown_config": {"choice": "fixed", "kwargs": {"seconds": 5}}},
    )
    return webhook.id


def part_direct(runs: int) -> dict[str, Any]:
    """publish_many of 10,000 events in one transaction (and the raw SQLite baseline)."""
    setup_django()
    from django.db import connection, transaction

    import ulak
    from ulak.models import WebhookEvent

    create_webhook()
    result: dict[str, Any] = {"vendor": connection.vendor, "events": EVENTS_PER_BATCH}
    samples = {}
    for kind, make_payload in PAYLOADS.items():
        # Built once: the builder is slow (it was 97% of this scenario's run time), and
        # publish_many encodes every event's body on its own (no cache by payload identity).
        payload = make_payload()
        events = [{"event_type": EVENT_TYPE, "payload": payload} for _ in range(EVENTS_PER_BATCH)]
        with transaction.atomic():
            ulak.publish_many(events[:500])  # warm-up: connection, caches, registry
        rates = []
        for _ in range(runs):
            started = time.perf_counter()
            with transaction.atomic():
                created = ulak.publish_many(events)
            elapsed = time.perf_counter() - started
            assert len(created) == EVENTS_PER_BATCH
            rates.append(EVENTS_PER_BATCH / elapsed)
        samples[kind] = WebhookEvent.objects.filter(pk=created[0].pk).values().get()
        result[kind] = {
            "body_bytes": len(created[0].request_payload.encode()),
            "runs": runs,
            "events_per_second_median": round(statistics.median(rates)),
            "events_per_second_best": round(max(rates)),
        }
    if connection.vendor == "postgresql":
        result["raw_postgresql_commits"] = measure_postgresql_commits(
            os.environ["DATABASE_URL"], seconds=3.0
        )
    if connection.vendor == "sqlite":
        path = connection.settings_dict["NAME"]
        connection.close()
        result["raw_sqlite_insert"] = {
            kind: measure_raw_sqlite(path, sample, runs) for kind, sample in samples.items()
        }
    return result


def measure_raw_sqlite(path: str, sample: dict[str, Any], runs: int) -> dict[str, Any]:
    """The same rows through the sqlite3 module alone: one executemany, one transaction."""
    import sqlite3
    import uuid

    from ulak.models import WebhookEvent

    fields = [f for f in WebhookEvent._meta.concrete_fields if not f.primary_key]
    columns = [f.column for f in fields]
    database = sqlite3.connect(path, isolation_level=None)
    # The pragmas Ulak's settings use (WAL, synchronous=NORMAL).
    database.execute("PRAGMA journal_mode=WAL")
    database.execute("PRAGMA synchronous=NORMAL")
    template = []
    for field in fields:
        value = sample[field.attname]
        if isinstance(value, list | dict):
            value = json.dumps(value)
        elif hasattr(value, "isoformat"):
            value = value.isoformat(sep=" ").replace("+00:00", "")
        template.append(value)
    uuid_index = columns.index("uuid")
    sql = (
        f'INSERT INTO "{WebhookEvent._meta.db_table}" ('
        + ", ".join(f'"{c}"' for c in columns)
        + ") VALUES ("
        + ", ".join("?" * len(columns))
        + ")"
    )
    rates = []
    for _ in range(runs):
        rows = []
        for _ in range(EVENTS_PER_BATCH):
            row = list(template)
            row[uuid_index] = uuid.uuid4().hex
            rows.append(row)
        started = time.perf_counter()
        database.execute("BEGIN")
        database.executemany(sql, rows)
        database.execute("COMMIT")
        rates.append(EVENTS_PER_BATCH / (time.perf_counter() - started))
    database.close()
    return {
        "rows": EVENTS_PER_BATCH,
        "rows_per_second_median": round(statistics.median(rates)),
        "rows_per_second_best": round(max(rates)),
    }


def measure_postgresql_commits(url: str, *, seconds: float) -> dict[str, Any]:
    """The server's ceiling for small durable transactions: HTTP_CLIENTS connections, each
    inserting one row and committing in a loop (what one published event needs at least)."""
    import threading

    import psycopg

    with psycopg.connect(url, autocommit=True) as setup:
        setup.execute("CREATE TABLE IF NOT EXISTS bench_commit (id bigserial, body text)")
    counts = [0] * HTTP_CLIENTS
    stop_at = time.monotonic() + seconds

    def commit_loop(index: int) -> None:
        with psycopg.connect(url) as database:
            while time.monotonic() < stop_at:
                database.execute("INSERT INTO bench_commit (body) VALUES (%s)", ["x" * 400])
                database.commit()
                counts[index] += 1

    threads = [threading.Thread(target=commit_loop, args=(i,)) for i in range(HTTP_CLIENTS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 30)
    elapsed = time.monotonic() - started
    return {"connections": HTTP_CLIENTS, "commits_per_second": round(sum(counts) / elapsed)}


def part_setup() -> dict[str, Any]:
    """Migrate, a superuser's token and one webhook, for the HTTP part."""
    setup_django()
    from django.contrib.auth import get_user_model

    from ulak.models import ApiToken

    user_model = get_user_model()
    user = user_model.objects.filter(username="bench").first()
    if user is None:
        user = user_model.objects.create_superuser(username="bench", password=None)
    create_webhook()
    return {"token": ApiToken.create_for(user)}


def run_part(part: str, env: dict[str, str], *extra: str) -> dict[str, Any]:
    """Run one of this module's child parts in its own process and database settings."""
    return run_json_part("bench.publish", part, env, *extra)


# --------------------------------------------------------------------------- HTTP clients


def measure_http(
    env: dict[str, str], setups: list[tuple[int, int]], duration: float, home: Path
) -> dict[str, Any]:
    token = run_part("setup", env)["token"]
    payload = status_payload()
    one = json.dumps({"event_type": EVENT_TYPE, "payload": payload}, ensure_ascii=False).encode()
    hundred = json.dumps(
        [{"event_type": EVENT_TYPE, "payload": payload}] * 100, ensure_ascii=False
    ).encode()
    ulak_command = str(Path(sys.executable).parent / "ulak")
    results = []
    for workers, threads in setups:
        port = free_port()
        server_env = dict(env, ULAK_LOG_LEVEL="WARNING")
        with ProcessSet() as processes:
            server = processes.start(
                "api",
                [
                    ulak_command,
                    "api",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--workers",
                    str(workers),
                    "--threads",
                    str(threads),
                ],
                env=server_env,
                log_path=home / f"api-{port}.log",
                cwd=REPO_ROOT,
            )
            wait_for_http(f"http://127.0.0.1:{port}/healthz", process=server, timeout=60)
            url = f"http://127.0.0.1:{port}/api/v1/oms/events/"
            headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
            single = post_in_loop(
                url, headers, one, clients=HTTP_CLIENTS, warm_up=1.0, duration=duration
            )
            batch = post_in_loop(
                url, headers, hundred, clients=HTTP_CLIENTS, warm_up=1.0, duration=duration
            )
        setup = f"workers={workers} threads={threads}"
        log(
            "http %s: %s req/s (1 event), %s events/s (100 per request)",
            setup,
            single["requests_per_second"],
            batch["events_per_second"],
        )
        results.append(
            {
                "server": setup,
                "workers": workers,
                "threads": threads,
                "one_event_per_request": single,
                "hundred_events_per_request": batch,
            }
        )
    best_single = max(results, key=lambda r: r["one_event_per_request"]["requests_per_second"])
    best_batch = max(results, key=lambda r: r["hundred_events_per_request"]["events_per_second"])
    return {
        "clients": HTTP_CLIENTS,
        "seconds_per_measurement": duration,
        "request_bytes_one_event": len(one),
        "request_bytes_hundred_events": len(hundred),
        "setups": results,
        "best_single_requests_per_second": best_single["one_event_per_request"][
            "requests_per_second"
        ],
        "best_single_server": best_single["server"],
        "best_batch_events_per_second": best_batch["hundred_events_per_request"][
            "events_per_second"
        ],
        "best_batch_server": best_batch["server"],
    }


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.publish")
    parser.add_argument("--quick", action="store_true", help="fewer runs, shorter HTTP tests")
    parser.add_argument("--part", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=3, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)

    if options.part == "direct":
        print(json.dumps(part_direct(options.runs)))
        return 0
    if options.part == "setup":
        print(json.dumps(part_setup()))
        return 0

    raise_on_termination_signals()
    runs = "2" if options.quick else "5"
    duration = 3.0 if options.quick else 6.0
    setups = QUICK_SERVER_SETUPS if options.quick else FULL_SERVER_SETUPS
    result: dict[str, Any] = {"scenario": "publish", "quick": options.quick, "goals": GOALS}

    with tempfile.TemporaryDirectory(prefix="ulak-bench-publish-") as folder:
        home = Path(folder)
        base_env = dict(os.environ, DJANGO_SETTINGS_MODULE="ulak.server.settings")
        base_env.pop("DATABASE_URL", None)

        log("publish_many on SQLite")
        sqlite_env = dict(base_env, ULAK_HOME=str(home / "sqlite-direct"))
        sqlite_direct = run_part("direct", sqlite_env, "--runs", runs)
        raw = sqlite_direct.pop("raw_sqlite_insert")

        log("HTTP on SQLite")
        sqlite_http = measure_http(
            dict(base_env, ULAK_HOME=str(home / "sqlite-http")), setups, duration, home
        )

        log("PostgreSQL (default durability)")
        with postgres_server(durable=True) as server:
            postgres_env = dict(base_env, ULAK_HOME=str(home / "pg"), DATABASE_URL=server.url)
            postgres_direct = run_part("direct", postgres_env, "--runs", runs)
            log("HTTP on PostgreSQL")
            postgres_http = measure_http(postgres_env, setups, duration, home)
            result["machine"] = describe_machine(server.url)

    goal = GOALS["publish_many_events_per_second"]
    result["publish_many"] = {"sqlite": sqlite_direct, "postgresql": postgres_direct}
    result["raw_sqlite_insert"] = raw
    result["publish_many_fraction_of_raw_sqlite_insert"] = {
        kind: round(
            sqlite_direct[kind]["events_per_second_median"] / raw[kind]["rows_per_second_median"],
            3,
        )
        for kind in PAYLOADS
    }
    result["http"] = {"sqlite": sqlite_http, "postgresql": postgres_http}
    goals_met: dict[str, bool] = {}
    for vendor, direct in (("sqlite", sqlite_direct), ("postgresql", postgres_direct)):
        for kind in PAYLOADS:
            goals_met[f"publish_many_{kind}_{vendor}"] = (
                direct[kind]["events_per_second_median"] >= goal
            )
    for vendor, http in (("sqlite", sqlite_http), ("postgresql", postgres_http)):
        goals_met[f"http_single_{vendor}"] = (
            http["best_single_requests_per_second"] >= GOALS["http_single_requests_per_second"]
        )
        goals_met[f"http_batch_{vendor}"] = (
            http["best_batch_events_per_second"] >= GOALS["http_batch_events_per_second"]
        )
    result["goals_met"] = goals_met
    print_json(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
