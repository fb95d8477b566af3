"""Delivery speed (design.md, "Performance is a feature"): Ulak's worker against the loopback limit.

    python -m bench.delivery [--quick]

Prints one JSON object:

- ``loopback_limit``: a bare aiohttp client (uvloop, keep-alive, 64 requests at a time) POSTing
  the same 8 KB body to the same receiver (``bench.receiver``, its own process): requests/s.
- ``throughput``: a backlog of N due events drained by ``ulak worker`` processes, measured
  from the first to the last delivery at the receiver: events/s and the ratio to the
  loopback limit, on SQLite (one worker) and on PostgreSQL (1 and 2 workers; a throw-away
  server with default durability). Also the CPU each worker used per event.
- ``latency``: publish (commit) to first attempt (arrival at the receiver) with events
  published at half the PostgreSQL throughput, in small transactions, as an OMS does: p50/p99.
- ``isolation``: ten targets, one of which never answers (attempts wait for the timeout): the
  other nine's throughput with it, as a fraction of their throughput without it.
- ``memory``: the worker's resident memory (peak, VmHWM) while draining a backlog of one
  million due events on PostgreSQL (100,000 with --quick).

Goals: throughput >= 0.6x the loopback limit on PostgreSQL and >= 0.5x on SQLite; latency
p50 <= 10 ms and p99 <= 50 ms; isolation >= 0.9; memory < 150 MB.

Each database part runs in child processes (Django reads its settings once per process).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
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
    summarize_latencies,
    wait_for_http,
)
from bench.payload import EVENT_TYPE, build_package_payload, encode_ulak_body

GOALS = {
    "postgresql_ratio": 0.6,
    "sqlite_ratio": 0.5,
    "latency_p50_ms": 10,
    "latency_p99_ms": 50,
    "isolation_ratio": 0.9,
    "memory_mb": 150,
}
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # both signatures are computed
BLAST_CONCURRENCY = 64


# --------------------------------------------------------------------------- small helpers


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (and its waited-for children), in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def process_memory_kib(pid: int, field: str = "VmHWM") -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def postgres_cpu_seconds(directory: str | None) -> float:
    """CPU of the benchmark's PostgreSQL server: its postmaster and the postmaster's children."""
    if not directory:
        return 0.0
    try:
        with open(Path(directory) / "data" / "postmaster.pid", encoding="ascii") as handle:
            postmaster = int(handle.readline())
    except (OSError, ValueError):
        return 0.0
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == postmaster or int(fields[1]) == postmaster:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def machine_busy_seconds() -> float:
    with open("/proc/stat", encoding="ascii") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def run_part(part: str, env: dict[str, str], *extra: str, timeout: float = 1800) -> Any:
    """Run one of this module's child parts (see ``run_child_part``)."""
    return run_json_part("bench.delivery", part, env, *extra, timeout=timeout)


# --------------------------------------------------------------------------- child parts


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ulak.server.settings")
    import django

    django.setup()


def part_migrate() -> dict[str, Any]:
    setup_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return {"ok": True}


def part_seed(urls: list[str], events_per_webhook: int, body_bytes: int, timeout: float) -> dict:
    """Webhooks to ``urls`` and ``events_per_webhook`` due events each (publish_many)."""
    setup_django()
    from django.db import connection

    from ulak.models import Webhook, WebhookEvent
    from ulak.publishing import publish_many

    WebhookEvent.objects.all().delete()
    Webhook.objects.all().delete()
    for url in urls:
        Webhook.objects.create(
            target_url=url,
            event_type=EVENT_TYPE,
            secret_key=SECRET,
            retry_countdown_config={"choice": "fixed", "kwargs": {"seconds": 60}},
            config={"timeout": timeout},
        )
    payload = build_package_payload(body_bytes)
    started = time.perf_counter()
    chunk = 2000
    remaining = events_per_webhook
    while remaining > 0:
        count = min(chunk, remaining)
        publish_many([{"event_type": EVENT_TYPE, "payload": payload}] * count)
        remaining -= count
    seconds = time.perf_counter() - started
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE ulak_webhookevent")
    return {"events": WebhookEvent.objects.count(), "seconds": round(seconds, 2)}


