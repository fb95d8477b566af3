"""The benchmark's report: key figures against their goals, the results file and the chart.

Everything here works on the results dict that ``python -m bench`` builds::

    {"quick": bool, "machine": {...}, "n": {...},
     "scenarios": {"delivery": {"result": {...}}, "peer": {"error": "..."}, ...}}

where each scenario's ``result`` is the JSON object its module prints (``bench.delivery``,
``bench.peer``, ``bench.data_scale``, ``bench.publish``) or, for ``concurrency``, the
orchestrator's sweep of ``bench.delivery`` over ``ULAK_TARGET_CONCURRENCY``.

``summarize`` turns it into rows (figure, value, goal, met or missed); ``render_table`` and
``render_markdown`` print them; ``write_results`` writes the JSON file; ``concurrency_series``
and ``draw_concurrency_chart`` make the PNG. Only the chart needs matplotlib (the ``bench``
extra), imported when the chart is drawn, so the rest is usable from the test suite.
"""

from __future__ import annotations

import datetime
import json
import os
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TABLE_START = "<!-- bench:table:start -->"
TABLE_END = "<!-- bench:table:end -->"


@dataclass(frozen=True)
class Goal:
    """A figure's goal: ``value >= threshold`` (at_least) or ``value <= threshold``."""

    threshold: float
    at_least: bool = True

    def is_met_by(self, value: float) -> bool:
        return value >= self.threshold if self.at_least else value <= self.threshold

    def describe(self, unit: str) -> str:
        sign = "≥" if self.at_least else "≤"
        return f"{sign} {format_value(self.threshold, unit)}"


@dataclass(frozen=True)
class Row:
    """One line of the table: a figure of a scenario, with its goal when the issue sets one."""

    scenario: str
    figure: str
    value: float | None
    unit: str = ""
    goal: Goal | None = None
    detail: str = ""
    error: str | None = None

    @property
    def status(self) -> str:
        if self.error:
            return "FAILED"
        if self.value is None:
            return "not measured"
        if self.goal is None:
            return "-"
        return "met" if self.goal.is_met_by(self.value) else "MISSED"

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "figure": self.figure,
            "value": self.value,
            "unit": self.unit,
            "goal": self.goal.describe(self.unit) if self.goal else None,
            "status": self.status,
            "detail": self.detail,
            **({"error": self.error} if self.error else {}),
        }


# --------------------------------------------------------------------------- goals (issue 7)

GOAL_SQLITE_RATIO = Goal(0.5)
GOAL_POSTGRESQL_RATIO = Goal(0.6)
GOAL_PEER_MULTIPLE = Goal(30)
GOAL_LATENCY_P50_MS = Goal(10, at_least=False)
GOAL_LATENCY_P99_MS = Goal(50, at_least=False)
GOAL_ISOLATION_RATIO = Goal(0.9)
GOAL_SCALE_RATIO = Goal(1.5, at_least=False)
GOAL_ALL_UNDELIVERED_FIRST_PAGE_MS = Goal(200, at_least=False)
GOAL_WORKER_RSS_MB = Goal(150, at_least=False)
GOAL_PUBLISH_MANY = Goal(10_000)
GOAL_HTTP_SINGLE = Goal(1_000)
GOAL_HTTP_BATCH = Goal(10_000)


# --------------------------------------------------------------------------- helpers


def dig(data: Any, *keys: Any) -> Any:
    """``data[k1][k2]...``, or None as soon as a key is missing or a level is not a container."""
    for key in keys:
        if isinstance(data, Mapping):
            data = data.get(key)
        elif isinstance(data, Sequence) and not isinstance(data, str) and isinstance(key, int):
            data = data[key] if -len(data) <= key < len(data) else None
        else:
            return None
        if data is None:
            return None
    return data


