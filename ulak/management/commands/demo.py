"""``ulak demo [--short] [--home DIR]``: Ulak at work in one terminal, on its own data.

What it does, step by step:

1. ``ulak.cli`` calls ``prepare_environment`` before Django starts, so the demo runs on its
   own data directory (a fresh temporary one, or ``--home``), on SQLite, never on the
   user's ``./.ulak`` or ``DATABASE_URL``; loopback targets are allowed
   (``ULAK_ALLOWED_NETWORKS=127.0.0.0/8``) for this process and the worker it starts.
2. Migrations, a superuser ``demo`` and a token for it.
3. A delivery worker as a child process (``python -m ulak.cli worker``, polling every 0.1 s).
4. Four aiohttp receivers on 127.0.0.1 in a background thread: one healthy, one failing with
   500s, one slow, one flaky (503 with ``Retry-After`` on the first try of each event).
5. One webhook per receiver, registered through the API, each with its own retry policy.
6. OMS ``package.status.shipped`` events published through the API in a few waves.
7. A live display of attempts, deliveries, failures and retries per receiver (redrawn in
   place on a terminal, a summary line now and then otherwise) until every event is
   delivered or has used up its automatic attempts.
8. The undelivered list exactly as the API returns it, and the curl command that fetches it.

Everything it started (worker, receivers) is stopped on the way out, also on Ctrl-C or
SIGTERM; the worker also gets SIGTERM from the kernel should the demo itself be killed.

``ulak demo --listen PORT`` runs only a receiver that prints what it gets (used by the
quick start): it answers 200, or the status ``<code>`` for paths ``/status/<code>``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import hmac
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError

DEMO_HOME_VARIABLE = "ULAK_DEMO_HOME"
LOOPBACK_NETWORK = "127.0.0.0/8"
DEMO_USERNAME = "demo"
UNDELIVERED_PATH = "/api/v1/oms/settings/undelivered_webhooks/"
WEBHOOKS_PATH = "/api/v1/oms/settings/webhooks/"
PUBLISH_PATH = "/api/v1/oms/events/"
SERVE_URL = "http://127.0.0.1:8000"
# Environment the demo must not inherit: it would point it at someone's real data.
FOREIGN_VARIABLES = ("DATABASE_URL", "ULAK_SQLITE_PATH", "ULAK_SECRET_KEY", "ULAK_SECRET_KEYS")


def prepare_environment(argv: Sequence[str]) -> None:
    """Point this process at the demo's own data directory; ``ulak.cli`` calls it first.

    It runs before Django reads its settings, which create the data directory and its
    secret key: so the user's ``./.ulak`` is never touched.
    """
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--home")
    parser.add_argument("--listen", type=int)
    known, _ = parser.parse_known_args(list(argv))
    if known.listen is not None:
        # The receiver needs no database; Django still wants a home for its secret key.
        home = Path(tempfile.mkdtemp(prefix="ulak-listen-"))
    elif known.home:
        home = Path(known.home).expanduser().resolve()
        if (
            home == Path(".ulak").resolve()
            or home == Path(os.environ.get("ULAK_HOME", ".ulak")).resolve()
        ):
            sys.exit(f"ulak demo: {home} is your Ulak data directory; give the demo another one")
        if (home / "ulak.sqlite3").exists():
            sys.exit(f"ulak demo: {home} already holds a database; give an empty or new directory")
        home.mkdir(parents=True, exist_ok=True)
    else:
        home = Path(tempfile.mkdtemp(prefix="ulak-demo-"))
    for name in FOREIGN_VARIABLES:
        os.environ.pop(name, None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "ulak.server.settings"
    os.environ["ULAK_HOME"] = str(home)
    os.environ[DEMO_HOME_VARIABLE] = str(home)
    os.environ["ULAK_ALLOWED_NETWORKS"] = LOOPBACK_NETWORK
    os.environ.setdefault("ULAK_LOG_LEVEL", "WARNING")


# --- the plan ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceiverPlan:
    """One receiver and the webhook registered for it."""

    name: str
    behaviour: str  # healthy, failing, slow, flaky
    retry_countdown_config: dict[str, Any]
    config: dict[str, Any]
    policy: str  # the retry policy in words, for the display
    secret: bool = False


@dataclass(frozen=True)
class DemoPlan:
    packages: int
    waves: int
    wave_pause: float
    slow_seconds: float
    deadline: float
    receivers: tuple[ReceiverPlan, ...]


def make_plan(short: bool) -> DemoPlan:
    failing_attempts = 3 if short else 5
    return DemoPlan(
        packages=4 if short else 12,
        waves=2 if short else 4,
        wave_pause=0.5 if short else 2.0,
        slow_seconds=0.6 if short else 1.5,
        deadline=20.0 if short else 120.0,
        receivers=(
            ReceiverPlan(
                "healthy",
                "healthy",
                {"choice": "fixed", "kwargs": {"seconds": 2}},
                {},
                "fixed: 2 s",
                secret=True,
            ),
            ReceiverPlan(
                "failing",
                "failing",
                {"choice": "exponential", "kwargs": {"base": 2, "factor": 1, "limit": 4}},
                {"max_retry_count": failing_attempts},
                f"exponential: 2^k s, up to 4 s; {failing_attempts} tries",
            ),
            ReceiverPlan(
                "slow",
                "slow",
                {"choice": "linear", "kwargs": {"base": 1, "limit": 5}},
                {"timeout": 5},
                "linear: 1 s × n, up to 5 s",
            ),
            ReceiverPlan(
                "flaky",
                "flaky",
                {"choice": "random", "kwargs": {"min_value": 1, "max_value": 2}},
                {},
                "random: 1–2 s",
            ),
        ),
    )


# --- the receivers -------------------------------------------------------------------------


class DemoReceivers:
    """The demo's targets: aiohttp servers on 127.0.0.1, all in one background thread."""

    def __init__(self, plans: Sequence[ReceiverPlan], slow_seconds: float):
        self.plans = list(plans)
        self.slow_seconds = slow_seconds
        self.ports: dict[str, int] = {}
        self.secrets: dict[str, str] = {}
        self.requests: collections.Counter[str] = collections.Counter()
        self.signatures_ok: collections.Counter[str] = collections.Counter()
        self._seen: collections.Counter[tuple[str, str]] = collections.Counter()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name="demo-receivers", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise CommandError(f"the demo's receivers did not start: {self._error}")

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:  # the loop closed meanwhile
                pass
        if self._thread is not None:
            self._thread.join(10)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}/{name}"

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as error:  # noqa: BLE001 - reported to start()
            self._error = error
            self._ready.set()
        finally:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    async def _main(self) -> None:
        from aiohttp import web

        self._stop = asyncio.Event()
        runners = []
        try:
            for plan in self.plans:
                app = web.Application()
                app.router.add_route("*", "/{tail:.*}", self._handler(plan))
                runner = web.AppRunner(
                    app, access_log=None, handle_signals=False, shutdown_timeout=0.5
                )
                await runner.setup()
                runners.append(runner)
                site = web.TCPSite(runner, "127.0.0.1", 0)
                await site.start()
                self.ports[plan.name] = site._server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()
        finally:
            for runner in runners:
                await runner.cleanup()

    def _handler(self, plan: ReceiverPlan) -> Callable:
        from aiohttp import web

        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            event_uuid = request.headers.get("webhook-id") or ""
            if not event_uuid:
                try:
                    event_uuid = json.loads(body)["event"]["uuid"]
                except (ValueError, KeyError, TypeError):
                    pass
            with self._lock:
                self.requests[plan.name] += 1
                self._seen[plan.name, event_uuid] += 1
                seen = self._seen[plan.name, event_uuid]
                secret = self.secrets.get(plan.name)
                if secret and whisperer_signature_is_valid(
                    secret, body, request.headers.get("X-Whisperer-Signature", "")
                ):
                    self.signatures_ok[plan.name] += 1
            if plan.behaviour == "failing":
                return web.Response(status=500, text="500 Internal Server Error")
            if plan.behaviour == "slow":
                await asyncio.sleep(self.slow_seconds)
                return web.Response(text="teşekkürler, yavaş ama geldi")
            if plan.behaviour == "flaky" and seen == 1:
                return web.Response(
                    status=503, text="Service Unavailable", headers={"Retry-After": "1"}
                )
            return web.Response(text="teşekkürler")

        return handle


