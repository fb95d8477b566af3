"""The ``ulak`` command (contract §7).

``ulak serve`` runs migrations, the API server and one delivery worker; ``ulak api`` and
``ulak worker`` run the parts alone. Any other subcommand is the Django management
command of that name with Ulak's settings (``ulak migrate``, ``ulak shell -c ...``).
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
FIRST_SUPERUSER = "admin"

USAGE = """usage: ulak <command> [options]

commands:
  serve     migrations, the API server and a delivery worker, on one machine
  api       the API server alone (--host, --port, --workers)
  worker    a delivery worker alone
  token     create or revoke API tokens (ulak token create --username U [--superuser])
  events    list or retry events (ulak events list --undelivered)
  purge     delete old delivered events (ulak purge --older-than DAYS)
  demo      a live demonstration with local receivers
  <other>   any Django management command with Ulak's settings (migrate, shell, ...)
"""


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ulak.server.settings")
    import django

    django.setup()


def run_django_command(argv: Sequence[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ulak.server.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(["ulak", *argv])


def say(message: str) -> None:
    """Print and flush at once: the output may go to a file that someone is reading."""
    print(message, flush=True)


def migrate() -> None:
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", interactive=False, verbosity=0)
    if connection.vendor == "sqlite":
        # SQLite has no statistics until ANALYZE runs; without them it picks the plain
        # webhook index over the partial undelivered one. A bounded sample keeps it fast.
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA analysis_limit=1000")
            cursor.execute("ANALYZE")


def ensure_first_superuser() -> tuple[str, str] | None:
    """Create the first superuser and its token once; return (token, password) the first time."""
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from ulak.models import ApiToken

    User = get_user_model()
    with transaction.atomic():
        if User.objects.filter(is_superuser=True).exists():
            return None
        password = secrets.token_urlsafe(12)
        user = User.objects.create_superuser(username=FIRST_SUPERUSER, password=password)
        return ApiToken.create_for(user), password


def api_command(host: str, port: int, workers: int, threads: int) -> list[str]:
    """The granian command line for the API (a real server, not runserver).

    Granian's HTTP side is Rust: on this 2-core machine it spent about half of gunicorn's
    CPU per small request (gthread: ~3.1 ms, granian: ~1.5 ms, measured with the same
    Django app), which is what one-event publishing is bound by. It streams request bodies,
    so Ulak's own size limits still answer 413 before a large body is read.
    """
    return [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "wsgi",
        "ulak.server.wsgi:application",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--blocking-threads",
        str(threads),
        "--no-ws",
        "--workers-kill-timeout",
        "10",
        "--log-level",
        "warning",
    ]


def parse_server_options(argv: Sequence[str], name: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"ulak {name}")
    parser.add_argument("--host", default=os.environ.get("ULAK_HOST", DEFAULT_HOST))
    parser.add_argument("--port", type=int, default=int(os.environ.get("ULAK_PORT", DEFAULT_PORT)))
    parser.add_argument(
        "--workers",
        type=int,
        default=_int_from_environment("ULAK_API_WORKERS"),
        help="API processes (default 1 on SQLite, 2 on PostgreSQL)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=_int_from_environment("ULAK_API_THREADS"),
        help="threads per API process (default 2 on SQLite, 4 on PostgreSQL)",
    )
    return parser.parse_args(list(argv))


def _int_from_environment(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value else None


def fill_server_defaults(options: argparse.Namespace) -> None:
    """Processes and threads for the database in use (after Django is set up).

    SQLite has one writer at a time: a second API process makes every request re-read the
    pages the other one changed, and each thread contends for the GIL and the write lock.
    In bench.publish one process with one thread served the most one-event requests
    (1,020 and 1,271 req/s in two full runs), with two threads 70-80% of that; two
    processes did not do better. Two threads is the default so that one slow request does
    not stop the others. PostgreSQL requests mostly wait on the server, so more of them in
    flight help.
    """
    from django.db import connection

    sqlite = connection.vendor == "sqlite"
    if options.workers is None:
        options.workers = 1 if sqlite else 2
    if options.threads is None:
        options.threads = 2 if sqlite else 4


def serve_api(argv: Sequence[str]) -> int:
    options = parse_server_options(argv, "api")
    setup_django()
    fill_server_defaults(options)
    migrate()
    say(f"Ulak API on http://{options.host}:{options.port}/")
    command = api_command(options.host, options.port, options.workers, options.threads)
    os.execv(command[0], command)
    return 0  # not reached


def serve_all(argv: Sequence[str]) -> int:
    """API + worker as child processes; Ctrl-C or SIGTERM stops both cleanly."""
    options = parse_server_options(argv, "serve")
    setup_django()
    fill_server_defaults(options)
    from django.conf import settings

    migrate()
    first = ensure_first_superuser()
    base = f"http://{options.host}:{options.port}"
    database = settings.DATABASES["default"]
    where = database["NAME"] if database["ENGINE"].endswith("sqlite3") else "PostgreSQL"
    say("Ulak is starting")
    say(f"  API:            {base}/api/v1/oms/settings/undelivered_webhooks/")
    say(f"  API docs:       {base}/api/docs/")
    say(f"  Admin:          {base}/admin/")
    say(f"  Data:           {where}")
    if first is not None:
        token, password = first
        say(f"  Admin login:    {FIRST_SUPERUSER} / {password}")
        say(f"Token: {token}")
    else:
        say(
            "  Token:          printed the first time; make another with `ulak token create --username admin`"
        )
    say(
        f'  Try:            curl -H "Authorization: Token <token>" {base}/api/v1/oms/settings/undelivered_webhooks/'
    )

    children = [
        subprocess.Popen(api_command(options.host, options.port, options.workers, options.threads)),
        subprocess.Popen([sys.executable, "-m", "ulak.cli", "worker"]),
    ]
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    status = 0
    while not stopping:
        for child in children:
            code = child.poll()
            if code is not None:
                logger.error("a child process (pid %s) stopped with status %s", child.pid, code)
                status = code or 1
                stopping = True
        time.sleep(0.2)
    say("Ulak is stopping")
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    for child in children:
        try:
            child.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    say("Ulak stopped")
    return status


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(USAGE, end="")
        return 0
    command, rest = argv[0], argv[1:]
    if command == "serve":
        return serve_all(rest)
    if command == "api":
        return serve_api(rest)
    if command == "demo":
        # Before Django reads its settings: the demo gets its own data directory.
        from ulak.management.commands.demo import prepare_environment

        prepare_environment(rest)
    run_django_command(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