def number(value: Any) -> float | None:
    """A figure as a float, or None if it is missing or not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def ratio(numerator: Any, denominator: Any) -> float | None:
    top, bottom = number(numerator), number(denominator)
    if top is None or not bottom:
        return None
    return top / bottom


def format_value(value: float | None, unit: str) -> str:
    """``0.64×``, ``2,559 events/s``, ``16.4 ms``: the precision each unit deserves."""
    if value is None:
        return "-"
    if unit == "×":
        if value >= 10:
            return f"{value:.0f}×" if float(value).is_integer() else f"{value:.1f}×"
        return f"{value:.2f}×"
    if unit in ("ms", "MB"):
        return f"{value:,.1f} {unit}"
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:,.0f} {unit}".strip()
    return f"{value:,.1f} {unit}".strip()


def scenario_result(results: Mapping[str, Any], name: str) -> tuple[Any, str | None, bool]:
    """(result, error, ran) for one scenario of the results dict."""
    entry = dig(results, "scenarios", name)
    if not isinstance(entry, Mapping):
        return None, None, False
    return entry.get("result"), entry.get("error"), True


# --------------------------------------------------------------------------- rows


def delivery_rows(delivery: Mapping[str, Any]) -> list[Row]:
    rows: list[Row] = []
    scenario = "1 delivery throughput"
    limit = dig(delivery, "loopback_limit", "requests_per_second")
    rows.append(
        Row(
            scenario,
            "loopback limit: bare aiohttp client, same body and receiver",
            number(limit),
            "req/s",
            detail=f"{dig(delivery, 'loopback_limit', 'concurrency')} in flight, "
            f"{dig(delivery, 'loopback_limit', 'body_bytes')} B body, "
            f"runs {dig(delivery, 'loopback_limit', 'runs')}",
        )
    )
    throughput = dig(delivery, "throughput") or {}

    def run_detail(run: Mapping[str, Any]) -> str:
        return (
            f"{format_value(number(run.get('events_per_second')), 'events/s')} vs "
            f"{format_value(number(run.get('loopback_limit_just_before')), 'req/s')} "
            f"just before; N={run.get('events')}; "
            f"{format_value(number(run.get('ratio_to_session_limit')), '×')} of the session's "
            f"limit; foreign CPU {run.get('foreign_cpu_share')}"
        )

    sqlite = throughput.get("sqlite_1_worker")
    if isinstance(sqlite, Mapping):
        rows.append(
            Row(
                scenario,
                "SQLite, 1 worker ÷ loopback limit",
                number(sqlite.get("ratio")),
                "×",
                GOAL_SQLITE_RATIO,
                run_detail(sqlite),
            )
        )
    postgres_runs = {
        name: run
        for name, run in throughput.items()
        if name.startswith("postgresql_") and isinstance(run, Mapping)
    }
    for _name, run in sorted(postgres_runs.items()):
        workers = run.get("workers")
        rows.append(
            Row(
                scenario,
                f"PostgreSQL, {workers} worker{'s' if workers != 1 else ''} ÷ loopback limit",
                number(run.get("ratio")),
                "×",
                detail=run_detail(run),
            )
        )
    best = best_postgres_run(delivery)
    if best is not None:
        rows.append(
            Row(
                scenario,
                "PostgreSQL, best set-up ÷ loopback limit",
                number(best.get("ratio")),
                "×",
                GOAL_POSTGRESQL_RATIO,
                f"{best.get('workers')} worker(s)",
            )
        )
    one = dig(throughput, "postgresql_1_workers", "events_per_second")
    two = dig(throughput, "postgresql_2_workers", "events_per_second")
    if one is not None or two is not None:
        rows.append(
            Row(
                "7 two workers vs one",
                "PostgreSQL: 2 workers ÷ 1 worker (events/s)",
                ratio(two, one),
                "×",
                detail=f"{format_value(number(two), 'events/s')} vs "
                f"{format_value(number(one), 'events/s')}; 2 cores: contention, not scale",
            )
        )

    latency = dig(delivery, "latency")
    if isinstance(latency, Mapping):
        detail = (
            f"at {format_value(number(latency.get('published_per_second')), 'events/s')} "
            f"(half the best), {latency.get('workers')} worker(s), "
            f"{latency.get('samples')} samples, "
            f"{latency.get('not_attempted_within_1_s')} not attempted within 1 s"
        )
        for name, goal in (("p50_ms", GOAL_LATENCY_P50_MS), ("p99_ms", GOAL_LATENCY_P99_MS)):
            rows.append(
                Row(
                    "3 latency (PostgreSQL)",
                    f"publish → first attempt, {name.split('_')[0]}",
                    number(latency.get(name)),
                    "ms",
                    goal,
                    detail,
                )
            )

    isolation = dig(delivery, "isolation")
    if isinstance(isolation, Mapping):
        rows.append(
            Row(
                "4 isolation (PostgreSQL)",
                "9 healthy targets' throughput with a hanging 10th ÷ without",
                number(isolation.get("ratio")),
                "×",
                GOAL_ISOLATION_RATIO,
                f"{isolation.get('healthy_events_per_second_with')} vs "
                f"{isolation.get('healthy_events_per_second_without')} events/s; "
                f"N={isolation.get('events_per_healthy_target')} per target",
            )
        )
        # Not produced by bench.delivery yet: the row says so rather than hiding the gap.
        rows.append(
            Row(
                "4 isolation (PostgreSQL)",
                "a fresh event's latency beside a target with a 100,000 backlog",
                number(isolation.get("fresh_event_latency_ms")),
                "ms",
            )
        )

    memory = dig(delivery, "memory")
    if isinstance(memory, Mapping):
        rows.append(
            Row(
                "5 scale: worker memory",
                "worker peak RSS with a backlog of due events (PostgreSQL)",
                number(memory.get("rss_mb_peak")),
                "MB",
                GOAL_WORKER_RSS_MB,
                f"N={memory.get('backlog_events')} due events; "
                f"{memory.get('delivered_while_sampled')} delivered in "
                f"{memory.get('sampled_seconds')} s sampled",
            )
        )
    return rows


def best_postgres_run(delivery: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The PostgreSQL run with the best ratio to the loopback limit measured just before it.

    Each run is compared with the limit taken seconds before it (the machine's load moves
    over a session), so the best set-up is the one with the best ratio, not the most events/s.
    """
    runs = [
        run
        for name, run in (dig(delivery, "throughput") or {}).items()
        if name.startswith("postgresql_")
        and isinstance(run, Mapping)
        and number(run.get("ratio")) is not None
    ]
    return max(runs, key=lambda run: run["ratio"]) if runs else None


