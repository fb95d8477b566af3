"""Scenario 5, scale of the data: the undelivered list must not pay for the delivered rows.

    python -m bench.data_scale [--quick] [--backends sqlite,postgresql] [--samples N]

For each database engine (SQLite, and a throw-away PostgreSQL server), three data sets are
loaded with raw SQL (``generate_series`` on PostgreSQL, a recursive CTE on SQLite), each
into a database of its own cloned from one migrated template, and each is served by a real
API server (``ulak api``: granian, 2 processes) answering
``GET /api/v1/oms/settings/undelivered_webhooks/`` over HTTP on loopback:

- ``baseline``: 10,000 events, all undelivered;
- ``mostly_delivered``: 1,000,000 events of which 10,000 (every 100th) are undelivered;
- ``all_undelivered``: 1,000,000 events, all undelivered.

Three pages are timed on each: the first page, a filtered page (``?event_type=&webhook=``,
a tenth of the undelivered rows) and a deep page (``?page=200``). Every page carries the
exact ``count``. Requests are sequential, one keep-alive connection per server, and
interleaved across the three servers (one request to each in turn), so the machine's
noise falls on every data set alike; after a warm-up, p50/p95/p99 are reported.
Goals: p95(mostly_delivered) / p95(baseline) <= 1.5 per page, and the first page of
all_undelivered at p95 <= 200 ms on PostgreSQL.

Rows carry a small JSON body (about 190 bytes, Turkish text) rather than the 8 KB package,
so loading a million rows takes seconds; the pages are 20 rows, so the body size changes
the rendering cost equally in every data set and not the ratios. After loading,
PostgreSQL gets ``VACUUM ANALYZE`` (what autovacuum does on its own after a bulk load);
SQLite gets nothing (Ulak does not run ANALYZE). The queries Django runs for the large data
sets are captured and their plans (EXPLAIN ANALYZE on PostgreSQL, EXPLAIN QUERY PLAN on
SQLite) are in the result, so a missed goal names its query and index.

``--quick`` loads 100,000 rows instead of 1,000,000 (10,000 undelivered in mostly_delivered).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import common

UNDELIVERED_PATH = "/api/v1/oms/settings/undelivered_webhooks/"
PAGE_SIZE = 20  # the API's default page size
DEEP_PAGE = 200
GOAL_RATIO = 1.5
GOAL_FIRST_PAGE_ALL_UNDELIVERED_MS = 200.0

# Ten webhooks: five event types of the OMS catalogue, two targets each. Event g is
# undelivered when g % every == 0 and goes to webhook (g / every) % 10, so the undelivered
# events are spread evenly over the webhooks and the filtered page selects a tenth of them.
EVENT_TYPES = (
    "package.created",
    "package.status.shipped",
    "shipment.created",
    "shipment.status.updated",
    "stock_location.updated",
)
WEBHOOK_COUNT = 10
FILTER_EVENT_TYPE = EVENT_TYPES[0]


@dataclass(frozen=True)
class DataSet:
    name: str
    total: int
    undelivered_every: int  # every k-th event is undelivered (1 = all of them)

    @property
    def undelivered(self) -> int:
        return self.total // self.undelivered_every


def data_sets(quick: bool) -> list[DataSet]:
    large = 100_000 if quick else 1_000_000
    return [
        DataSet("baseline", 10_000, 1),
        DataSet("mostly_delivered", large, large // 10_000),
        DataSet("all_undelivered", large, 1),
    ]


# --------------------------------------------------------------------------- loading rows

# The request_payload of every row, shared by both databases; {g} is the event's number
# (1..N), {uuid} the SQL of its uuid. The payload holds the event's uuid as 32 hex digits, as Ulak's do.
PAYLOAD_SQL = (
    '\'{{"event":{{"type":"\' || w.event_type || \'","uuid":"\' || {uuid} || \'"}},'
    '"payload":{{"id":\' || {g} || \',"number":"PKG-\' || {g} || \'",'
    '"customer":"Şükrü Çağlar Öztürk","city":"İstanbul","district":"Kadıköy",'
    '"note":"İ ı ş ğ ç ö ü"}}}}\''
)

EVENT_COLUMNS = (
    "webhook_id, created_date, modified_date, uuid, request_payload, response_content,"
    " response_http_status, delivered, request_datetimes, retry_count, object_id,"
    " content_type_id, next_attempt_at, lease_owner, lease_expires_at, is_exhausted,"
    " round_attempt_count"
)


def webhook_values(first_id: int) -> str:
    """``(k, webhook id, event type)`` rows to join on: webhook k gets the events of index k."""
    return ", ".join(
        f"({index}, {first_id + index}, '{EVENT_TYPES[index // 2]}')"
        for index in range(WEBHOOK_COUNT)
    )


def insert_webhooks_sql(owner_id: int, now: str) -> str:
    rows = ", ".join(
        f'(\'{{"choice": "fixed", "kwargs": {{"seconds": 60}}}}\', {now}, {now},'
        f" 'https://oms-receiver.example.com/hooks/{index}', TRUE, NULL,"
        f" '{EVENT_TYPES[index // 2]}', NULL, '{{}}', '{{}}', {owner_id})"
        for index in range(WEBHOOK_COUNT)
    )
    return (
        "INSERT INTO ulak_webhook (retry_countdown_config, created_date, modified_date,"
        " target_url, is_active, secret_key, event_type, callback, additional_headers,"
        f" config, owner_id) VALUES {rows}"
    )


def postgres_events_sql(data_set: DataSet, first_webhook: int) -> str:
    total, every = data_set.total, data_set.undelivered_every
    uuid = "md5('ulak-bench-' || g)"
    undelivered = f"(g % {every} = 0)"
    created = f"(now() - make_interval(secs => {total} - g))"
    return f"""
        INSERT INTO ulak_webhookevent ({EVENT_COLUMNS})
        SELECT w.id, {created}, {created}, {uuid}::uuid,
               {PAYLOAD_SQL.format(uuid=uuid, g="g")},
               CASE WHEN {undelivered} THEN 'b''500 Internal Server Error''' ELSE 'b''ok''' END,
               CASE WHEN {undelivered} THEN 500 ELSE 200 END,
               NOT {undelivered},
               jsonb_build_array(to_char({created} AT TIME ZONE 'UTC',
                                         'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
               CASE WHEN {undelivered} THEN 3 ELSE 1 END,
               g, NULL,
               CASE WHEN {undelivered} THEN now() + interval '1 day' END,
               NULL, NULL, FALSE,
               CASE WHEN {undelivered} THEN 3 ELSE 1 END
        FROM generate_series(1, {total}) AS g
        JOIN (VALUES {webhook_values(first_webhook)}) AS w(k, id, event_type)
          ON w.k = (g / {every}) % {WEBHOOK_COUNT}
    """


def sqlite_events_sql(data_set: DataSet, first_webhook: int) -> str:
    total, every = data_set.total, data_set.undelivered_every
    # A deterministic, unique 32-hex-digit uuid per event (Django keeps UUIDs as char(32)).
    uuid = (
        "(printf('%08x', (g * 2654435761) % 4294967296) ||"
        " printf('%08x', (g * 40503) % 4294967296) || printf('%016x', g))"
    )
    undelivered = f"(g % {every} = 0)"
    created = f"strftime('%Y-%m-%d %H:%M:%f', 'now', '-' || ({total} - g) || ' seconds')"
    return f"""
        WITH RECURSIVE seq(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM seq WHERE g < {total}),
        hooks(k, id, event_type) AS (VALUES {webhook_values(first_webhook)})
        INSERT INTO ulak_webhookevent ({EVENT_COLUMNS})
        SELECT w.id, {created}, {created}, {uuid},
               {PAYLOAD_SQL.format(uuid=uuid, g="g")},
               CASE WHEN {undelivered} THEN 'b''500 Internal Server Error''' ELSE 'b''ok''' END,
               CASE WHEN {undelivered} THEN 500 ELSE 200 END,
               NOT {undelivered},
               '["' || strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || ({total} - g) || ' seconds')
                    || '"]',
               CASE WHEN {undelivered} THEN 3 ELSE 1 END,
               g, NULL,
               CASE WHEN {undelivered} THEN strftime('%Y-%m-%d %H:%M:%f', 'now', '+1 day') END,
               NULL, NULL, 0,
               CASE WHEN {undelivered} THEN 3 ELSE 1 END
        FROM seq JOIN hooks AS w ON w.k = (g / {every}) % {WEBHOOK_COUNT}
    """


class Backend:
    """One database engine: a migrated template with a token and the ten webhooks, then one
    database per data set cloned from it and loaded with raw SQL."""

    name = ""
    now_sql = "CURRENT_TIMESTAMP"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.token = ""
        self.first_webhook = 0

    def env(self, data_set: DataSet | None = None) -> dict[str, str]:
        """The environment of an ``ulak`` process using ``data_set``'s database (or the template)."""
        env = dict(os.environ)
        for name in ("DATABASE_URL", "ULAK_SQLITE_PATH", "DJANGO_SETTINGS_MODULE"):
            env.pop(name, None)
        env.update(
            {
                "ULAK_HOME": str(self.workdir),
                "ULAK_SECRET_KEY": "data-scale-benchmark",
                "ULAK_LOG_LEVEL": "WARNING",
                "PYTHONPATH": str(common.REPO_ROOT),
            }
        )
        return env

    def ulak(self, *arguments: str) -> str:
        completed = subprocess.run(
            [sys.executable, "-m", "ulak.cli", *arguments],
            env=self.env(),
            cwd=common.REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"ulak {arguments[0]} failed: {completed.stderr[-2000:]}")
        return completed.stdout

    def prepare(self) -> None:
        """Migrate the template, create a superuser token and the ten webhooks."""
        self.ulak("migrate", "--noinput", "-v", "0")
        self.token = self.ulak("token", "create", "--username", "bench", "--superuser").strip()
        owner_id = self.fetch_one(None, "SELECT id FROM auth_user WHERE username = 'bench'")[0]
        self.execute(None, insert_webhooks_sql(owner_id, self.now_sql))
        self.first_webhook = self.fetch_one(None, "SELECT min(id) FROM ulak_webhook")[0]

    def fetch_one(self, data_set: DataSet | None, sql: str) -> tuple:
        raise NotImplementedError

    def execute(self, data_set: DataSet | None, sql: str) -> None:
        raise NotImplementedError

    def load(self, data_set: DataSet) -> float:
        """Clone the template for ``data_set`` and insert its events; the seconds it took."""
        raise NotImplementedError

    def database_url(self) -> str | None:
        return None


class SqliteBackend(Backend):
    name = "sqlite"

    def path(self, data_set: DataSet | None) -> Path:
        return self.workdir / f"{data_set.name if data_set else 'template'}.sqlite3"

    def env(self, data_set: DataSet | None = None) -> dict[str, str]:
        env = super().env(data_set)
        env["ULAK_SQLITE_PATH"] = str(self.path(data_set))
        return env

    def connect(self, data_set: DataSet | None) -> sqlite3.Connection:
        return sqlite3.connect(self.path(data_set), isolation_level=None)

    def fetch_one(self, data_set: DataSet | None, sql: str) -> tuple:
        connection = self.connect(data_set)
        try:
            return connection.execute(sql).fetchone()
        finally:
            connection.close()

    def execute(self, data_set: DataSet | None, sql: str) -> None:
        connection = self.connect(data_set)
        try:
            connection.execute(sql)
        finally:
            connection.close()

    def prepare(self) -> None:
        super().prepare()
        # Fold the WAL into the file, so a plain copy of it is the whole database.
        self.execute(None, "PRAGMA wal_checkpoint(TRUNCATE)")

    def load(self, data_set: DataSet) -> float:
        shutil.copyfile(self.path(None), self.path(data_set))
        started = time.perf_counter()
        connection = self.connect(data_set)
        try:
            # Durability off while loading only: the bench's own file, made again each run.
            connection.execute("PRAGMA synchronous=OFF")
            connection.execute("BEGIN")
            connection.execute(sqlite_events_sql(data_set, self.first_webhook))
            connection.execute("COMMIT")
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            connection.close()
        return time.perf_counter() - started


class PostgresBackend(Backend):
    name = "postgresql"
    now_sql = "now()"

    def __init__(self, workdir: Path, server: common.PostgresServer) -> None:
        super().__init__(workdir)
        self.server = server

    def url(self, data_set: DataSet | None) -> str:
        # The template is the server's "ulak" database; each data set gets a database of its name.
        base, _, _ = self.server.url.rpartition("/")
        return f"{base}/{data_set.name}" if data_set else self.server.url

    def env(self, data_set: DataSet | None = None) -> dict[str, str]:
        env = super().env(data_set)
        env["DATABASE_URL"] = self.url(data_set)
        return env

    def database_url(self) -> str | None:
        return self.server.url

    def fetch_one(self, data_set: DataSet | None, sql: str) -> tuple:
        import psycopg

        with psycopg.connect(self.url(data_set)) as connection:
            return connection.execute(sql).fetchone()

    def execute(self, data_set: DataSet | None, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url(data_set), autocommit=True) as connection:
            connection.execute(sql)

    def load(self, data_set: DataSet) -> float:
        import psycopg

        # CREATE DATABASE ... TEMPLATE copies the migrated template with its token and webhooks.
        self.execute(None, f'CREATE DATABASE "{data_set.name}" TEMPLATE ulak')
        started = time.perf_counter()
        with psycopg.connect(self.url(data_set), autocommit=True) as connection:
            with connection.transaction():
                connection.execute(postgres_events_sql(data_set, self.first_webhook))
            # What autovacuum does after a bulk load: statistics, and the visibility map
            # that lets a count use an index-only scan.
            connection.execute("VACUUM ANALYZE ulak_webhookevent")
            connection.execute("CHECKPOINT")
        return time.perf_counter() - started


# --------------------------------------------------------------------------- measuring


def page_queries(first_webhook: int) -> dict[str, str]:
    return {
        "first": UNDELIVERED_PATH,
        "filtered": f"{UNDELIVERED_PATH}?event_type={FILTER_EVENT_TYPE}&webhook={first_webhook}",
        "deep": f"{UNDELIVERED_PATH}?page={DEEP_PAGE}",
    }


def expected_count(data_set: DataSet, page: str) -> int:
    if page == "filtered":
        return data_set.undelivered // WEBHOOK_COUNT
    return data_set.undelivered


def request_page(connection: http.client.HTTPConnection, path: str, token: str) -> tuple:
    """GET ``path`` on a keep-alive connection: (seconds, status, body)."""
    started = time.perf_counter()
    connection.request(
        "GET", path, headers={"Authorization": f"Token {token}", "Accept": "application/json"}
    )
    response = connection.getresponse()
    body = response.read()
    return time.perf_counter() - started, response.status, body


def describe_answer(status: int, body: bytes) -> dict[str, Any]:
    answer: dict[str, Any] = {"status": status, "bytes": len(body)}
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        answer["count"] = parsed.get("count")
        answer["results"] = len(parsed.get("results") or [])
    else:
        answer["body"] = body[:300].decode(errors="replace")
    return answer


def time_pages_interleaved(
    ports: dict[str, int], path: str, token: str, *, samples: int, warmup: int
) -> dict[str, tuple[dict[str, Any], list[float]]]:
    """Time ``path`` on every data set's server, one request each in turn.

    Interleaving puts every data set under the same load at the same moment, so a burst of
    foreign work on this shared machine cannot fall on one data set only and skew a ratio.
    The order rotates each round so no server always goes first.
    """
    names = list(ports)
    connections = {
        name: http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for name, port in ports.items()
    }
    answers: dict[str, dict[str, Any]] = {}
    timings: dict[str, list[float]] = {name: [] for name in names}
    try:
        for round_number in range(warmup + samples):
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                if name in answers and answers[name]["status"] != 200:
                    continue  # an API that is not ready is not timed
                seconds, status, body = request_page(connections[name], path, token)
                if name not in answers:
                    answers[name] = describe_answer(status, body)
                if round_number >= warmup and status == 200:
                    timings[name].append(seconds)
    finally:
        for connection in connections.values():
            connection.close()
    return {name: (answers[name], timings[name]) for name in names}


def start_api(env: dict[str, str], processes: common.ProcessSet, name: str, log: Path) -> int:
    port = common.free_port()
    server = processes.start(
        name,
        [sys.executable, "-m", "ulak.cli", "api", "--host", "127.0.0.1", "--port", str(port)]
        + ["--workers", "2"],
        env=env,
        cwd=common.REPO_ROOT,
        log_path=log,
    )
    common.wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=90, process=server)
    return port


