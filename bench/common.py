"""Small helpers shared by the benchmark scenarios in ``bench/``.

Kept small and stable, because every scenario imports it:

- ``start_postgres`` / ``stop_postgres`` / ``postgres_server``: a throw-away PostgreSQL
  server through ``scripts/postgres.sh`` (it runs as the ``postgres`` user in a temporary
  folder, never in the checkout).
- ``start_process`` / ``stop_process`` / ``ProcessSet``: child processes, each the leader of
  its own process group, stopped by their PID (SIGTERM, then SIGKILL) and never by name.
- ``raise_on_termination_signals``: SIGTERM and SIGHUP become ``SystemExit``, so the
  ``finally`` blocks that stop the children run when the bench itself is stopped.
- ``free_port``, ``wait_for_http``: loopback plumbing.
- ``percentile``, ``summarize_latencies``: p50/p95/p99 (linear interpolation).
- ``describe_machine``: CPU, cores, memory, kernel and the versions of what is measured.
- ``print_json``: the one JSON object a scenario prints on stdout.

Only the standard library is imported at module level, so a scenario can import this
module before Django is set up, or from another virtualenv.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
POSTGRES_SCRIPT = REPO_ROOT / "scripts" / "postgres.sh"

# Server defaults (fsync, synchronous_commit and full_page_writes on): what a deployment
# runs. The option must be non-empty, or postgres.sh falls back to its test options.
DURABLE_POSTGRES_OPTIONS = "-c fsync=on"


def log(message: str, *args: Any) -> None:
    """Progress on stderr (stdout is kept for the one JSON object)."""
    text = message % args if args else message
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def print_json(result: Mapping[str, Any]) -> None:
    """Print a scenario's result as one JSON object on stdout."""
    print(json.dumps(result, indent=2, ensure_ascii=False), flush=True)


# --------------------------------------------------------------------------- processes


def raise_on_termination_signals() -> None:
    """Turn SIGTERM and SIGHUP into SystemExit so ``finally`` blocks stop what was started."""

    def exit_now(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, exit_now)
    signal.signal(signal.SIGHUP, exit_now)


def start_process(
    command: Sequence[str],
    *,
    log_path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.Popen:
    """Start ``command`` as the leader of a new session (its PID is its process group id).

    Output goes to ``log_path`` (or is discarded). Stop it with ``stop_process``.
    """
    output = open(log_path, "ab") if log_path else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    finally:
        if log_path:
            output.close()


def stop_process(process: subprocess.Popen, timeout: float = 15.0) -> None:
    """Stop a process started by ``start_process`` and the children in its group.

    SIGTERM to the group led by that PID, then SIGKILL after ``timeout``. The group is the
    one this process created, so only what we started is touched.
    """
    group = process.pid
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
            process.wait(5)
    # Children that outlived their leader (a prefork pool's processes, say).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, 0)
        time.sleep(0.3)
        os.killpg(group, signal.SIGKILL)


class ProcessSet:
    """The processes a scenario started; ``stop_all`` (or leaving the ``with``) stops them."""

    def __init__(self) -> None:
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str, command: Sequence[str], **options: Any) -> subprocess.Popen:
        process = start_process(command, **options)
        self.processes[name] = process
        return process

    def stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is not None:
            stop_process(process)

    def stop_all(self) -> None:
        # Newest first: a worker goes before the services it uses.
        for name in reversed(list(self.processes)):
            self.stop(name)

    def __enter__(self) -> ProcessSet:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_all()


# --------------------------------------------------------------------------- loopback