def best_postgres_events_per_second(delivery: Mapping[str, Any]) -> float | None:
    rates = [
        number(run.get("events_per_second"))
        for name, run in (dig(delivery, "throughput") or {}).items()
        if name.startswith("postgresql_") and isinstance(run, Mapping)
    ]
    rates = [rate for rate in rates if rate is not None]
    return max(rates) if rates else None


def peer_rows(peer: Mapping[str, Any], delivery: Mapping[str, Any] | None) -> list[Row]:
    scenario = "2 the peer (dj-whisperer)"
    best = dig(peer, "best", "deliveries_per_second")
    figures = dig(peer, "deliveries_per_second") or {}
    shares = {
        run.get("config"): run.get("foreign_cpu_share")
        for run in dig(peer, "runs") or []
        if isinstance(run, Mapping)
    }
    all_configs = ", ".join(f"{name} {rate}" for name, rate in figures.items())
    rows = [
        Row(
            scenario,
            f"dj-whisperer + Celery + Redis, best pool ({dig(peer, 'best', 'config')})",
            number(best),
            "deliveries/s",
            detail=f"N={peer.get('n')}; all: {all_configs}; foreign CPU {shares}",
        )
    ]
    ours = best_postgres_events_per_second(delivery or {})
    rows.append(
        Row(
            scenario,
            "Ulak (PostgreSQL, best) ÷ the peer's best",
            ratio(ours, best),
            "×",
            GOAL_PEER_MULTIPLE,
            f"{format_value(ours, 'events/s')} ÷ {format_value(number(best), 'deliveries/s')}",
        )
    )
    return rows


