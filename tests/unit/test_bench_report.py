"""The benchmark's report: goals judged right, the table, the results file, the chart's data.

Pure functions on a sample results dict shaped like the scenario modules' JSON, so a
renamed key or a wrong comparison shows here and not as a silently wrong published table.
"""

from __future__ import annotations

import datetime
import json

import pytest

from bench import report
from bench.__main__ import collect_sizes, parse_arguments, parse_json_output


def sample_results() -> dict:
    delivery = {
        "loopback_limit": {
            "requests_per_second": 5518.1,
            "concurrency": 64,
            "body_bytes": 8192,
            "runs": [5518.1],
            "requests": 16565,
        },
        "throughput": {
            "sqlite_1_worker": {
                "workers": 1,
                "events": 3000,
                "events_per_second": 1698.8,
                "loopback_limit_just_before": 4140.1,
                "ratio": 0.41,
                "ratio_to_session_limit": 0.308,
                "foreign_cpu_share": 0.67,
            },
            "postgresql_1_workers": {
                "workers": 1,
                "events": 3000,
                "events_per_second": 2559.4,
                "loopback_limit_just_before": 4032.6,
                "ratio": 0.635,
            },
            # More events/s, but against a higher limit measured just before it.
            "postgresql_2_workers": {
                "workers": 2,
                "events": 3000,
                "events_per_second": 2723.3,
                "loopback_limit_just_before": 7005.3,
                "ratio": 0.389,
            },
            "postgresql_best_ratio": 0.389,
        },
        "latency": {
            "samples": 2814,
            "p50_ms": 16.42,
            "p99_ms": 50.0,
            "published_per_second": 701.9,
            "workers": 2,
            "not_attempted_within_1_s": 0,
        },
        "isolation": {
            "ratio": 0.753,
            "healthy_events_per_second_with": 842.3,
            "healthy_events_per_second_without": 1119.3,
            "events_per_healthy_target": 400,
        },
        "memory": {"backlog_events": 100000, "rss_mb_peak": 86.8, "sampled_seconds": 8.0},
    }
    peer = {
        "n": 300,
        "deliveries_per_second": {"prefork:2": 42.6, "threads:8": 32.9, "prefork:4": None},
        "best": {"config": "prefork:2", "deliveries_per_second": 42.6},
        "runs": [{"config": "prefork:2", "foreign_cpu_share": 0.5}],
    }

    def scale_backend(first_ratio: float, first_all_ms: float) -> dict:
        pages = {"first": {"p95_ms": 15.0}, "filtered": {"p95_ms": 12.0}, "deep": {"p95_ms": 13.0}}
        return {
            "data_sets": {"baseline": {"pages": pages}, "mostly_delivered": {"pages": pages}},
            "p95_ratio_mostly_delivered_over_baseline": {
                "first": first_ratio,
                "filtered": 1.5,
                "deep": 0.9,
            },
            "all_undelivered_first_page_p95_ms": first_all_ms,
        }

    data_scale = {
        "data_sets": {
            "baseline": {"events": 10000, "undelivered": 10000},
            "mostly_delivered": {"events": 1000000, "undelivered": 10000},
            "all_undelivered": {"events": 1000000, "undelivered": 1000000},
        },
        "samples_per_page": 40,
        "backends": {
            "sqlite": scale_backend(0.8, 350.0),
            "postgresql": scale_backend(1.51, 199.0),
        },
    }
    sweep = {
        "levels": [
            {
                "target_concurrency": 64,
                "loopback_limit": {"requests_per_second": 5000.0},
                "throughput": {
                    "sqlite_1_worker": {"events": 500, "events_per_second": 3800.0},
                    "postgresql_2_workers": {"events": 500, "events_per_second": 3000.0},
                },
            },
            {
                "target_concurrency": 8,
                "loopback_limit": {"requests_per_second": 4000.0},
                "throughput": {"sqlite_1_worker": {"events": 500, "events_per_second": 1000.0}},
            },
        ]
    }
    return {
        "quick": True,
        "machine": {"cpu_cores": 2, "cpu_model": "AMD EPYC"},
        "n": {"concurrency_events": 500},
        "scenarios": {
            "delivery": {"result": delivery},
            "concurrency": {"result": sweep},
            "peer": {"result": peer},
            "data_scale": {"result": data_scale},
            "publish": {"error": "bench.publish exited with code 1"},
        },
    }