def whisperer_signature_is_valid(secret: str, body: bytes, header: str) -> bool:
    """What a receiver checks: ``X-Whisperer-Signature: sha256=<hex HMAC-SHA256>`` of the body."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


# --- reading the progress ------------------------------------------------------------------


@dataclass
class ReceiverStats:
    events: int = 0
    attempted: int = 0  # events attempted at least once
    attempts: int = 0
    delivered: int = 0
    waiting: int = 0  # failed at least once and scheduled again
    exhausted: int = 0
    scheduled: int = 0  # anything still scheduled (not yet attempted, or waiting)

    @property
    def failed(self) -> int:
        # Once delivered an event gets no more automatic attempts, so every other attempt failed.
        return self.attempts - self.delivered

    @property
    def retries(self) -> int:
        """Attempts after each event's first one."""
        return self.attempts - self.attempted


def read_stats(webhook_ids: dict[str, int]) -> dict[str, ReceiverStats]:
    """Per receiver, from the events table (what the worker recorded), in one query."""
    from django.db.models import Count, Q, Sum

    from ulak.models import WebhookEvent

    rows = (
        WebhookEvent.objects.filter(webhook_id__in=webhook_ids.values())
        .order_by()
        .values("webhook_id")
        .annotate(
            events=Count("id"),
            attempted=Count("id", filter=Q(retry_count__gt=0)),
            attempts=Sum("retry_count"),
            delivered=Count("id", filter=Q(delivered=True)),
            waiting=Count("id", filter=Q(next_attempt_at__isnull=False, retry_count__gt=0)),
            exhausted=Count("id", filter=Q(is_exhausted=True)),
            scheduled=Count("id", filter=Q(next_attempt_at__isnull=False)),
        )
    )
    by_webhook = {row["webhook_id"]: row for row in rows}
    stats = {}
    for name, webhook_id in webhook_ids.items():
        row = by_webhook.get(webhook_id)
        stats[name] = (
            ReceiverStats(
                events=row["events"],
                attempted=row["attempted"],
                attempts=row["attempts"] or 0,
                delivered=row["delivered"],
                waiting=row["waiting"],
                exhausted=row["exhausted"],
                scheduled=row["scheduled"],
            )
            if row
            else ReceiverStats()
        )
    return stats