def data_scale_rows(scale: Mapping[str, Any]) -> list[Row]:
    rows: list[Row] = []
    scenario = "5 scale of the data"
    sizes = dig(scale, "data_sets") or {}
    large = dig(sizes, "mostly_delivered", "events")
    for backend, figures in (dig(scale, "backends") or {}).items():
        if not isinstance(figures, Mapping):
            continue
        if figures.get("error"):
            rows.append(Row(scenario, f"{backend}: undelivered list", None, error=figures["error"]))
            continue
        ratios = figures.get("p95_ratio_mostly_delivered_over_baseline") or {}
        for page in ("first", "filtered", "deep"):
            large_p95 = dig(figures, "data_sets", "mostly_delivered", "pages", page, "p95_ms")
            small_p95 = dig(figures, "data_sets", "baseline", "pages", page, "p95_ms")
            rows.append(
                Row(
                    scenario,
                    f"{backend}: {page} page p95, {large:,} events ÷ 10,000 (10k undelivered)"
                    if isinstance(large, int)
                    else f"{backend}: {page} page p95 ratio",
                    number(ratios.get(page)),
                    "×",
                    GOAL_SCALE_RATIO,
                    f"{large_p95} ms vs {small_p95} ms",
                )
            )
        first_all = number(figures.get("all_undelivered_first_page_p95_ms"))
        rows.append(
            Row(
                scenario,
                f"{backend}: first page p95, "
                f"{format_value(number(dig(sizes, 'all_undelivered', 'events')), '')} "
                "undelivered (exact count)",
                first_all,
                "ms",
                GOAL_ALL_UNDELIVERED_FIRST_PAGE_MS if backend == "postgresql" else None,
            )
        )
    return rows


def publish_rows(publish: Mapping[str, Any]) -> list[Row]:
    rows: list[Row] = []
    scenario = "6 publishing"
    for backend in ("sqlite", "postgresql"):
        direct = dig(publish, "publish_many", backend) or {}
        for kind in ("status_event", "package_2kb"):
            figures = direct.get(kind)
            if not isinstance(figures, Mapping):
                continue
            rows.append(
                Row(
                    scenario,
                    f"{backend}: publish_many, {kind} ({figures.get('body_bytes')} B)",
                    number(figures.get("events_per_second_median")),
                    "events/s",
                    GOAL_PUBLISH_MANY,
                    f"{direct.get('events')} events in one transaction; "
                    f"median of {figures.get('runs')} runs",
                )
            )
        http = dig(publish, "http", backend)
        if isinstance(http, Mapping):
            rows.append(
                Row(
                    scenario,
                    f"{backend}: HTTP, one event per request",
                    number(http.get("best_single_requests_per_second")),
                    "req/s",
                    GOAL_HTTP_SINGLE,
                    f"{http.get('clients')} clients; best server: {http.get('best_single_server')}",
                )
            )
            rows.append(
                Row(
                    scenario,
                    f"{backend}: HTTP, 100 events per request",
                    number(http.get("best_batch_events_per_second")),
                    "events/s",
                    GOAL_HTTP_BATCH,
                    f"{http.get('clients')} clients; best server: {http.get('best_batch_server')}",
                )
            )
    commits = dig(publish, "publish_many", "postgresql", "raw_postgresql_commits")
    if isinstance(commits, Mapping):
        rows.append(
            Row(
                scenario,
                "postgresql: baseline, durable one-row commits (psycopg alone)",
                number(commits.get("commits_per_second")),
                "commits/s",
                detail=f"{commits.get('connections')} connections: the ceiling of one-event requests",
            )
        )
    for kind, fraction in (
        dig(publish, "publish_many_fraction_of_raw_sqlite_insert") or {}
    ).items():
        rows.append(
            Row(
                scenario,
                f"sqlite: publish_many ÷ raw sqlite3 executemany ({kind})",
                number(fraction),
                "×",
            )
        )
    return rows


def concurrency_rows(sweep: Mapping[str, Any]) -> list[Row]:
    series = concurrency_series(sweep)
    rows = []
    for name, points in series.items():
        if name == "loopback limit" or not points:
            continue
        level, best = max(points, key=lambda point: point[1])
        rows.append(
            Row(
                "1 throughput vs concurrency",
                f"{name}: best over target concurrency {', '.join(str(x) for x, _ in points)}",
                best,
                "events/s",
                detail=f"at ULAK_TARGET_CONCURRENCY={level}",
            )
        )
    return rows


