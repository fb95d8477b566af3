"""Ulak's benchmarks, every scenario of issue 7 in one command.

    python -m bench [--quick] [--only SCENARIO ...] [--output PATH] [--chart PATH] [--no-docs]
                    [--jobs N]

Scenarios (each a module that runs alone and prints one JSON object; run here as child
processes, one after the other by default, so no two measurements share the machine):

- ``delivery``    bench.delivery: throughput against the loopback limit on SQLite and
                  PostgreSQL with 1 and 2 workers (issue 7's scenarios 1 and 7), latency at
                  half load (3), isolation (4), the worker's memory with a big backlog (5).
- ``concurrency`` bench.delivery again at several ULAK_TARGET_CONCURRENCY levels: the chart
                  of throughput against concurrency, with the loopback limit.
- ``peer``        bench.peer: dj-whisperer + Celery + Redis, several pools (2).
- ``data_scale``  bench.data_scale: the undelivered list with 1,000,000 events (5).
- ``publish``     bench.publish: publish_many and HTTP publishing (6).

Prints the key figures with their goals (met or missed), writes every figure with the
machine's description, versions and N to ``bench/results/<UTC date and time>.json`` and
draws the chart. A full run of every scenario also refreshes docs/performance.png and the
table in docs/performance.md. ``--quick`` runs the same scenarios small (results named
``quick-*``, not kept in git) two at a time (``--jobs 2``) to stay within two minutes: it
proves the harness works, and its figures, taken on a busier machine, mean little.

The exit status is 1 when a scenario (or the chart) fails, never because a goal is missed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import report
from bench.common import (
    REPO_ROOT,
    describe_machine,
    log,
    raise_on_termination_signals,
    stop_process,
)

RESULTS_DIRECTORY = REPO_ROOT / "bench" / "results"
DOCS_PAGE = REPO_ROOT / "docs" / "performance.md"
DOCS_CHART = REPO_ROOT / "docs" / "performance.png"
SCENARIOS = ("delivery", "concurrency", "peer", "data_scale", "publish")
SLOWEST_FIRST = ("delivery", "publish", "data_scale", "concurrency", "peer")


@dataclass(frozen=True)
class Sizes:
    """What a run measures: the arguments of each module, and the sweep's levels."""

    delivery: tuple[str, ...]
    concurrency_levels: tuple[int, ...]
    concurrency: tuple[str, ...]
    peer: tuple[str, ...]
    data_scale: tuple[str, ...]
    publish: tuple[str, ...]
    # Extra environment of every scenario.
    env: dict[str, str] = field(default_factory=dict)
    timeout_seconds: float = 7200.0


FULL = Sizes(
    delivery=(),  # its defaults: 20,000 events, 1,000,000 for the memory
    concurrency_levels=(1, 4, 16, 64, 256),
    # --quick there only shortens each level's loopback measurement (one 3 s run).
    concurrency=("--quick", "--only", "sqlite,postgres", "--events", "10000"),
    peer=(),  # 5,000 events, every pool of bench.peer.FULL_CONFIGS
    data_scale=(),
    publish=(),
)
QUICK = Sizes(
    delivery=("--quick", "--events", "1000"),
    concurrency_levels=(8, 64),
    concurrency=("--quick", "--only", "sqlite", "--events", "500"),
    peer=("--quick", "--n", "100"),
    data_scale=("--quick", "--samples", "5"),
    publish=("--quick",),
    # A stopped worker waits this long for attempts to a hanging target: 10 s by default,
    # which the quick run does not need to spend (it is not measured either way).
    env={"ULAK_DRAIN_SECONDS": "1"},
    timeout_seconds=600.0,
)


class ScenarioFailed(RuntimeError):
    pass


# The scenario processes running now (several with --jobs): when this process is stopped,
# the main thread stops each of them by its PID, and each stops what it started.
RUNNING: set[subprocess.Popen] = set()
RUNNING_LOCK = threading.Lock()
# Set once this process is being stopped: no scenario process starts after it.
STOPPING = threading.Event()


def stop_running_scenarios() -> None:
    with RUNNING_LOCK:
        STOPPING.set()
        running = list(RUNNING)
    for process in running:
        stop_process(process, timeout=60)


# --------------------------------------------------------------------------- running