def explain_queries(env: dict[str, str], token: str, paths: Sequence[str]) -> list[dict[str, Any]]:
    """Run the pages in a child process with Django, capture its SQL and explain each query."""
    completed = subprocess.run(
        [sys.executable, "-m", "bench.data_scale", "--explain-child", token, *paths],
        env=env,
        cwd=common.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if completed.returncode != 0:
        return [{"error": completed.stderr[-2000:]}]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def explain_child(token: str, paths: Sequence[str]) -> None:
    """In a child process: GET each path with Django's test client and explain its SQL."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ulak.server.settings")
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_AUTHORIZATION=f"Token {token}")
    report = []
    for path in paths:
        with CaptureQueriesContext(connection) as captured:
            status = client.get(path).status_code
        queries = []
        for query in captured.captured_queries:
            sql = query["sql"]
            if not sql.lstrip().upper().startswith("SELECT"):
                continue
            queries.append(explain_one(connection, sql, float(query["time"])))
        report.append({"path": path, "status": status, "queries": queries})
    print(json.dumps(report), flush=True)


def explain_one(connection: Any, sql: str, seconds: float) -> dict[str, Any]:
    entry: dict[str, Any] = {"sql": sql[:1500], "django_ms": round(seconds * 1000, 2)}
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
            entry["plan"] = [row[0] for row in cursor.fetchall()]
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + sql)
            entry["plan"] = [row[-1] for row in cursor.fetchall()]
            started = time.perf_counter()
            cursor.execute(sql)
            cursor.fetchall()
            entry["run_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return entry


def measure_backend(
    backend: Backend, *, quick: bool, samples: int, warmup: int, explain: bool
) -> dict[str, Any]:
    backend.prepare()
    pages = page_queries(backend.first_webhook)
    sets: dict[str, Any] = {}
    chosen = data_sets(quick)
    for data_set in chosen:
        load_seconds = backend.load(data_set)
        common.log(
            "%s %s: %d rows loaded in %.1f s",
            backend.name,
            data_set.name,
            data_set.total,
            load_seconds,
        )
        sets[data_set.name] = {
            "events": data_set.total,
            "undelivered": data_set.undelivered,
            "load_seconds": round(load_seconds, 1),
            "pages": {},
        }
    with common.ProcessSet() as processes:
        ports = {
            data_set.name: start_api(
                backend.env(data_set),
                processes,
                f"api-{data_set.name}",
                backend.workdir / f"api-{data_set.name}.log",
            )
            for data_set in chosen
        }
        for page, path in pages.items():
            measured = time_pages_interleaved(
                ports, path, backend.token, samples=samples, warmup=warmup
            )
            for data_set in chosen:
                answer, timings = measured[data_set.name]
                result: dict[str, Any] = {"path": path, "first_answer": answer}
                wanted = expected_count(data_set, page)
                if answer.get("status") != 200:
                    result["error"] = f"HTTP {answer.get('status')}: the API is not ready"
                elif answer.get("count") != wanted:
                    result["error"] = f"count {answer.get('count')} where {wanted} were loaded"
                if timings and "error" not in result:
                    result.update(common.summarize_latencies(timings))
                sets[data_set.name]["pages"][page] = result
                common.log(
                    "%s %s %s: p95 %s ms",
                    backend.name,
                    data_set.name,
                    page,
                    result.get("p95_ms", result.get("error")),
                )
    if explain:
        for data_set in chosen:
            if data_set.name != "baseline":
                sets[data_set.name]["explain"] = explain_queries(
                    backend.env(data_set), backend.token, list(pages.values())
                )
    return {"data_sets": sets, **judge(sets, backend.name)}


def judge(sets: dict[str, Any], backend: str) -> dict[str, Any]:
    """The ratios and the goals of the issue, computed from the p95s."""
    ratios: dict[str, float | None] = {}
    goals: dict[str, Any] = {}
    for page in ("first", "filtered", "deep"):
        large = sets["mostly_delivered"]["pages"][page].get("p95_ms")
        small = sets["baseline"]["pages"][page].get("p95_ms")
        ratio = round(large / small, 2) if large and small else None
        ratios[page] = ratio
        goals[f"{page}_page_ratio_at_most_{GOAL_RATIO}"] = (
            None if ratio is None else ratio <= GOAL_RATIO
        )
    first_all = sets["all_undelivered"]["pages"]["first"].get("p95_ms")
    if backend == "postgresql":
        goals[
            f"all_undelivered_first_page_p95_at_most_{GOAL_FIRST_PAGE_ALL_UNDELIVERED_MS:.0f}_ms"
        ] = None if first_all is None else first_all <= GOAL_FIRST_PAGE_ALL_UNDELIVERED_MS
    return {
        "p95_ratio_mostly_delivered_over_baseline": ratios,
        "all_undelivered_first_page_p95_ms": first_all,
        "goals_met": goals,
    }


def run_data_scale(
    *,
    quick: bool = False,
    backends: Sequence[str] = ("sqlite", "postgresql"),
    samples: int | None = None,
    explain: bool = True,
) -> dict[str, Any]:
    """Run scenario 5 and return its result (the JSON object the command prints)."""
    samples = samples or (20 if quick else 40)
    warmup = 3 if quick else 5
    result: dict[str, Any] = {
        "scenario": "data_scale",
        "what": (
            "p95 latency over HTTP (ulak api, granian 2 processes, sequential keep-alive"
            " requests) of the undelivered list: first page, filtered page, page 200"
        ),
        "quick": quick,
        "samples_per_page": samples,
        "warmup_requests": warmup,
        "page_size": PAGE_SIZE,
        "data_sets": {
            data_set.name: {"events": data_set.total, "undelivered": data_set.undelivered}
            for data_set in data_sets(quick)
        },
        "row_payload": "small JSON body of about 190 bytes with Turkish text, not the 8 KB package",
        "backends": {},
    }
    postgres_url = None
    for backend in backends:
        workdir = Path(tempfile.mkdtemp(prefix=f"ulak-scale-{backend}-"))
        server = None
        try:
            if backend == "postgresql":
                server = common.start_postgres(durable=True)
                postgres_url = server.url
                engine: Backend = PostgresBackend(workdir, server)
            else:
                engine = SqliteBackend(workdir)
            result["backends"][backend] = measure_backend(
                engine, quick=quick, samples=samples, warmup=warmup, explain=explain
            )
            if backend == "postgresql":
                result["machine"] = common.describe_machine(postgres_url)
        except Exception as error:  # noqa: BLE001 - report it, and go on with the next backend
            common.log("%s failed: %s (files kept in %s)", backend, error, workdir)
            result["backends"][backend] = {"error": str(error)}
            workdir = None  # type: ignore[assignment]
        finally:
            if server is not None:
                common.stop_postgres(server)
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)
    result.setdefault("machine", common.describe_machine())
    return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--explain-child":
        explain_child(sys.argv[2], sys.argv[3:])
        return
    parser = argparse.ArgumentParser(prog="python -m bench.data_scale", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100,000 rows instead of 1,000,000")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--samples", type=int, help="timed requests per page (20 quick, 40)")
    parser.add_argument("--no-explain", action="store_true", help="skip the query plans")
    options = parser.parse_args()
    common.raise_on_termination_signals()
    backends = [name.strip() for name in options.backends.split(",") if name.strip()]
    common.print_json(
        run_data_scale(
            quick=options.quick,
            backends=backends,
            samples=options.samples,
            explain=not options.no_explain,
        )
    )


if __name__ == "__main__":
    main()