def summarize(results: Mapping[str, Any]) -> list[Row]:
    """Every key figure of the results, with its goal and whether it is met."""
    rows: list[Row] = []
    delivery, delivery_error, delivery_ran = scenario_result(results, "delivery")
    builders = (
        ("delivery", lambda result: delivery_rows(result)),
        ("concurrency", concurrency_rows),
        ("peer", lambda result: peer_rows(result, delivery)),
        ("data_scale", data_scale_rows),
        ("publish", publish_rows),
    )
    for name, build in builders:
        result, error, ran = scenario_result(results, name)
        if not ran:
            continue
        if error or not isinstance(result, Mapping):
            rows.append(Row(name, "scenario", None, error=error or "no result"))
        if isinstance(result, Mapping):
            rows.extend(build(result))  # what a partly failed scenario did measure
    # In the order (1 to 7); a failed scenario's row, numberless, goes last.
    return sorted(rows, key=scenario_number)


def scenario_number(row: Row) -> int:
    first = row.scenario.split(" ", 1)[0]
    return int(first) if first.isdigit() else 99


def goal_counts(rows: Iterable[Row]) -> dict[str, int]:
    counts = {"met": 0, "missed": 0, "failed": 0, "not_measured": 0}
    for row in rows:
        if row.status == "met":
            counts["met"] += 1
        elif row.status == "MISSED":
            counts["missed"] += 1
        elif row.status == "FAILED":
            counts["failed"] += 1
        elif row.status == "not measured":
            counts["not_measured"] += 1
    return counts


# --------------------------------------------------------------------------- rendering

COLUMNS = ("Scenario", "Figure", "Value", "Goal", "Status")


def table_cells(row: Row) -> tuple[str, str, str, str, str]:
    value = row.error if row.error else format_value(row.value, row.unit)
    goal = row.goal.describe(row.unit) if row.goal else ""
    return (row.scenario, row.figure, value, goal, row.status)


def render_table(rows: Sequence[Row]) -> str:
    """A plain-text table for the terminal."""
    cells = [COLUMNS, *(table_cells(row) for row in rows)]
    widths = [min(70, max(len(line[index]) for line in cells)) for index in range(len(COLUMNS))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            (value if len(value) <= widths[i] else value[: widths[i] - 1] + "…").ljust(widths[i])
            for i, value in enumerate(values)
        ).rstrip()

    separator = "  ".join("-" * width for width in widths)
    counts = goal_counts(rows)
    footer = (
        f"goals: {counts['met']} met, {counts['missed']} missed"
        + (f", {counts['failed']} failed" if counts["failed"] else "")
        + (f", {counts['not_measured']} not measured" if counts["not_measured"] else "")
    )
    return "\n".join([line(COLUMNS), separator, *(line(c) for c in cells[1:]), footer])


def render_markdown(rows: Sequence[Row]) -> str:
    """The same table in Markdown, for docs/performance.md."""

    def escape(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "| " + " | ".join("---" for _ in COLUMNS) + " |",
    ]
    for row in rows:
        scenario, figure, value, goal, status = table_cells(row)
        if status in ("met", "MISSED"):
            status = f"**{status}**" if status == "MISSED" else status
        lines.append(
            "| " + " | ".join(escape(c) for c in (scenario, figure, value, goal, status)) + " |"
        )
    return "\n".join(lines)


def replace_marked_block(text: str, block: str) -> str:
    """``text`` with what lies between TABLE_START and TABLE_END replaced by ``block``.

    Raises ValueError when the markers are missing or out of order, so a page whose markers
    were edited away is not silently left stale.
    """
    start = text.find(TABLE_START)
    end = text.find(TABLE_END)
    if start < 0 or end < 0 or end < start:
        raise ValueError(f"the markers {TABLE_START} and {TABLE_END} are missing")
    return text[: start + len(TABLE_START)] + "\n" + block.strip("\n") + "\n" + text[end:]


# --------------------------------------------------------------------------- results file


def results_filename(when: datetime.datetime, quick: bool) -> str:
    """``2025-11-28T19-30-05Z.json`` (UTC); quick runs get a ``quick-`` prefix."""
    stamp = when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H-%M-%SZ")
    return f"{'quick-' if quick else ''}{stamp}.json"