def rows_by_figure(results: dict) -> dict[str, report.Row]:
    return {row.figure: row for row in report.summarize(results)}


def test_goals_compare_in_their_direction_and_the_threshold_itself_meets_them():
    at_least = report.Goal(0.6)
    at_most = report.Goal(50, at_least=False)
    assert at_least.is_met_by(0.6) and at_least.is_met_by(0.61)
    assert not at_least.is_met_by(0.59)
    assert at_most.is_met_by(50) and at_most.is_met_by(10)
    assert not at_most.is_met_by(50.01)
    assert at_least.describe("×") == "≥ 0.60×"
    assert at_most.describe("ms") == "≤ 50.0 ms"
    assert report.Goal(30).describe("×") == "≥ 30×"


def test_delivery_ratios_are_judged_against_the_goals_of_each_database():
    rows = rows_by_figure(sample_results())
    sqlite = rows["SQLite, 1 worker ÷ loopback limit"]
    assert (sqlite.value, sqlite.goal, sqlite.status) == (0.41, report.GOAL_SQLITE_RATIO, "MISSED")
    assert "1,699 events/s" in sqlite.detail and "N=3000" in sqlite.detail
    # The best PostgreSQL set-up is the best ratio to its own loopback limit (1 worker,
    # 0.635), not the run with the most events/s (2 workers, 0.389 against a higher limit).
    best = rows["PostgreSQL, best set-up ÷ loopback limit"]
    assert (best.value, best.status) == (0.635, "met")
    assert rows["PostgreSQL, 2 workers ÷ loopback limit"].status == "-"
    two_vs_one = rows["PostgreSQL: 2 workers ÷ 1 worker (events/s)"]
    assert two_vs_one.value == pytest.approx(2723.3 / 2559.4)
    assert two_vs_one.goal is None


def test_latency_isolation_and_memory_goals():
    rows = rows_by_figure(sample_results())
    assert rows["publish → first attempt, p50"].status == "MISSED"  # 16.42 > 10 ms
    assert rows["publish → first attempt, p99"].status == "met"  # exactly 50 ms
    isolation = rows["9 healthy targets' throughput with a hanging 10th ÷ without"]
    assert (isolation.value, isolation.status) == (0.753, "MISSED")
    memory = rows["worker peak RSS with a backlog of due events (PostgreSQL)"]
    assert (memory.value, memory.status) == (86.8, "met")
    # A figure no module produces yet shows as such instead of vanishing from the table.
    fresh = rows["a fresh event's latency beside a target with a 100,000 backlog"]
    assert fresh.status == "not measured"


def test_the_peer_multiple_uses_ulaks_best_postgresql_rate():
    rows = rows_by_figure(sample_results())
    multiple = rows["Ulak (PostgreSQL, best) ÷ the peer's best"]
    assert multiple.value == pytest.approx(2723.3 / 42.6)
    assert multiple.status == "met"
    peer = rows["dj-whisperer + Celery + Redis, best pool (prefork:2)"]
    assert peer.value == 42.6 and "threads:8 32.9" in peer.detail

    results = sample_results()
    del results["scenarios"]["delivery"]
    multiple = rows_by_figure(results)["Ulak (PostgreSQL, best) ÷ the peer's best"]
    assert multiple.value is None and multiple.status == "not measured"


def test_data_scale_rows_per_backend_with_the_postgresql_only_goal():
    rows = [row for row in report.summarize(sample_results()) if row.scenario.startswith("5 scale")]
    by_figure = {row.figure: row for row in rows}
    first_pg = by_figure["postgresql: first page p95, 1,000,000 events ÷ 10,000 (10k undelivered)"]
    assert (first_pg.value, first_pg.status) == (1.51, "MISSED")
    filtered = by_figure[
        "postgresql: filtered page p95, 1,000,000 events ÷ 10,000 (10k undelivered)"
    ]
    assert filtered.status == "met"  # exactly 1.5
    all_pg = by_figure["postgresql: first page p95, 1,000,000 undelivered (exact count)"]
    assert (all_pg.value, all_pg.status) == (199.0, "met")
    all_sqlite = by_figure["sqlite: first page p95, 1,000,000 undelivered (exact count)"]
    assert all_sqlite.goal is None and all_sqlite.status == "-"