# --- showing it ----------------------------------------------------------------------------

COLUMNS = (
    ("receiver", 9),
    ("retry policy", 38),
    ("events", 6),
    ("attempts", 8),
    ("delivered", 9),
    ("failed", 6),
    ("retries", 7),
    ("waiting", 7),
    ("exhausted", 9),
)


def table_lines(plans: Sequence[ReceiverPlan], stats: dict[str, ReceiverStats]) -> list[str]:
    header = "  ".join(
        name.ljust(width) if index < 2 else name.rjust(width)
        for index, (name, width) in enumerate(COLUMNS)
    )
    lines = [header]
    for plan in plans:
        row = stats.get(plan.name, ReceiverStats())
        values = (
            plan.name,
            plan.policy,
            row.events,
            row.attempts,
            row.delivered,
            row.failed,
            row.retries,
            row.waiting,
            row.exhausted,
        )
        lines.append(
            "  ".join(
                str(value).ljust(width) if index < 2 else str(value).rjust(width)
                for index, (value, (_, width)) in enumerate(zip(values, COLUMNS, strict=True))
            )
        )
    return lines


def summary_line(elapsed: float, stats: dict[str, ReceiverStats]) -> str:
    parts = []
    for name, row in stats.items():
        text = f"{name} {row.delivered}/{row.events} delivered, {row.attempts} attempts"
        if row.failed:
            text += f", {row.failed} failed"
        if row.retries:
            text += f", {row.retries} retries"
        if row.exhausted:
            text += f", {row.exhausted} exhausted"
        parts.append(text)
    return f"[{elapsed:5.1f}s] " + " | ".join(parts)