def write_results(results: Mapping[str, Any], path: Path) -> Path:
    """Write the results as JSON (UTF-8, Turkish text kept readable), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(
        json.dumps(results, indent=2, ensure_ascii=False, sort_keys=False) + "\n",
        encoding="utf-8",
    )
    os.replace(temporary, path)
    return path


# --------------------------------------------------------------------------- chart

SERIES_OF_RUNS = {
    "sqlite_1_worker": "Ulak, SQLite, 1 worker",
    "postgresql_1_workers": "Ulak, PostgreSQL, 1 worker",
    "postgresql_2_workers": "Ulak, PostgreSQL, 2 workers",
}


def concurrency_series(sweep: Mapping[str, Any]) -> dict[str, list[tuple[int, float]]]:
    """Points (target concurrency, events/s) per set-up, and the loopback limit per level."""
    series: dict[str, list[tuple[int, float]]] = {name: [] for name in SERIES_OF_RUNS.values()}
    series["loopback limit"] = []
    for level in dig(sweep, "levels") or []:
        concurrency = dig(level, "target_concurrency")
        if not isinstance(concurrency, int):
            continue
        for key, name in SERIES_OF_RUNS.items():
            rate = number(dig(level, "throughput", key, "events_per_second"))
            if rate is not None:
                series[name].append((concurrency, rate))
        limit = number(dig(level, "loopback_limit", "requests_per_second"))
        if limit is not None:
            series["loopback limit"].append((concurrency, limit))
    return {name: sorted(points) for name, points in series.items() if points}


def peer_series(peer: Mapping[str, Any] | None) -> dict[str, list[tuple[int, float]]]:
    """The peer's deliveries/s per pool size, one series per pool kind (prefork, threads)."""
    series: dict[str, list[tuple[int, float]]] = {}
    for text, rate in (dig(peer, "deliveries_per_second") or {}).items():
        pool, _, rest = str(text).partition(":")
        size = rest.split(":", 1)[0]
        if number(rate) is None or not size.isdigit():
            continue
        series.setdefault(f"dj-whisperer, Celery {pool} pool", []).append((int(size), rate))
    return {name: sorted(points) for name, points in series.items()}


def draw_concurrency_chart(results: Mapping[str, Any], path: Path) -> Path:
    """Delivery throughput against concurrency, with the loopback limit, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.ticker
    from matplotlib import pyplot

    sweep, _, _ = scenario_result(results, "concurrency")
    peer, _, _ = scenario_result(results, "peer")
    ours = concurrency_series(sweep or {})
    limit = ours.pop("loopback limit", [])
    theirs = peer_series(peer)
    if not ours and not theirs:
        raise ValueError("no throughput figures to draw")

    figure, axes = pyplot.subplots(figsize=(9, 5.5), dpi=110)
    for name, points in ours.items():
        axes.plot(*zip(*points, strict=True), marker="o", label=name)
    for name, points in theirs.items():
        axes.plot(*zip(*points, strict=True), marker="s", linestyle="--", label=name)
    if limit:
        value = statistics.median(rate for _, rate in limit)
        axes.axhline(value, color="black", linestyle=":", label="loopback limit (median)")
        low, high = min(r for _, r in limit), max(r for _, r in limit)
        axes.axhspan(low, high, color="grey", alpha=0.15, label="loopback limit (range)")
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:,.0f}")
    axes.xaxis.set_major_formatter(plain)
    axes.yaxis.set_major_formatter(plain)
    axes.set_xlabel(
        "concurrency: Ulak's attempts in flight per target (ULAK_TARGET_CONCURRENCY);"
        "\nthe peer's Celery pool size"
    )
    axes.set_ylabel("deliveries per second (first to last delivery)")
    machine = dig(results, "machine") or {}
    events = dig(results, "n", "concurrency_events")
    axes.set_title(
        f"Delivery throughput against concurrency ({'quick run' if results.get('quick') else 'full run'}, "
        f"N={events}, {machine.get('cpu_cores')} cores)",
        fontsize=10,
    )
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    pyplot.close(figure)
    return path