def test_publish_rows_judge_every_backend_and_payload():
    results = sample_results()
    results["scenarios"]["publish"] = {
        "result": {
            "publish_many": {
                "sqlite": {
                    "events": 10000,
                    "status_event": {
                        "body_bytes": 418,
                        "runs": 2,
                        "events_per_second_median": 9999,
                    },
                },
                "postgresql": {
                    "events": 10000,
                    "status_event": {
                        "body_bytes": 418,
                        "runs": 2,
                        "events_per_second_median": 15068,
                    },
                    "raw_postgresql_commits": {"connections": 8, "commits_per_second": 3297},
                },
            },
            "http": {
                "sqlite": {
                    "clients": 8,
                    "best_single_requests_per_second": 1000,
                    "best_batch_events_per_second": 7364,
                }
            },
        }
    }
    statuses = {
        row.figure: row.status
        for row in report.summarize(results)
        if row.scenario == "6 publishing"
    }
    assert statuses["sqlite: publish_many, status_event (418 B)"] == "MISSED"
    assert statuses["postgresql: publish_many, status_event (418 B)"] == "met"
    assert statuses["sqlite: HTTP, one event per request"] == "met"
    assert statuses["sqlite: HTTP, 100 events per request"] == "MISSED"
    assert statuses["postgresql: baseline, durable one-row commits (psycopg alone)"] == "-"


def test_a_failed_scenario_is_one_failed_row_and_a_skipped_one_has_none():
    results = sample_results()
    del results["scenarios"]["data_scale"]
    rows = report.summarize(results)
    failed = [row for row in rows if row.status == "FAILED"]
    assert [(row.scenario, row.error) for row in failed] == [
        ("publish", "bench.publish exited with code 1")
    ]
    assert not any(row.scenario.startswith("5 scale of the data") for row in rows)
    assert report.goal_counts(rows)["failed"] == 1

    # A sweep with a failed level: the failure shows, and so do the levels measured.
    results["scenarios"]["concurrency"]["error"] = "level 256: exited with code 1"
    rows = report.summarize(results)
    assert [row.error for row in rows if row.status == "FAILED"] == [
        "level 256: exited with code 1",
        "bench.publish exited with code 1",
    ]
    assert any(row.figure.startswith("Ulak, SQLite, 1 worker: best") for row in rows)


def test_the_table_shows_values_goals_statuses_and_counts():
    rows = report.summarize(sample_results())
    table = report.render_table(rows)
    lines = table.splitlines()
    assert lines[0].split() == ["Scenario", "Figure", "Value", "Goal", "Status"]
    sqlite_line = next(line for line in lines if "SQLite, 1 worker ÷ loopback limit" in line)
    assert "0.41×" in sqlite_line and "≥ 0.50×" in sqlite_line and sqlite_line.endswith("MISSED")
    counts = report.goal_counts(rows)
    assert lines[-1] == (
        f"goals: {counts['met']} met, {counts['missed']} missed, 1 failed, "
        f"{counts['not_measured']} not measured"
    )
    assert counts["met"] >= 5 and counts["missed"] >= 4
    # In the order, whatever order the modules ran in; the failed one last.
    numbers = [report.scenario_number(row) for row in rows]
    assert numbers == sorted(numbers) and numbers[0] == 1
    assert rows[-1].status == "FAILED"


def test_the_markdown_table_has_one_line_per_row_and_escapes_pipes():
    rows = [
        report.Row("1 a", "x | y", 0.7, "×", report.Goal(0.6)),
        report.Row("1 a", "z", 0.5, "×", report.Goal(0.6)),
    ]
    markdown = report.render_markdown(rows).splitlines()
    assert markdown[0] == "| Scenario | Figure | Value | Goal | Status |"
    assert markdown[2] == "| 1 a | x \\| y | 0.70× | ≥ 0.60× | met |"
    assert markdown[3].endswith("| **MISSED** |")
    assert len(markdown) == 4