class ProgressDisplay:
    """A table redrawn in place on a terminal; otherwise a summary line when numbers change."""

    def __init__(self, stream: TextIO, plans: Sequence[ReceiverPlan], interactive: bool):
        self.stream = stream
        self.plans = plans
        self.interactive = interactive
        self.drawn_lines = 0
        self.last_summary = ""
        self.last_print = 0.0

    def update(self, elapsed: float, stats: dict[str, ReceiverStats], status: str) -> None:
        if self.interactive:
            self._redraw([*table_lines(self.plans, stats), status])
            return
        summary = summary_line(elapsed, stats)
        # Plain output (a file, a pipe, CI): at most one line a second, and only on change.
        if summary[8:] != self.last_summary[8:] and time.monotonic() - self.last_print >= 1.0:
            self.stream.write(summary + "\n")
            self.stream.flush()
            self.last_summary = summary
            self.last_print = time.monotonic()

    def finish(self, stats: dict[str, ReceiverStats], status: str) -> None:
        lines = [*table_lines(self.plans, stats), status]
        if self.interactive:
            self._redraw(lines)
        else:
            self.stream.write("\n" + "\n".join(lines) + "\n")
        self.stream.flush()

    def _redraw(self, lines: list[str]) -> None:
        out = []
        if self.drawn_lines:
            out.append(f"\x1b[{self.drawn_lines}F")  # back to the first line drawn
        for line in lines:
            out.append("\x1b[2K" + line + "\n")  # clear the line, then write it
        self.stream.write("".join(out))
        self.stream.flush()
        self.drawn_lines = len(lines)


# --- the worker ----------------------------------------------------------------------------


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: SIGTERM the worker if the demo dies without cleaning up (SIGKILL)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    # Its own session: a Ctrl-C in the terminal reaches the demo, which stops the worker itself.
    os.setsid()