def _ephemeral_low() -> int:
    """The lowest port the kernel gives outgoing connections (Linux; 32768 elsewhere)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now, below the ephemeral range.

    A port from bind(0) lies in the ephemeral range, where the kernel also picks the local
    ports of outgoing connections: after the thousands of connections of a run, a receiver
    started a moment later on such a port found it taken (EADDRINUSE). Below that range
    only servers bind, so a port free now stays free.
    """
    low = min(_ephemeral_low(), 65535)
    if low > 11000:
        for _ in range(100):
            port = random.randrange(10000, low)
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_http(
    url: str,
    *,
    timeout: float = 30.0,
    process: subprocess.Popen | None = None,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Wait until ``url`` answers at all (any HTTP status); fail if ``process`` exits first."""
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(url, headers=dict(headers or {}))
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(request, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {timeout:.0f} s") from None
            time.sleep(0.1)


# --------------------------------------------------------------------------- PostgreSQL


@dataclass(frozen=True)
class PostgresServer:
    url: str  # postgres://postgres@127.0.0.1:PORT/ulak
    directory: str  # data and socket; removed by stop_postgres
    bin_dir: str  # pg_ctl, psql, createdb, ...
    durable: bool


def start_postgres(*, durable: bool = True) -> PostgresServer:
    """Start a throw-away PostgreSQL server with an empty ``ulak`` database.

    ``durable=True`` keeps the server's default durability (fsync and synchronous commit
    on), as a deployment runs; ``False`` uses the test suite's fsync=off options.
    """
    env = dict(os.environ)
    if durable:
        env["PG_EXTRA_OPTIONS"] = DURABLE_POSTGRES_OPTIONS
    else:
        env.pop("PG_EXTRA_OPTIONS", None)
    completed = subprocess.run(
        ["bash", str(POSTGRES_SCRIPT), "start"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"PostgreSQL did not start: {completed.stderr.strip()}")
    values = dict(line.split("=", 1) for line in completed.stdout.splitlines() if "=" in line)
    return PostgresServer(
        url=values["DATABASE_URL"],
        directory=values["ULAK_PG_DIR"],
        bin_dir=values["ULAK_PG_BIN"],
        durable=durable,
    )


def stop_postgres(server: PostgresServer) -> None:
    """Stop the server (pg_ctl on its own data folder) and remove its folder."""
    subprocess.run(
        ["bash", str(POSTGRES_SCRIPT), "stop", server.directory],
        capture_output=True,
        check=False,
    )


@contextlib.contextmanager
def postgres_server(*, durable: bool = True) -> Iterator[PostgresServer]:
    """``with postgres_server() as server:`` a server that is stopped on the way out."""
    server = start_postgres(durable=durable)
    try:
        yield server
    finally:
        stop_postgres(server)


# --------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between closest ranks.

    The same definition as numpy's default: percentile([1, 2, 3, 4], 50) == 2.5.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0 and 100, not {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    lower = math.floor(position)
    upper = math.ceil(position)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def summarize_latencies(seconds: Sequence[float]) -> dict[str, float | int]:
    """Latencies given in seconds, summarised in milliseconds (rounded to 0.01 ms)."""

    def in_ms(value: float) -> float:
        return round(value * 1000, 2)

    return {
        "samples": len(seconds),
        "p50_ms": in_ms(percentile(seconds, 50)),
        "p95_ms": in_ms(percentile(seconds, 95)),
        "p99_ms": in_ms(percentile(seconds, 99)),
        "mean_ms": in_ms(sum(seconds) / len(seconds)),
        "max_ms": in_ms(max(seconds)),
    }


def run_json_part(
    module: str, part: str, env: Mapping[str, str], *extra: str, timeout: float = 1800
) -> Any:
    """Run ``python -m MODULE --part PART ...`` in a child (its own Django settings and
    database); its last stdout line is the JSON answer."""
    return run_json_command(
        [sys.executable, "-m", module, "--part", part, *extra],
        env=env,
        cwd=REPO_ROOT,
        timeout=timeout,
        what=f"part {part}",
    )


def run_json_command(
    command: Sequence[str], *, env: Mapping[str, str], cwd: Path, timeout: float, what: str
) -> Any:
    """Run ``command`` to the end; the JSON on the last line of its stdout.

    RuntimeError with the end of its stderr (``what`` names it) when it fails.
    """
    completed = subprocess.run(
        list(command),
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- machine


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _postgres_version(database_url: str | None) -> str | None:
    """The server's version when a URL is given, else the installed binaries' version."""
    if database_url:
        try:
            import psycopg

            with psycopg.connect(database_url, connect_timeout=5) as connection:
                return connection.execute("SHOW server_version").fetchone()[0]
        except Exception:  # noqa: BLE001 - a description must not fail the bench
            pass
    for binary in sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), reverse=True):
        try:
            output = subprocess.run(
                [str(binary), "--version"], capture_output=True, text=True, check=True
            ).stdout
            return output.strip().rsplit(" ", 1)[-1]
        except (OSError, subprocess.CalledProcessError):
            continue
    return None


def describe_machine(database_url: str | None = None) -> dict[str, Any]:
    """What the figures were measured on: hardware, kernel and the versions involved."""
    return {
        "cpu_model": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
        "kernel": f"{platform.system()} {platform.release()}",
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "versions": {
            "python": platform.python_version(),
            "django": _package_version("Django"),
            "djangorestframework": _package_version("djangorestframework"),
            "aiohttp": _package_version("aiohttp"),
            "uvloop": _package_version("uvloop"),
            "psycopg": _package_version("psycopg"),
            "granian": _package_version("granian"),
            "ulak": _package_version("ulak"),
            "postgresql": _postgres_version(database_url),
            "sqlite": sqlite3.sqlite_version,
        },
    }
