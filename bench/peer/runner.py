"""Scenario 2, the peer: dj-whisperer 0.5.3 with Celery, Redis and PostgreSQL.

What is measured: end-to-end deliveries per second, from the first call of whisperer's
``deliver_event`` (one 8 KB package event each, published from one process while the
Celery worker runs) until all N ``WebhookEvent`` rows are ``delivered``, to the same fast
aiohttp receiver that Ulak's scenarios use. Each worker configuration (prefork and thread
pools of several sizes) is measured in turn on emptied tables; the best is the peer's figure.

The peer runs in a virtualenv of its own (default ``~/.cache/ulak-bench/peer-venv``, or
``ULAK_PEER_VENV``), never Ulak's ``.venv``, with the versions pinned in
``requirements.txt``. PostgreSQL runs with its default durability, like Ulak's scenarios.
Everything started here (PostgreSQL, Redis, the receiver, Celery workers) is stopped by
PID on the way out, also after an error or SIGTERM.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import common
from bench.payload import EVENT_TYPE, build_package_payload, encode_ulak_body, encode_whisperer_body

HERE = Path(__file__).resolve().parent
PROJECT = HERE / "project"
REQUIREMENTS = HERE / "requirements.txt"
DRIVER = HERE / "driver.py"

DEFAULT_VENV = Path.home() / ".cache" / "ulak-bench" / "peer-venv"
FULL_CONFIGS = (
    "prefork:2",
    "prefork:3",
    "prefork:4",
    "prefork:8",
    "threads:8",
    "threads:16",
    "threads:32",
)
QUICK_CONFIGS = ("prefork:2", "threads:8")
FULL_N = 5000
QUICK_N = 300
WORKER_READY_TIMEOUT = 90.0


@dataclass(frozen=True)
class WorkerConfig:
    pool: str  # prefork | threads | solo
    concurrency: int
    prefetch_multiplier: int = 4
    conn_max_age: str = "600"

    @classmethod
    def parse(cls, text: str) -> WorkerConfig:
        """``pool:concurrency[:pf=N][:cma=SECONDS]``, e.g. ``prefork:4`` or ``threads:16:pf=1``."""
        pool, concurrency, *extras = text.split(":")
        options = dict(extra.split("=", 1) for extra in extras)
        if pool not in ("prefork", "threads", "solo"):
            raise ValueError(f"{text}: the pool must be prefork, threads or solo")
        return cls(
            pool=pool,
            concurrency=int(concurrency),
            prefetch_multiplier=int(options.get("pf", 4)),
            conn_max_age=options.get("cma", "600"),
        )


# --------------------------------------------------------------------------- set-up


def ensure_redis_server() -> str:
    """The path of Debian's redis-server, installed with apt when missing (as root)."""
    found = shutil.which("redis-server")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        common.log("redis-server is missing: installing it with apt")
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        subprocess.run(["apt-get", "update", "-qq"], check=True, **quiet)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "redis-server"],
            check=True,
            env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
            **quiet,
        )
        found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    return found


def ensure_peer_venv(venv: Path) -> Path:
    """Create the peer's virtualenv (once per requirements.txt) and return its python."""
    python = venv / "bin" / "python"
    stamp = venv / ".ulak-bench-requirements"
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return python
    common.log("creating the peer virtualenv %s", venv)
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        + ["-r", str(REQUIREMENTS)],
        capture_output=True,
        text=True,
        check=False,
    )
    if installed.returncode != 0:
        raise RuntimeError(f"pip could not install the peer: {installed.stderr[-2000:]}")
    stamp.write_text(wanted)
    return python


# --------------------------------------------------------------------------- services