def raw_insert_sql(uuid_source: str) -> str:
    """Due events for one webhook (parameters: its id, the payload's JSON, then those of
    ``uuid_source``, which yields a uuid column ``u``), in plain PostgreSQL SQL.

    The rows ``ulak.publish`` writes: the body of contract §3 with each row's own uuid
    spliced in, every other column at its default.
    """
    return f"""
        INSERT INTO ulak_webhookevent (
            webhook_id, created_date, modified_date, uuid, request_payload, delivered,
            request_datetimes, retry_count, next_attempt_at, is_exhausted, round_attempt_count)
        SELECT %s, now(), now(), u, '{{"event":{{"type":"package.created","uuid":"'
               || replace(u::text, '-', '') || '"}},"payload":' || %s || '}}',
               false, '[]'::jsonb, 0, now(), false, 0
        FROM {uuid_source}
    """


def part_seed_million(url: str, count: int) -> dict[str, Any]:
    """One webhook and ``count`` due events inserted by one INSERT ... generate_series (PG)."""
    setup_django()
    from django.db import connection

    from ulak.models import Webhook, WebhookEvent

    WebhookEvent.objects.all().delete()
    Webhook.objects.all().delete()
    webhook = Webhook.objects.create(
        target_url=url,
        event_type=EVENT_TYPE,
        secret_key=SECRET,
        retry_countdown_config={"choice": "fixed", "kwargs": {"seconds": 60}},
    )
    payload = json.dumps(build_package_payload(2048), ensure_ascii=False, separators=(",", ":"))
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            raw_insert_sql("(SELECT gen_random_uuid() AS u FROM generate_series(1, %s)) AS made"),
            [webhook.id, payload, count],
        )
        cursor.execute("VACUUM ANALYZE ulak_webhookevent")
    return {"events": count, "seconds": round(time.perf_counter() - started, 1)}


def part_publish(rate: float, seconds: float, batch_interval: float) -> dict[str, Any]:
    """Publish at ``rate`` events/s in small transactions; print (uuid hex, commit time) pairs.

    The rows are those ``ulak.publish`` writes (same columns, same body, and the NOTIFY in the
    same transaction), inserted with plain psycopg: this measures the worker's pick-up, and a
    publisher in Python/Django would otherwise take the CPU the worker needs on this machine.
    """
    import uuid

    import psycopg

    setup_django()
    from django.db import connection

    from ulak.models import Webhook

    webhook_id = Webhook.objects.values_list("id", flat=True).get()
    params = connection.get_connection_params()
    for key in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(key, None)
    payload = json.dumps(build_package_payload(), ensure_ascii=False, separators=(",", ":"))
    per_batch = max(1, round(rate * batch_interval))
    commits: list[tuple[str, float]] = []
    insert = raw_insert_sql("unnest(%s::uuid[]) AS u")
    with psycopg.connect(**params) as database:
        started = time.monotonic()
        next_at = started
        while time.monotonic() - started < seconds:
            uuids = [uuid.uuid4() for _ in range(per_batch)]
            with database.transaction():
                database.execute(insert, [webhook_id, payload, uuids], prepare=True)
                database.execute("SELECT pg_notify('ulak_events', '')")
            committed = time.time()
            commits.extend((value.hex, committed) for value in uuids)
            next_at += batch_interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        elapsed = time.monotonic() - started
    return {"commits": commits, "rate": round(len(commits) / elapsed, 1), "per_batch": per_batch}


def part_seed_backlog(backlog_url: str, fresh_url: str, count: int) -> dict[str, Any]:
    """Two webhooks told apart by a routing attribute; ``count`` due events for the first."""
    setup_django()
    from django.db import connection

    from ulak.models import Webhook, WebhookEvent
    from ulak.publishing import publish_many

    WebhookEvent.objects.all().delete()
    Webhook.objects.all().delete()
    for lane, url in (("backlog", backlog_url), ("fresh", fresh_url)):
        Webhook.objects.create(
            target_url=url,
            event_type=EVENT_TYPE,
            secret_key=SECRET,
            retry_countdown_config={"choice": "fixed", "kwargs": {"seconds": 60}},
            config={"timeout": 10, "lane": lane},
        )
    payload = build_package_payload(8 * 1024)
    started = time.perf_counter()
    for start in range(0, count, 2000):
        batch = min(2000, count - start)
        publish_many(
            [{"event_type": EVENT_TYPE, "payload": payload, "config_filter": {"lane": "backlog"}}]
            * batch
        )
    seconds = time.perf_counter() - started
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE ulak_webhookevent")
    return {"events": count, "seconds": round(seconds, 2)}