def machine_cpu_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far (/proc/stat)."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            values = [int(value) for value in stat.readline().split()[1:]]
    except OSError:
        return 0, 0
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def run_json_command(
    command: Sequence[str], env: Mapping[str, str], timeout: float
) -> dict[str, Any]:
    """Run a scenario module; its progress goes to our stderr, its JSON comes back parsed.

    The child leads its own process group, and is stopped by its PID (it stops what it
    started) when it runs out of time or when this process is stopped.
    """
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as output:
        with RUNNING_LOCK:
            # Under the lock: a process started here is either refused or stopped.
            if STOPPING.is_set():
                raise ScenarioFailed("the bench is stopping")
            process = subprocess.Popen(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=output,
                env=dict(env),
                cwd=REPO_ROOT,
                start_new_session=True,
            )
            RUNNING.add(process)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            stop_process(process, timeout=60)
            raise ScenarioFailed(f"{' '.join(command)} ran out of its {timeout:.0f} s") from None
        except BaseException:
            stop_process(process, timeout=60)
            raise
        finally:
            with RUNNING_LOCK:
                RUNNING.discard(process)
        output.seek(0)
        text = output.read()
    if process.returncode != 0:
        raise ScenarioFailed(f"{' '.join(command)} exited with code {process.returncode}")
    return parse_json_output(text)


def parse_json_output(text: str) -> dict[str, Any]:
    """The JSON object a scenario printed: the whole stdout, or its last top-level object."""
    try:
        parsed = json.loads(text)
    except ValueError:
        start = text.rfind("\n{")
        try:
            parsed = json.loads(text[start + 1 :] if start >= 0 else text)
        except ValueError:
            raise ScenarioFailed(f"no JSON object in the output: {text[-500:]!r}") from None
    if not isinstance(parsed, dict):
        raise ScenarioFailed("the output is not a JSON object")
    return parsed


