"""`ulak api` / `ulak serve`: the API server's processes and threads follow the database."""

from __future__ import annotations

from django.db import connection

from ulak.cli import api_command, fill_server_defaults, parse_server_options


def test_defaults_follow_the_database(monkeypatch):
    monkeypatch.delenv("ULAK_API_WORKERS", raising=False)
    monkeypatch.delenv("ULAK_API_THREADS", raising=False)
    options = parse_server_options([], "api")
    fill_server_defaults(options)
    expected = (1, 2) if connection.vendor == "sqlite" else (2, 4)
    assert (options.workers, options.threads) == expected


def test_environment_and_flags_win_over_the_defaults(monkeypatch):
    monkeypatch.setenv("ULAK_API_WORKERS", "3")
    monkeypatch.delenv("ULAK_API_THREADS", raising=False)
    options = parse_server_options(["--threads", "5"], "serve")
    fill_server_defaults(options)
    assert (options.workers, options.threads) == (3, 5)
    flagged = parse_server_options(["--workers", "4"], "api")
    fill_server_defaults(flagged)
    assert flagged.workers == 4


def test_the_api_runs_on_granian_with_those_numbers():
    command = api_command("0.0.0.0", 8123, 3, 5)
    assert command[1:3] == ["-m", "granian"]
    pairs = dict(zip(command[3::1], command[4::1], strict=False))
    assert pairs["--interface"] == "wsgi"
    assert pairs["--host"] == "0.0.0.0"
    assert pairs["--port"] == "8123"
    assert pairs["--workers"] == "3"
    assert pairs["--blocking-threads"] == "5"
    assert "ulak.server.wsgi:application" in command