def part_publish_fresh(count: int, interval: float) -> dict[str, Any]:
    """Publish ``count`` events, one per transaction, to the "fresh" webhook only; print
    (uuid hex, commit time) pairs."""
    setup_django()
    from django.db import transaction

    from ulak.publishing import publish

    payload = build_package_payload(2048)
    commits: list[tuple[str, float]] = []
    for _ in range(count):
        with transaction.atomic():
            events = publish(EVENT_TYPE, payload, config_filter={"lane": "fresh"})
        committed = time.time()
        commits.extend((event.uuid.hex, committed) for event in events)
        time.sleep(interval)
    return {"commits": commits}


async def blast(url: str, seconds: float, warmup: float, concurrency: int) -> dict[str, Any]:
    """The loopback limit: a bare keep-alive aiohttp client, ``concurrency`` requests at a time."""
    import aiohttp

    from ulak.signing import Signer

    body = encode_ulak_body(build_package_payload())
    headers = {"Content-Type": "application/json", "X-Whisperer-Event": EVENT_TYPE}
    headers.update(
        Signer(SECRET).headers(body, "5f0c2a9e8b7d4c3a9e1f2b3c4d5e6f70", int(time.time()))
    )
    counts = {"ok": 0, "other": 0}
    state = {"measuring": False, "stop": False}

    async def client(session: aiohttp.ClientSession) -> None:
        while not state["stop"]:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if state["measuring"]:
                    counts["ok" if response.status == 200 else "other"] += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [asyncio.create_task(client(session)) for _ in range(concurrency)]
        await asyncio.sleep(warmup)
        state["measuring"] = True
        started = time.perf_counter()
        cpu_started = time.process_time()
        await asyncio.sleep(seconds)
        state["measuring"] = False
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        state["stop"] = True
        await asyncio.gather(*tasks)
    return {
        "requests_per_second": round(counts["ok"] / elapsed, 1),
        "client_cpu_us_per_request": round(cpu / max(1, counts["ok"]) * 1e6, 1),
        "requests": counts["ok"],
        "non_200": counts["other"],
        "seconds": round(elapsed, 2),
        "concurrency": concurrency,
        "body_bytes": len(body),
    }


def part_blast(url: str, seconds: float) -> dict[str, Any]:
    import uvloop

    return uvloop.run(blast(url, seconds, warmup=1.0, concurrency=BLAST_CONCURRENCY))


def part_recording_receiver(ports: list[int], hang_ports: list[int]) -> None:
    """A receiver on several ports that records each event's arrival; some ports never answer."""
    import uvloop
    from aiohttp import web

    from bench.receiver import serve as serve_receiver

    arrivals: dict[str, float] = {}
    per_port: dict[int, dict[str, Any]] = {}

    def reset() -> None:
        arrivals.clear()
        per_port.clear()
        for port in ports:
            per_port[port] = {"count": 0, "first_at": None, "last_at": None}

    reset()

    async def receive(request: web.Request) -> web.Response:
        now = time.time()
        await request.read()
        port = request.transport.get_extra_info("sockname")[1]
        if port in hang_ports:
            await asyncio.sleep(3600)
        arrivals.setdefault(request.headers.get("webhook-id", ""), now)
        counters = per_port[port]
        counters["count"] += 1
        if counters["first_at"] is None:
            counters["first_at"] = now
        counters["last_at"] = now
        return web.Response(text="ok")

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({str(port): value for port, value in per_port.items()})

    async def arrivals_view(request: web.Request) -> web.Response:
        return web.json_response(arrivals)

    async def reset_view(request: web.Request) -> web.Response:
        reset()
        return web.json_response({})

    application = web.Application(client_max_size=32 * 1024 * 1024)
    application.router.add_get("/stats", stats)
    application.router.add_get("/arrivals", arrivals_view)
    application.router.add_get("/reset", reset_view)
    application.router.add_post("/{tail:.*}", receive)
    uvloop.run(serve_receiver(application, "127.0.0.1", ports))


# --------------------------------------------------------------------------- orchestration