def module_command(module: str, arguments: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", module, *arguments]


def run_concurrency_sweep(sizes: Sizes, env: Mapping[str, str]) -> dict[str, Any]:
    """bench.delivery once per ULAK_TARGET_CONCURRENCY level (the worker reads it at start).

    With one target, a worker has at most that many attempts in flight; the loopback
    limit is measured again in each child, seconds before its runs.
    """
    levels = []
    failed = []
    for level in sizes.concurrency_levels:
        log("concurrency sweep: ULAK_TARGET_CONCURRENCY=%d", level)
        started = time.monotonic()
        try:
            result = run_json_command(
                module_command("bench.delivery", sizes.concurrency),
                {**env, "ULAK_TARGET_CONCURRENCY": str(level)},
                sizes.timeout_seconds,
            )
        except ScenarioFailed as error:
            # The other levels still make a chart; the scenario is reported as failed.
            failed.append({"target_concurrency": level, "error": str(error)})
            if STOPPING.is_set():
                break
            continue
        levels.append(
            {
                "target_concurrency": level,
                "seconds": round(time.monotonic() - started, 1),
                "loopback_limit": result.get("loopback_limit"),
                "throughput": result.get("throughput"),
                "load_average_1m": report.dig(result, "machine", "load_average_1m"),
            }
        )
    return {
        "scenario": "concurrency",
        "what": (
            "bench.delivery's throughput (first to last delivery) at each "
            "ULAK_TARGET_CONCURRENCY level, each with its own loopback limit"
        ),
        "arguments": list(sizes.concurrency),
        "levels": levels,
        "failed_levels": failed,
    }


def prepare_peer() -> dict[str, Any]:
    """The peer's one-off set-up (redis-server, its virtualenv), timed apart from its run."""
    from bench.peer.runner import DEFAULT_VENV, ensure_peer_venv, ensure_redis_server

    started = time.monotonic()
    redis_server = ensure_redis_server()
    venv = Path(os.environ.get("ULAK_PEER_VENV", DEFAULT_VENV))
    python = ensure_peer_venv(venv)
    return {
        "redis_server": redis_server,
        "python": str(python),
        "setup_seconds": round(time.monotonic() - started, 1),
    }


def run_scenario(
    name: str, sizes: Sizes, env: Mapping[str, str], *, alone: bool = True
) -> dict[str, Any]:
    """Run one scenario; never raises for the scenario's own failure (it is recorded).

    ``alone``: no other scenario runs meanwhile, so this process's reaped children's CPU is
    this scenario's.
    """
    entry: dict[str, Any] = {"load_average_before": round(os.getloadavg()[0], 2)}
    busy_before, total_before = machine_cpu_ticks()
    children_before = os.times()
    started = time.monotonic()
    try:
        if name == "peer":
            entry["setup"] = prepare_peer()
            started = time.monotonic()  # the run alone, without the one-off set-up
        if name == "concurrency":
            entry["result"] = run_concurrency_sweep(sizes, env)
            if entry["result"]["failed_levels"]:
                entry["error"] = "; ".join(
                    f"level {failure['target_concurrency']}: {failure['error']}"
                    for failure in entry["result"]["failed_levels"]
                )
        else:
            module = {"data_scale": "bench.data_scale", "peer": "bench.peer"}.get(
                name, f"bench.{name}"
            )
            command = module_command(module, getattr(sizes, name))
            entry["command"] = command[1:]
            entry["result"] = run_json_command(command, env, sizes.timeout_seconds)
    except Exception as error:  # noqa: BLE001 - recorded; the other scenarios go on
        entry["error"] = f"{type(error).__name__}: {error}"
    if "error" in entry:
        log("%s FAILED: %s", name, entry["error"])
    entry["seconds"] = round(time.monotonic() - started, 1)
    busy_after, total_after = machine_cpu_ticks()
    children_after = os.times()
    entry["load_average_after"] = round(os.getloadavg()[0], 2)
    if total_after > total_before:
        # How busy the machine was; the scenarios' own foreign_cpu_share says whose it was.
        entry["machine_busy_share"] = round(
            (busy_after - busy_before) / (total_after - total_before), 3
        )
    if alone:
        # Without PostgreSQL's server processes, which are not our children.
        entry["bench_child_cpu_seconds"] = round(
            (children_after.children_user + children_after.children_system)
            - (children_before.children_user + children_before.children_system),
            1,
        )
    return entry


# --------------------------------------------------------------------------- describing


def git_revision() -> dict[str, Any]:
    """The commit measured (read-only git plumbing; nothing in the checkout changes)."""

    def git(*arguments: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["git", *arguments], cwd=REPO_ROOT, capture_output=True, text=True, check=False
        )

    try:
        commit = git("rev-parse", "HEAD")
        changed = git("diff-index", "--quiet", "HEAD", "--")
    except OSError:
        return {}
    if commit.returncode != 0:
        return {}
    return {"commit": commit.stdout.strip(), "uncommitted_changes": changed.returncode == 1}


def collect_sizes(scenarios: Mapping[str, Any]) -> dict[str, Any]:
    """The N of every figure, gathered in one place (each scenario's JSON has them too)."""

    def result(name: str) -> Any:
        return report.dig(scenarios, name, "result")

    delivery = result("delivery")
    throughput = report.dig(delivery, "throughput") or {}
    events = [
        run.get("events")
        for run in throughput.values()
        if isinstance(run, dict) and "events" in run
    ]
    levels = report.dig(result("concurrency"), "levels") or []
    concurrency_events = [
        run.get("events")
        for level in levels
        for run in (level.get("throughput") or {}).values()
        if isinstance(run, dict)
    ]
    sizes = {
        "delivery_backlog_events": max(events) if events else None,
        "loopback_limit_requests": report.dig(delivery, "loopback_limit", "requests"),
        "latency_samples": report.dig(delivery, "latency", "samples"),
        "isolation_events_per_healthy_target": report.dig(
            delivery, "isolation", "events_per_healthy_target"
        ),
        "memory_backlog_events": report.dig(delivery, "memory", "backlog_events"),
        "concurrency_events": max(filter(None, concurrency_events), default=None),
        "concurrency_levels": [level.get("target_concurrency") for level in levels] or None,
        "peer_events_per_config": report.dig(result("peer"), "n"),
        "peer_configs": list(report.dig(result("peer"), "deliveries_per_second") or {}) or None,
        "data_scale_data_sets": report.dig(result("data_scale"), "data_sets"),
        "data_scale_samples_per_page": report.dig(result("data_scale"), "samples_per_page"),
        "publish_many_events": report.dig(result("publish"), "publish_many", "sqlite", "events"),
        "publish_http_clients": report.dig(result("publish"), "http", "sqlite", "clients"),
    }
    return {key: value for key, value in sizes.items() if value is not None}


# --------------------------------------------------------------------------- main


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="every scenario small (< 2 min)")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="SCENARIO",
        help=f"run only these (of {', '.join(SCENARIOS)}; commas work too)",
    )
    parser.add_argument("--output", type=Path, help="the results file (default bench/results/)")
    parser.add_argument("--chart", type=Path, help="the PNG (default: see above)")
    parser.add_argument(
        "--no-docs", action="store_true", help="leave docs/performance.{md,png} as they are"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        choices=(1, 2, 3, 4, 5),
        help="scenarios run at once (default 1; 2 with --quick, whose figures are not kept)",
    )
    options = parser.parse_args(argv)
    chosen = []
    for text in options.only or SCENARIOS:
        for name in text.replace("-", "_").split(","):
            if not name:
                continue
            if name not in SCENARIOS:
                parser.error(f"unknown scenario {name!r}: choose from {', '.join(SCENARIOS)}")
            if name not in chosen:
                chosen.append(name)
    options.scenarios = [name for name in SCENARIOS if name in chosen]
    return options


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_arguments(argv)
    raise_on_termination_signals()
    sizes = QUICK if options.quick else FULL
    begun = datetime.datetime.now(datetime.UTC)
    started = time.monotonic()
    env = {**os.environ, **sizes.env, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("DATABASE_URL", None)  # every scenario starts its own PostgreSQL server

    results: dict[str, Any] = {
        "bench": "ulak",
        "quick": options.quick,
        "started_at": begun.isoformat(timespec="seconds"),
        "command": ["python", "-m", "bench", *(argv if argv is not None else sys.argv[1:])],
        "git": git_revision(),
        "machine": describe_machine(None),
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "environment": {name: value for name, value in sizes.env.items()},
        "scenarios": {},
    }
    jobs = options.jobs or (2 if options.quick else 1)
    results["jobs"] = jobs

    def run_one(name: str) -> dict[str, Any]:
        log("=== scenario %s (%s)", name, "quick" if options.quick else "full")
        entry = run_scenario(name, sizes, env, alone=jobs == 1)
        log("=== scenario %s: %.0f s", name, entry["seconds"])
        return entry

    # Longest first, so that with two jobs they share the time evenly.
    order = sorted(options.scenarios, key=SLOWEST_FIRST.index)
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        futures = {name: pool.submit(run_one, name) for name in order}
        for name in options.scenarios:
            results["scenarios"][name] = futures[name].result()
    except BaseException:
        # Stopped (SIGTERM, Ctrl-C): stop the scenarios first; waiting for the threads
        # would wait for whole scenarios.
        pool.shutdown(wait=False, cancel_futures=True)
        stop_running_scenarios()
        raise
    pool.shutdown()
    failed = any("error" in entry for entry in results["scenarios"].values())

    results["seconds"] = round(time.monotonic() - started, 1)
    results["finished_at"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    results["load_average_at_end"] = [round(value, 2) for value in os.getloadavg()]
    results["n"] = collect_sizes(results["scenarios"])
    # The server's own version, from a scenario that had one running (the description
    # taken at the start has only the installed binaries to go by).
    for entry in results["scenarios"].values():
        server = report.dig(entry, "result", "machine", "versions", "postgresql")
        if server:
            results["machine"]["versions"]["postgresql"] = server
            break
    rows = report.summarize(results)
    results["summary"] = [row.as_dict() for row in rows]
    results["goals"] = report.goal_counts(rows)

    output = options.output or RESULTS_DIRECTORY / report.results_filename(begun, options.quick)
    everything = set(options.scenarios) == set(SCENARIOS)
    update_docs = everything and not options.quick and not options.no_docs
    chart = options.chart or (DOCS_CHART if update_docs else output.with_suffix(".png"))
    if {"concurrency", "peer"} & set(options.scenarios):
        try:
            report.draw_concurrency_chart(results, chart)
            results["chart"] = str(chart)
        except Exception as error:  # noqa: BLE001 - recorded, and the run fails below
            results["chart_error"] = f"{type(error).__name__}: {error}"
            log("the chart failed: %s", results["chart_error"])
            failed = True
    report.write_results(results, output)
    if update_docs:
        try:
            page = DOCS_PAGE.read_text(encoding="utf-8")
            block = (
                f"Measured {begun:%Y-%m-%d %H:%M} UTC on {results['machine'].get('cpu_model')}, "
                f"{results['machine'].get('cpu_cores')} cores, commit "
                f"{str(results['git'].get('commit', '?'))[:10]}; results: "
                f"`bench/results/{output.name}`.\n\n" + report.render_markdown(rows)
            )
            DOCS_PAGE.write_text(report.replace_marked_block(page, block), encoding="utf-8")
        except (OSError, ValueError) as error:
            log("docs/performance.md not updated: %s", error)

    print(report.render_table(rows))
    print(f"\nresults: {output}")
    if "chart" in results:
        print(f"chart:   {chart}")
    print(f"took {results['seconds']:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