def ping_redis(port: int) -> str | None:
    """The server's version once it answers, else None (RESP spoken by hand: no client here)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            connection.sendall(b"INFO server\r\n")
            answer = b""
            while b"redis_version:" not in answer or not answer.endswith(b"\r\n"):
                chunk = connection.recv(65536)
                if not chunk:
                    break
                answer += chunk
    except OSError:
        return None
    for line in answer.decode(errors="replace").splitlines():
        if line.startswith("redis_version:"):
            return line.split(":", 1)[1].strip()
    return None


class PeerBenchmark:
    def __init__(
        self, *, n: int, configs: Sequence[str], rounds: int, venv: Path, workdir: Path
    ) -> None:
        self.n = n
        self.rounds = rounds
        self.configs = [WorkerConfig.parse(text) for text in configs]
        self.config_names = list(configs)
        self.venv = venv
        self.workdir = workdir
        self.processes = common.ProcessSet()
        self.postgres: common.PostgresServer | None = None
        self.redis_port = common.free_port()
        self.receiver_port = common.free_port()
        self.receiver_url = f"http://127.0.0.1:{self.receiver_port}"
        self.python: Path | None = None

    # The environment of every peer process: ports, and where its modules are.
    def peer_env(self, config: WorkerConfig | None = None) -> dict[str, str]:
        assert self.postgres is not None
        url = urllib.parse.urlsplit(self.postgres.url)
        env = dict(os.environ)
        for name in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "VIRTUAL_ENV", "PYTHONHOME"):
            env.pop(name, None)
        env.update(
            {
                "PYTHONPATH": os.pathsep.join([str(PROJECT), str(common.REPO_ROOT)]),
                "DJANGO_SETTINGS_MODULE": "peer_site.settings",
                "PEER_POSTGRES_PORT": str(url.port),
                "PEER_DATABASE_NAME": url.path.lstrip("/"),
                "PEER_REDIS_PORT": str(self.redis_port),
            }
        )
        if config is not None:
            env["PEER_PREFETCH_MULTIPLIER"] = str(config.prefetch_multiplier)
            env["PEER_CONN_MAX_AGE"] = config.conn_max_age
        return env

    def start_services(self) -> dict[str, Any]:
        redis_server = ensure_redis_server()
        self.python = ensure_peer_venv(self.venv)
        self.postgres = common.start_postgres(durable=True)
        common.log("PostgreSQL: %s", self.postgres.url)
        redis = self.processes.start(
            "redis",
            [redis_server, "--port", str(self.redis_port), "--bind", "127.0.0.1"]
            + ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
            + ["--daemonize", "no", "--protected-mode", "yes"],
            log_path=self.workdir / "redis.log",
        )
        deadline = time.monotonic() + 20
        while (redis_version := ping_redis(self.redis_port)) is None:
            if redis.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start; see {self.workdir}/redis.log")
            time.sleep(0.05)
        receiver = self.processes.start(
            "receiver",
            [sys.executable, "-m", "bench.receiver", "--port", str(self.receiver_port)],
            log_path=self.workdir / "receiver.log",
            cwd=common.REPO_ROOT,
        )
        common.wait_for_http(f"{self.receiver_url}/stats", process=receiver)
        setup = self.run_driver(["setup", "--receiver-url", self.receiver_url])
        return {"redis_server": redis_version, **setup}

    def stop_services(self) -> None:
        self.processes.stop_all()
        if self.postgres is not None:
            common.stop_postgres(self.postgres)
            self.postgres = None

    def run_driver(self, arguments: list[str], timeout: float = 1200.0) -> dict[str, Any]:
        assert self.python is not None
        return common.run_json_command(
            [str(self.python), str(DRIVER), *arguments],
            env=self.peer_env(),
            cwd=PROJECT,
            timeout=timeout,
            what=f"peer driver {arguments[0]}",
        )

    # ------------------------------------------------------------------------ workers

    def start_worker(self, name: str, config: WorkerConfig) -> None:
        assert self.python is not None
        ready_file = self.workdir / f"{name}.ready"
        ready_file.unlink(missing_ok=True)
        env = self.peer_env(config)
        env["PEER_READY_FILE"] = str(ready_file)
        # No gossip, mingle or heartbeat: one worker needs none of them, and they cost CPU.
        worker = self.processes.start(
            "worker",
            [str(self.python), "-m", "celery", "-A", "peer_site", "worker"]
            + ["-P", config.pool, "-c", str(config.concurrency), "-l", "WARNING"]
            + ["-n", f"{name}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            log_path=self.workdir / f"{name}.log",
            env=env,
            cwd=PROJECT,
        )
        deadline = time.monotonic() + WORKER_READY_TIMEOUT
        while not ready_file.exists():
            if worker.poll() is not None:
                raise RuntimeError(f"celery worker {name} exited; see {self.workdir}/{name}.log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"celery worker {name} was not ready in time")
            time.sleep(0.05)
        time.sleep(1.0)  # let the pool's processes or threads settle before the clock starts

    def our_process_roots(self) -> list[int]:
        """PIDs whose process trees are this benchmark's: services, the worker, PostgreSQL."""
        roots = [process.pid for process in self.processes.processes.values()]
        if self.postgres is not None:
            try:
                pid_file = Path(self.postgres.directory) / "data" / "postmaster.pid"
                roots.append(int(pid_file.read_text().split()[0]))
            except (OSError, ValueError, IndexError):
                pass
        return roots

    def cpu_snapshot(self) -> tuple[int, int, float]:
        """(machine busy ticks, our live trees' ticks, our reaped children's seconds)."""
        children = os.times()
        return (
            machine_busy_ticks()[0],
            process_tree_ticks(self.our_process_roots()),
            children.children_user + children.children_system,
        )

    def measure(self, text: str, config: WorkerConfig) -> dict[str, Any]:
        name = "peer-" + "".join(c if c.isalnum() else "-" for c in text)
        self.start_worker(name, config)
        try:
            before = self.cpu_snapshot()
            result = self.run_driver(
                ["run", "--n", str(self.n), "--receiver-url", self.receiver_url]
            )
            # Taken before the worker stops: the reaped-children time is the driver's alone.
            after = self.cpu_snapshot()
        finally:
            self.processes.stop("worker")
        ticks = os.sysconf("SC_CLK_TCK")
        machine = (after[0] - before[0]) / ticks
        ours = (after[1] - before[1]) / ticks + (after[2] - before[2])
        return {
            "config": text,
            "pool": config.pool,
            "concurrency": config.concurrency,
            "prefetch_multiplier": config.prefetch_multiplier,
            "conn_max_age": config.conn_max_age,
            **result,
            "cpu_ms_per_event": round(1000 * ours / self.n, 2),
            # The peer is CPU-bound: this machine's cores divided by its CPU cost per event is
            # what it would reach alone here, an estimate that foreign load hardly moves.
            "cpu_bound_ceiling_per_second": (
                round((os.cpu_count() or 1) * self.n / ours, 1) if ours else None
            ),
            # Busy CPU of the machine not spent by our processes (another workload on this
            # shared machine, or the kernel): above a few percent the figure is disturbed.
            "foreign_cpu_share": round(max(0.0, 1 - ours / machine), 3) if machine else None,
        }

    def run(self) -> dict[str, Any]:
        services = self.start_services()
        runs = []
        # Rounds interleave the configurations, so a burst of foreign load on this shared
        # machine hits them alike; each configuration's figure is its median.
        for round_number in range(1, self.rounds + 1):
            for text, config in zip(self.config_names, self.configs, strict=True):
                common.log("peer %s (round %d): %d events ...", text, round_number, self.n)
                try:
                    outcome = self.measure(text, config)
                except Exception as error:  # noqa: BLE001 - one broken config must not hide the rest
                    outcome = {"config": text, "completed": False, "error": str(error)}
                outcome["round"] = round_number
                common.log(
                    "peer %s: %s deliveries/s (foreign CPU %s)",
                    text,
                    outcome.get("deliveries_per_second"),
                    outcome.get("foreign_cpu_share"),
                )
                runs.append(outcome)
        figures: dict[str, float | None] = {}
        for text in self.config_names:
            rates = [
                r["deliveries_per_second"]
                for r in runs
                if r["config"] == text and r.get("completed") and r.get("deliveries_per_second")
            ]
            figures[text] = round(statistics.median(rates), 1) if rates else None
        measured = {text: rate for text, rate in figures.items() if rate}
        best = max(measured, key=measured.__getitem__) if measured else None
        payload = build_package_payload()
        return {
            "scenario": "peer",
            "what": (
                "dj-whisperer 0.5.3 + Celery + Redis + PostgreSQL: end-to-end deliveries/s, "
                "first deliver_event() call to the last row delivered=True, one config at a time"
            ),
            "n": self.n,
            "rounds": self.rounds,
            "event_type": EVENT_TYPE,
            "body_bytes": {
                "ulak": len(encode_ulak_body(payload)),
                "whisperer": len(encode_whisperer_body(payload)),
            },
            "deliveries_per_second": figures,
            "best": {"config": best, "deliveries_per_second": measured[best]} if best else None,
            "runs": runs,
            "postgresql": {"durable": True, "options": common.DURABLE_POSTGRES_OPTIONS},
            "peer_versions": {**services["versions"], "redis_server": services["redis_server"]},
            "peer_venv": str(self.venv),
            "machine": common.describe_machine(self.postgres.url if self.postgres else None),
        }