class Bench:
    def __init__(self, options: argparse.Namespace, processes: ProcessSet, logs: Path):
        self.options = options
        self.processes = processes
        self.logs = logs
        self.quick = options.quick
        self.base_env = dict(
            os.environ,
            DJANGO_SETTINGS_MODULE="ulak.server.settings",
            ULAK_ALLOWED_NETWORKS="127.0.0.0/8",
            ULAK_LOG_LEVEL="WARNING",
            ULAK_SECRET_KEY="bench-secret-key-" + "x" * 40,
            PYTHONPATH=str(REPO_ROOT),
        )
        self.base_env.pop("DATABASE_URL", None)
        self.counter = 0
        self.postgres_directory: str | None = None

    def start(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen:
        self.counter += 1
        return self.processes.start(
            f"{name}-{self.counter}",
            command,
            env=env,
            log_path=self.logs / f"{name}-{self.counter}.log",
        )

    def start_worker(self, env: dict[str, str]) -> subprocess.Popen:
        return self.start("worker", [sys.executable, "-m", "django", "worker"], env)

    def stop(self, process: subprocess.Popen) -> None:
        for name, running in list(self.processes.processes.items()):
            if running is process:
                self.processes.stop(name)

    # -- receivers

    def start_receiver(self) -> str:
        port = free_port()
        process = self.start(
            "receiver", [sys.executable, "-m", "bench.receiver", "--port", str(port)], self.base_env
        )
        wait_for_http(f"http://127.0.0.1:{port}/stats", process=process)
        self.receiver_pid = process.pid
        return f"http://127.0.0.1:{port}"

    def start_recording_receiver(self, ports: list[int], hang_ports: list[int]) -> subprocess.Popen:
        process = self.start(
            "recording-receiver",
            [
                sys.executable,
                "-m",
                "bench.delivery",
                "--part",
                "recording-receiver",
                "--ports",
                ",".join(map(str, ports)),
                "--hang-ports",
                ",".join(map(str, hang_ports)),
            ],
            self.base_env,
        )
        wait_for_http(f"http://127.0.0.1:{ports[0]}/stats", process=process)
        return process

    # -- measurements

    def loopback_limit(self, receiver: str, runs: int, seconds: float) -> dict[str, Any]:
        """The bare client against the receiver: the median of ``runs`` runs."""
        results = []
        for _ in range(runs):
            before = process_cpu_seconds(self.receiver_pid)
            run = run_part(
                "blast", self.base_env, "--url", receiver + "/hook", "--seconds", str(seconds)
            )
            # The receiver's CPU includes the 1 s warm-up: an upper bound.
            spent = process_cpu_seconds(self.receiver_pid) - before
            run["receiver_cpu_us_per_request_upper_bound"] = round(
                spent / max(1, run["requests"]) / (1 + 1 / seconds) * 1e6, 1
            )
            results.append(run)
        results.sort(key=lambda run: run["requests_per_second"])
        median = dict(results[len(results) // 2])
        median["runs"] = [run["requests_per_second"] for run in results]
        return median

    def cpu_snapshot(self, workers: list[subprocess.Popen]) -> dict[str, float]:
        """CPU seconds so far: the workers, the receiver, PostgreSQL, and the whole machine."""
        return {
            "worker": sum(process_cpu_seconds(p.pid) for p in workers),
            "receiver": process_cpu_seconds(self.receiver_pid),
            "postgresql": postgres_cpu_seconds(self.postgres_directory),
            "machine": machine_busy_seconds(),
        }

    def drain(
        self, env: dict[str, str], receiver: str, events: int, workers: int
    ) -> dict[str, Any]:
        """Start ``workers`` on a seeded backlog; first-to-last delivery rate at the receiver.

        CPU is counted between the first and the last delivery (start-up excluded).
        """
        get_json(receiver + "/reset")
        processes = [self.start_worker(env) for _ in range(workers)]
        deadline = time.monotonic() + 600
        first_cpu = None
        first_count = 0
        while True:
            stats = get_json(receiver + "/stats")
            if first_cpu is None and stats["count"] > 0:
                first_cpu, first_count = self.cpu_snapshot(processes), stats["count"]
            if stats["count"] >= events:
                break
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise RuntimeError(f"drain stalled at {stats['count']} of {events}")
            time.sleep(0.02)
        last_cpu = self.cpu_snapshot(processes)
        memory = [process_memory_kib(p.pid) for p in processes]
        for process in processes:
            self.stop(process)
        seconds = stats["last_at"] - stats["first_at"]
        counted = max(1, stats["count"] - first_count)
        per_event = {
            f"{name}_cpu_us_per_event": round((last_cpu[name] - first_cpu[name]) / counted * 1e6, 1)
            for name in last_cpu
        }
        ours = sum(last_cpu[n] - first_cpu[n] for n in ("worker", "receiver", "postgresql"))
        machine = last_cpu["machine"] - first_cpu["machine"]
        return {
            "workers": workers,
            "events": stats["count"],
            "seconds": round(seconds, 3),
            "events_per_second": round((stats["count"] - 1) / seconds, 1),
            **per_event,
            # CPU of processes that are not part of this measurement (other work on the
            # machine): a high share means every figure here is pessimistic.
            "foreign_cpu_share": round(max(0.0, 1 - ours / machine), 2) if machine else None,
            "worker_peak_rss_mb": round(max(memory) / 1024, 1),
        }

    def database_env(self, database_url: str | None) -> dict[str, str]:
        env = dict(self.base_env, ULAK_HOME=tempfile.mkdtemp(prefix="ulak-bench-"))
        if database_url:
            env["DATABASE_URL"] = database_url
        return env

    def seed(
        self, env: dict[str, str], urls: list[str], per_webhook: int, timeout: float = 10.0
    ) -> None:
        run_part(
            "seed",
            env,
            "--urls",
            ",".join(urls),
            "--events",
            str(per_webhook),
            "--timeout",
            str(timeout),
        )

    def throughput(self, env: dict[str, str], receiver: str, workers: int) -> dict[str, Any]:
        """Drain a backlog, with the loopback limit measured just before (the machine's load
        changes over a run; each ratio compares figures taken a few seconds apart)."""
        events = self.options.events
        self.seed(env, [receiver + "/hook"], events)
        limit = self.loopback_limit(receiver, 1, 3.0 if self.quick else 5.0)
        run = self.drain(env, receiver, events, workers)
        run["loopback_limit_just_before"] = limit["requests_per_second"]
        run["ratio"] = round(run["events_per_second"] / limit["requests_per_second"], 3)
        return run

    def latency(self, env: dict[str, str], rate: float, workers: int) -> dict[str, Any]:
        """Publish-to-first-attempt at ``rate`` with ``workers`` workers (the best set-up)."""
        port = free_port()
        receiver = self.start_recording_receiver([port], [])
        url = f"http://127.0.0.1:{port}"
        self.seed(env, [url + "/hook"], 0)
        started = [self.start_worker(env) for _ in range(workers)]
        time.sleep(2.0)  # started and idle
        seconds = 4.0 if self.quick else 10.0
        # Two publishing processes (an OMS has many), each at half the rate.
        command = [
            sys.executable,
            "-m",
            "bench.delivery",
            "--part",
            "publish",
            "--rate",
            str(rate / 2),
            "--seconds",
            str(seconds),
            "--interval",
            "0.005",
        ]
        publishers = [
            subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        answers = [
            json.loads(p.communicate(timeout=600)[0].strip().splitlines()[-1]) for p in publishers
        ]
        published = {
            "commits": [commit for answer in answers for commit in answer["commits"]],
            "rate": sum(answer["rate"] for answer in answers),
            "per_batch": answers[0]["per_batch"],
        }
        time.sleep(1.0)
        arrivals = get_json(url + "/arrivals")
        for worker in started:
            self.stop(worker)
        self.stop(receiver)
        delays = [
            arrivals[uuid] - committed
            for uuid, committed in published["commits"]
            if uuid in arrivals
        ]
        missing = len(published["commits"]) - len(delays)
        summary = summarize_latencies(delays)
        summary.update(
            {
                "published_per_second": published["rate"],
                "events_per_transaction": published["per_batch"],
                "not_attempted_within_1_s": missing,
                "workers": workers,
            }
        )
        return summary

    def isolation(self, env: dict[str, str]) -> dict[str, Any]:
        ports = [free_port() for _ in range(10)]
        hang = ports[0]
        receiver = self.start_recording_receiver(ports, [hang])
        healthy_urls = [f"http://127.0.0.1:{port}/hook" for port in ports[1:]]
        per_webhook = 400 if self.quick else 2000
        results = {}
        for label, urls in (
            ("without_hanging_target", healthy_urls),
            ("with_hanging_target", [f"http://127.0.0.1:{hang}/hook", *healthy_urls]),
        ):
            get_json(f"http://127.0.0.1:{ports[0]}/reset")
            self.seed(env, urls, per_webhook)
            worker = self.start_worker(env)
            deadline = time.monotonic() + 300
            while True:
                stats = get_json(f"http://127.0.0.1:{ports[0]}/stats")
                healthy = [stats[str(port)] for port in ports[1:]]
                if sum(s["count"] for s in healthy) >= per_webhook * 9:
                    break
                if time.monotonic() > deadline or worker.poll() is not None:
                    raise RuntimeError("isolation run stalled")
                time.sleep(0.05)
            self.stop(worker)
            first = min(s["first_at"] for s in healthy)
            last = max(s["last_at"] for s in healthy)
            results[label] = round((per_webhook * 9 - 1) / (last - first), 1)
        fresh = self.fresh_beside_backlog(env, ports[0], ports[1], ports[2])
        self.stop(receiver)
        return {
            "targets": 10,
            "events_per_healthy_target": per_webhook,
            "healthy_events_per_second_without": results["without_hanging_target"],
            "healthy_events_per_second_with": results["with_hanging_target"],
            "ratio": round(results["with_hanging_target"] / results["without_hanging_target"], 3),
            "fresh_event_latency_ms": fresh["p50_ms"],
            "fresh_event_latency": fresh,
        }

    def fresh_beside_backlog(
        self, env: dict[str, str], control_port: int, backlog_port: int, fresh_port: int
    ) -> dict[str, Any]:
        """One target drains a big backlog while another gets fresh events: their latency
        (commit to arrival), published once the backlog's delivery is under way."""
        backlog = 10_000 if self.quick else 100_000
        control = f"http://127.0.0.1:{control_port}"
        get_json(control + "/reset")
        run_part(
            "seed-backlog",
            env,
            "--url",
            f"http://127.0.0.1:{backlog_port}/hook",
            "--urls",
            f"http://127.0.0.1:{fresh_port}/hook",
            "--events",
            str(backlog),
        )
        worker = self.start_worker(env)
        deadline = time.monotonic() + 120
        while get_json(control + "/stats")[str(backlog_port)]["count"] < min(1000, backlog // 10):
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError("backlog run stalled")
            time.sleep(0.05)
        published = run_part("publish-fresh", env, "--events", "20", "--interval", "0.1")
        wanted = {uuid for uuid, _ in published["commits"]}
        deadline = time.monotonic() + 30
        while True:
            arrivals = get_json(control + "/arrivals")
            if wanted <= arrivals.keys() or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        backlog_delivered = get_json(control + "/stats")[str(backlog_port)]["count"]
        self.stop(worker)
        delays = [arrivals[uuid] - at for uuid, at in published["commits"] if uuid in arrivals]
        summary = summarize_latencies(delays) if delays else {"samples": 0, "p50_ms": None}
        summary.update(
            {
                "backlog_events": backlog,
                "backlog_delivered_at_the_end": backlog_delivered,
                "not_delivered_within_30_s": len(wanted) - len(delays),
            }
        )
        return summary

    def memory(self, env: dict[str, str], receiver: str) -> dict[str, Any]:
        count = 100_000 if self.quick else 1_000_000
        seeded = run_part("seed-million", env, "--url", receiver + "/hook", "--events", str(count))
        get_json(receiver + "/reset")
        worker = self.start_worker(env)
        seconds = 8.0 if self.quick else 20.0
        samples = []
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            time.sleep(0.5)
            samples.append(process_memory_kib(worker.pid, "VmRSS"))
        peak = process_memory_kib(worker.pid, "VmHWM")
        delivered = get_json(receiver + "/stats")["count"]
        self.stop(worker)
        return {
            "backlog_events": count,
            "seed_seconds": seeded["seconds"],
            "body_bytes": len(encode_ulak_body(build_package_payload(2048))),
            "delivered_while_sampled": delivered,
            "rss_mb_last": round(samples[-1] / 1024, 1),
            "rss_mb_peak": round(peak / 1024, 1),
            "sampled_seconds": seconds,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller backlogs, shorter runs")
    parser.add_argument("--events", type=int, default=None, help="backlog size for throughput")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument(
        "--latency-rate", type=float, default=None, help="events/s for the latency part"
    )
    parser.add_argument(
        "--only", default="", help="comma-separated: sqlite,postgres,latency,isolation,memory"
    )
    # Child parts.
    parser.add_argument("--part", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--url", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--urls", default="", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=10.0, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=1000.0, help=argparse.SUPPRESS)
    parser.add_argument("--interval", type=float, default=0.005, help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=10.0, help=argparse.SUPPRESS)
    parser.add_argument("--ports", default="", help=argparse.SUPPRESS)
    parser.add_argument("--hang-ports", default="", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)

    if options.part:
        return run_child_part(options)

    raise_on_termination_signals()
    options.events = options.events or (3000 if options.quick else 20000)
    only = set(filter(None, options.only.split(","))) or {
        "sqlite",
        "postgres",
        "latency",
        "isolation",
        "memory",
    }
    if "latency" in only:
        only.add("postgres")  # the latency is measured at half the best PostgreSQL throughput
    if options.skip_postgres:
        only -= {"postgres", "latency", "isolation", "memory"}
    logs = Path(tempfile.mkdtemp(prefix="ulak-bench-delivery-"))
    result: dict[str, Any] = {
        "bench": "delivery",
        "quick": options.quick,
        "goals": GOALS,
        "logs": str(logs),
    }
    with ProcessSet() as processes:
        bench = Bench(options, processes, logs)
        receiver = bench.start_receiver()
        log("loopback limit (bare aiohttp client, concurrency %d)", BLAST_CONCURRENCY)
        limit = bench.loopback_limit(
            receiver, 1 if options.quick else 3, 3.0 if options.quick else 10.0
        )
        result["loopback_limit"] = limit
        throughput: dict[str, Any] = {}
        result["throughput"] = throughput
        if "sqlite" in only:
            env = bench.database_env(None)
            run_part("migrate", env)
            log("SQLite, one worker, %d events", options.events)
            throughput["sqlite_1_worker"] = bench.throughput(env, receiver, 1)
        if only & {"postgres", "latency", "isolation", "memory"}:
            with postgres_server(durable=True) as server:
                env = bench.database_env(server.url)
                bench.postgres_directory = server.directory
                run_part("migrate", env)
                result["machine"] = describe_machine(server.url)
                best = None
                if "postgres" in only:
                    for workers in (1, 2):
                        log("PostgreSQL, %d worker(s), %d events", workers, options.events)
                        run = bench.throughput(env, receiver, workers)
                        throughput[f"postgresql_{workers}_workers"] = run
                        if best is None or run["events_per_second"] > best["events_per_second"]:
                            best = run
                    throughput["postgresql_best_ratio"] = best["ratio"]
                if "latency" in only:
                    rate = options.latency_rate or best["events_per_second"] / 2
                    log("latency at %.0f events/s, %d worker(s)", rate, best["workers"])
                    result["latency"] = bench.latency(env, rate, best["workers"])
                if "isolation" in only:
                    log("isolation: ten targets, one hanging")
                    result["isolation"] = bench.isolation(env)
                if "memory" in only:
                    log("memory with a big backlog")
                    result["memory"] = bench.memory(env, receiver)
        if "machine" not in result:
            result["machine"] = describe_machine(None)
    # The same throughputs against the session's loopback limit (the median of the runs at
    # the start): with other work on the machine, the limit measured just before a run moves.
    for run in throughput.values():
        if isinstance(run, dict):
            run["ratio_to_session_limit"] = round(
                run["events_per_second"] / limit["requests_per_second"], 3
            )
    print_json(result)
    return 0


def run_child_part(options: argparse.Namespace) -> int:
    part = options.part
    if part == "recording-receiver":
        part_recording_receiver(
            [int(p) for p in options.ports.split(",") if p],
            [int(p) for p in options.hang_ports.split(",") if p],
        )
        return 0
    if part == "migrate":
        answer = part_migrate()
    elif part == "seed":
        answer = part_seed(options.urls.split(","), options.events or 0, 8 * 1024, options.timeout)
    elif part == "seed-million":
        answer = part_seed_million(options.url, options.events)
    elif part == "publish":
        answer = part_publish(options.rate, options.seconds, options.interval)
    elif part == "blast":
        answer = part_blast(options.url, options.seconds)
    elif part == "seed-backlog":
        answer = part_seed_backlog(options.url, options.urls, options.events or 0)
    elif part == "publish-fresh":
        answer = part_publish_fresh(options.events or 0, options.interval)
    else:
        raise SystemExit(f"unknown part {part}")
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