def start_worker(home: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        ULAK_POLL_INTERVAL="0.1",
        ULAK_HEARTBEAT_SECONDS="1",
        ULAK_DRAIN_SECONDS="2",
        ULAK_LOG_LEVEL="WARNING",
    )
    log = open(home / "worker.log", "ab")  # noqa: SIM115 - closed in stop_worker
    process = subprocess.Popen(
        [sys.executable, "-m", "ulak.cli", "worker"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        start_new_session=not sys.platform.startswith("linux"),
    )
    process.log_file = log  # type: ignore[attr-defined]
    return process


def stop_worker(process: subprocess.Popen) -> None:
    """SIGTERM (the worker drains: attempts in flight finish, the rest is released), then wait."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    log = getattr(process, "log_file", None)
    if log is not None:
        log.close()


# --- the demo ------------------------------------------------------------------------------


@dataclass
class Demo:
    home: Path
    plan: DemoPlan
    stdout: TextIO
    interactive: bool
    webhook_ids: dict[str, int] = field(default_factory=dict)
    token: str = ""

    def say(self, text: str = "") -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def run(self) -> int:
        from ulak.cli import migrate

        self.say(f"Ulak demo: data in {self.home} (SQLite), targets on 127.0.0.1")
        migrate()
        self.token = self.create_token()
        worker = receivers = None
        started = time.monotonic()
        try:
            # The worker first: it is forked before any thread exists in this process.
            worker = start_worker(self.home)
            self.say(f"Worker started (pid {worker.pid}); its log: {self.home / 'worker.log'}")
            receivers = DemoReceivers(self.plan.receivers, self.plan.slow_seconds)
            receivers.start()
            for plan in self.plan.receivers:
                self.say(f"Receiver {plan.name:<8} {receivers.url(plan.name)}")
            self.register_webhooks(receivers)
            self.say(
                f"Publishing {self.plan.packages} package.status.shipped events to "
                f"{len(self.webhook_ids)} webhooks, in {self.plan.waves} waves\n"
            )
            settled = self.publish_and_watch(worker, started)
            stats = read_stats(self.webhook_ids)
            self.say(
                f"Signatures checked by the healthy receiver: {receivers.signatures_ok['healthy']}"
                f" of {receivers.requests['healthy']} requests valid"
            )
            if not settled:
                self.say(f"Stopped waiting after {self.plan.deadline:.0f} s.")
        finally:
            # Cleaning up must not be cut short by a second Ctrl-C.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            if worker is not None:
                stop_worker(worker)
            if receivers is not None:
                receivers.stop()
        self.say(
            f"Worker stopped (exit status {worker.returncode}); receivers stopped "
            f"(ports {', '.join(str(p) for p in receivers.ports.values())} closed)"
        )
        totals = ReceiverStats()
        for row in stats.values():
            totals.attempts += row.attempts
            totals.delivered += row.delivered
        self.say(
            f"Totals: {totals.attempts} attempts, {totals.delivered} deliveries, "
            f"{totals.attempts - totals.delivered} failed attempts"
        )
        self.show_undelivered()
        return 0

    def create_token(self) -> str:
        from django.contrib.auth import get_user_model

        from ulak.models import ApiToken

        User = get_user_model()
        user, created = User.objects.get_or_create(
            username=DEMO_USERNAME, defaults={"is_superuser": True, "is_staff": True}
        )
        if created:
            user.set_unusable_password()
            user.save()
        return ApiToken.create_for(user)

    def api(self):
        from django.test import Client

        return Client(HTTP_AUTHORIZATION=f"Token {self.token}")

    def register_webhooks(self, receivers: DemoReceivers) -> None:
        from ulak.demo_payload import EVENT_TYPE

        client = self.api()
        for plan in self.plan.receivers:
            body = {
                "target_url": receivers.url(plan.name),
                "event_type": EVENT_TYPE,
                "retry_countdown_config": plan.retry_countdown_config,
                "config": plan.config,
                "secret_key": "generate" if plan.secret else "",
            }
            response = client.post(WEBHOOKS_PATH, json.dumps(body), content_type="application/json")
            if response.status_code != 201:
                raise CommandError(
                    f"registering the {plan.name} webhook failed: {response.status_code} "
                    f"{response.content.decode(errors='replace')}"
                )
            created = response.json()
            self.webhook_ids[plan.name] = created["id"]
            if plan.secret:
                # Shown in full only in this response: the receiver checks signatures with it.
                receivers.secrets[plan.name] = created["secret_key"]

    def publish_wave(self, first: int, count: int) -> None:
        from ulak.demo_payload import EVENT_TYPE, build_package_payload

        events = []
        for index in range(first, first + count):
            payload = build_package_payload(index)
            events.append(
                {"event_type": EVENT_TYPE, "payload": payload, "object_id": payload["id"]}
            )
        response = self.api().post(
            PUBLISH_PATH, json.dumps(events, ensure_ascii=False), content_type="application/json"
        )
        if response.status_code != 202:
            raise CommandError(f"publishing failed: {response.status_code} {response.content!r}")

    def publish_and_watch(self, worker: subprocess.Popen, started: float) -> bool:
        """Publish the waves and redraw the progress until everything settles (True) or time runs out."""
        display = ProgressDisplay(self.stdout, self.plan.receivers, self.interactive)
        per_wave = -(-self.plan.packages // self.plan.waves)
        published = 0
        next_wave_at = time.monotonic()
        deadline = time.monotonic() + self.plan.deadline
        stats = read_stats(self.webhook_ids)
        while True:
            now = time.monotonic()
            if published < self.plan.packages and now >= next_wave_at:
                count = min(per_wave, self.plan.packages - published)
                self.publish_wave(published, count)
                published += count
                next_wave_at = now + self.plan.wave_pause
            stats = read_stats(self.webhook_ids)
            settled = published >= self.plan.packages and all(
                row.scheduled == 0 for row in stats.values()
            )
            status = (
                f"{now - started:5.1f} s · {published}/{self.plan.packages} packages published"
                f" · worker pid {worker.pid} · Ctrl-C stops the demo"
            )
            if settled or now >= deadline:
                display.finish(stats, status.split(" · worker")[0] + " · done")
                return settled
            if worker.poll() is not None:
                raise CommandError(
                    f"the worker stopped with status {worker.returncode}; "
                    f"see {self.home / 'worker.log'}"
                )
            display.update(now - started, stats, status)
            time.sleep(0.2)

    def show_undelivered(self) -> None:
        response = self.api().get(UNDELIVERED_PATH)
        data = response.json()
        results = data.get("results", [])
        self.say()
        self.say(f"GET {UNDELIVERED_PATH} answered {response.status_code}:")
        self.say(
            f'"count": {data.get("count")}, "next": {json.dumps(data.get("next"))}, '
            f'"previous": {json.dumps(data.get("previous"))}'
        )
        if results:
            self.say(f'"results"[0] of {len(results)}, in full:')
            self.say(json.dumps(results[0], indent=2, ensure_ascii=False))
        if len(results) > 1:
            self.say(f'The other {len(results) - 1} of "results", in brief:')
            for event in results[1:]:
                self.say(
                    f"  id={event['id']} webhook={event['webhook']['id']} "
                    f"({event['webhook']['target_url']}) uuid={event['uuid']} "
                    f"retry_count={event['retry_count']} "
                    f"response_http_status={event['response_http_status']}"
                )
        ulak = "ulak" if shutil.which("ulak") else f"{shlex.quote(sys.executable)} -m ulak.cli"
        self.say()
        self.say("Fetch it yourself: the demo's data stays in its directory. In one terminal:")
        self.say(f"  ULAK_HOME={shlex.quote(str(self.home))} {ulak} serve")
        self.say("and in another:")
        self.say(f'  curl -H "Authorization: Token {self.token}" {SERVE_URL}{UNDELIVERED_PATH}')
        self.say(f"Remove the demo's data with: rm -rf {shlex.quote(str(self.home))}")


# --- the printing receiver (--listen) ------------------------------------------------------


def run_printing_receiver(port: int, secret: str | None, stdout: TextIO) -> None:
    """A receiver on 127.0.0.1:``port`` that prints one line per request, until Ctrl-C."""
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        parts = [part for part in request.path.split("/") if part]
        status = 200
        if len(parts) >= 2 and parts[0] == "status" and parts[1].isdigit():
            status = int(parts[1])
        event = request.headers.get("X-Whisperer-Event", "-")
        try:
            event_uuid = json.loads(body)["event"]["uuid"]
        except (ValueError, KeyError, TypeError):
            event_uuid = "-"
        signature = request.headers.get("X-Whisperer-Signature")
        if signature is None:
            checked = "unsigned"
        elif secret is None:
            checked = "signed (give --secret to check)"
        elif whisperer_signature_is_valid(secret, body, signature):
            checked = "signature ok"
        else:
            checked = "SIGNATURE MISMATCH"
        stdout.write(
            f"{request.method} {request.path} {event} uuid={event_uuid} "
            f"{len(body)} bytes, {checked} -> {status}\n"
        )
        stdout.flush()
        return web.Response(status=status, text="ok" if status < 300 else f"status {status}")

    async def main() -> None:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", port).start()
            stdout.write(f"Receiving on http://127.0.0.1:{port}/ (Ctrl-C stops)\n")
            stdout.flush()
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass


# --- the command ---------------------------------------------------------------------------


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = (
        "A live demonstration on its own data: local receivers (healthy, failing, slow, flaky), "
        "webhooks with different retry policies, OMS events, a worker, and the undelivered list."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--short", action="store_true", help="a few events and short retries (seconds)"
        )
        parser.add_argument(
            "--home", help="the demo's data directory (default: a new temporary directory)"
        )
        parser.add_argument(
            "--listen",
            type=int,
            metavar="PORT",
            help="only run a receiver on 127.0.0.1:PORT that prints each request "
            "(answers 200, or <code> for paths /status/<code>)",
        )
        parser.add_argument("--secret", help="with --listen: check X-Whisperer-Signature")

    def handle(self, *args, short: bool, listen: int | None, secret: str | None, **options):
        home = os.environ.get(DEMO_HOME_VARIABLE)
        if not home:
            raise CommandError(
                "run the demo as `ulak demo`: it needs its own data directory, set up before "
                "Django starts (it never uses your database)"
            )
        stdout = sys.stdout
        # Ctrl-C and SIGTERM both stop the demo cleanly (SIGINT explicitly: a shell starting
        # the demo in the background would otherwise leave it ignored).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        if listen is not None:
            try:
                run_printing_receiver(listen, secret, stdout)
            finally:
                shutil.rmtree(home, ignore_errors=True)
            return
        from django.conf import settings

        database = settings.DATABASES["default"]
        if not database["ENGINE"].endswith("sqlite3") or not str(database["NAME"]).startswith(home):
            raise CommandError("the demo runs only on its own SQLite database")
        demo = Demo(
            home=Path(home),
            plan=make_plan(short),
            stdout=stdout,
            interactive=stdout.isatty() and os.environ.get("TERM") != "dumb",
        )
        try:
            demo.run()
        except KeyboardInterrupt:
            stdout.write("\nInterrupted: the worker and the receivers are stopped.\n")
            stdout.flush()
            sys.exit(130)