def process_tree_ticks(roots: Sequence[int]) -> int:
    """CPU ticks (user + system, with reaped children) of the live trees under ``roots``."""
    table: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command: state, ppid, ... utime (12th), stime, cutime, cstime.
        table[int(entry)] = (int(fields[1]), sum(int(value) for value in fields[11:15]))
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    total, pending, seen = 0, [root for root in roots if root in table], set()
    while pending:
        pid = pending.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += table[pid][1]
        pending.extend(children.get(pid, ()))
    return total


def machine_busy_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine, from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as stat:
        values = [int(value) for value in stat.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def run_peer_benchmark(
    *,
    n: int = FULL_N,
    configs: Sequence[str] = FULL_CONFIGS,
    rounds: int = 1,
    venv: Path | None = None,
) -> dict[str, Any]:
    """Run scenario 2 and return its result (the JSON object ``python -m bench.peer`` prints)."""
    venv = venv or Path(os.environ.get("ULAK_PEER_VENV", DEFAULT_VENV))
    workdir = Path(tempfile.mkdtemp(prefix="ulak-peer-"))
    benchmark = PeerBenchmark(n=n, configs=configs, rounds=rounds, venv=venv, workdir=workdir)
    failed = True
    try:
        result = benchmark.run()
        failed = not result["best"]
        return result
    finally:
        benchmark.stop_services()
        if failed:
            common.log("logs kept in %s", workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