def test_the_docs_table_is_replaced_between_its_markers_only():
    page = f"# Performance\n\nintro\n{report.TABLE_START}\nold table\n{report.TABLE_END}\n\nafter\n"
    updated = report.replace_marked_block(page, "| new |\n")
    assert updated == (
        f"# Performance\n\nintro\n{report.TABLE_START}\n| new |\n{report.TABLE_END}\n\nafter\n"
    )
    assert report.replace_marked_block(updated, "| newer |").count("| ne") == 1
    with pytest.raises(ValueError):
        report.replace_marked_block("# no markers\n", "| new |")


def test_results_are_named_by_utc_time_and_quick_runs_are_marked():
    istanbul = datetime.timezone(datetime.timedelta(hours=3))
    when = datetime.datetime(2025, 3, 1, 15, 4, 5, tzinfo=istanbul)
    assert report.results_filename(when, quick=False) == "2025-03-01T12-04-05Z.json"
    assert report.results_filename(when, quick=True) == "quick-2025-03-01T12-04-05Z.json"


def test_results_are_written_as_readable_json_without_a_leftover_temporary(tmp_path):
    results = sample_results()
    results["note"] = "İstanbul Ümraniye Depo"
    path = report.write_results(results, tmp_path / "results" / "run.json")
    text = path.read_text(encoding="utf-8")
    assert "İstanbul Ümraniye Depo" in text  # not \u0130 escapes
    assert json.loads(text) == results
    assert [p.name for p in path.parent.iterdir()] == ["run.json"]


def test_the_chart_series_are_sorted_by_concurrency_with_the_loopback_limit():
    sweep = sample_results()["scenarios"]["concurrency"]["result"]
    series = report.concurrency_series(sweep)
    assert series["Ulak, SQLite, 1 worker"] == [(8, 1000.0), (64, 3800.0)]
    assert series["Ulak, PostgreSQL, 2 workers"] == [(64, 3000.0)]
    assert series["loopback limit"] == [(8, 4000.0), (64, 5000.0)]
    assert "Ulak, PostgreSQL, 1 worker" not in series
    peer = sample_results()["scenarios"]["peer"]["result"]
    assert report.peer_series(peer) == {
        "dj-whisperer, Celery prefork pool": [(2, 42.6)],
        "dj-whisperer, Celery threads pool": [(8, 32.9)],
    }
    rows = report.concurrency_rows(sweep)
    assert [(row.figure.split(":")[0], row.value) for row in rows] == [
        ("Ulak, SQLite, 1 worker", 3800.0),
        ("Ulak, PostgreSQL, 2 workers", 3000.0),
    ]


def test_values_are_formatted_for_their_unit():
    assert report.format_value(None, "ms") == "-"
    assert report.format_value(0.635, "×") == "0.64×"
    assert report.format_value(63.93, "×") == "63.9×"
    assert report.format_value(2559.4, "events/s") == "2,559 events/s"
    assert report.format_value(42.6, "deliveries/s") == "42.6 deliveries/s"
    assert report.format_value(16.42, "ms") == "16.4 ms"


def test_the_orchestrator_reads_a_scenarios_json_and_its_arguments():
    assert parse_json_output('{\n  "a": 1\n}\n') == {"a": 1}
    assert parse_json_output('warming up\n{\n  "a": {"b": 2}\n}\n') == {"a": {"b": 2}}
    options = parse_arguments(["--quick", "--only", "publish,delivery", "data-scale", "delivery"])
    assert options.quick
    assert options.scenarios == ["delivery", "data_scale", "publish"]  # the run's own order
    assert parse_arguments([]).scenarios == list(
        ("delivery", "concurrency", "peer", "data_scale", "publish")
    )
    with pytest.raises(SystemExit):
        parse_arguments(["--only", "everything"])


def test_the_sizes_of_every_scenario_are_collected():
    sizes = collect_sizes(sample_results()["scenarios"])
    assert sizes["delivery_backlog_events"] == 3000
    assert sizes["latency_samples"] == 2814
    assert sizes["memory_backlog_events"] == 100000
    assert sizes["concurrency_levels"] == [64, 8]
    assert sizes["peer_events_per_config"] == 300
    assert sizes["data_scale_data_sets"]["mostly_delivered"]["events"] == 1000000
    assert "publish_many_events" not in sizes  # the publish scenario failed
