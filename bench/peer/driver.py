"""The peer benchmark's driver: runs in the peer's virtualenv, next to dj-whisperer.

    driver.py setup --receiver-url URL   migrate, create the user and the webhook
    driver.py run --n N --receiver-url URL
        empty the tables, then publish N events with whisperer's own
        ``deliver_event(<8 KB dict>, event_type)`` (what the OMS calls) while the Celery
        worker started by the bench runs, and wait until all N are delivered.

Each prints one JSON object on stdout. ``PYTHONPATH`` must hold bench/peer/project and the
repository root (for bench.payload); the environment carries the ports (peer_site.settings).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request
from importlib import metadata
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peer_site.settings")

PEER_PACKAGES = (
    "dj-whisperer",
    "Django",
    "djangorestframework",
    "celery",
    "kombu",
    "billiard",
    "redis",
    "django-redis",
    "psycopg",
    "requests",
    "urllib3",
)


def setup_django() -> None:
    import django

    django.setup()
    import peer_site
    from whisperer.tasks import deliver_event_task

    # The task must be bound to our app (and so to our broker), see peer_site/__init__.py.
    if deliver_event_task.app is not peer_site.celery_app:
        raise RuntimeError("whisperer's task is bound to another Celery app")


def fetch_one(sql: str) -> tuple:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()


def versions() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in PEER_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    found["python"] = sys.version.split()[0]
    found["postgresql"] = fetch_one("SHOW server_version")[0]
    return found


def command_setup(options: argparse.Namespace) -> dict[str, Any]:
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    from django.contrib.auth import get_user_model
    from whisperer.models import Webhook

    from bench.payload import EVENT_TYPE

    user, _ = get_user_model().objects.get_or_create(username="bench")
    Webhook.objects.filter(user=user).delete()
    # A fixed countdown as the OMS configures it; the fast receiver never fails, so no
    # event is retried in this benchmark. The secret makes whisperer sign every body.
    webhook = Webhook.objects.create(
        user=user,
        target_url=options.receiver_url.rstrip("/") + "/hook",
        event_type=EVENT_TYPE,
        retry_countdown_config={"choice": "fixed", "kwargs": {"seconds": 60}},
        secret_key="peer-benchmark-secret",
    )
    return {"webhook_id": webhook.pk, "target_url": webhook.target_url, "versions": versions()}


def receiver(receiver_url: str, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(receiver_url.rstrip("/") + path, timeout=10) as answer:
        return json.loads(answer.read())


def command_run(options: argparse.Namespace) -> dict[str, Any]:
    from django.db import connection
    from whisperer.tasks import deliver_event

    from bench.payload import EVENT_TYPE, build_package_payload

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE whisperer_webhookevent, whisperer_eventqueue RESTART IDENTITY")
        # Start every configuration with no dirty pages left from the previous one.
        cursor.execute("CHECKPOINT")
    receiver(options.receiver_url, "/reset")
    payload = build_package_payload()
    count = options.n

    started = time.time()
    for index in range(count):
        # A distinct package id per event, as a real backlog would have.
        deliver_event(dict(payload, id=payload["id"] + index), EVENT_TYPE)
    enqueued = time.time()

    delivered = 0
    last_progress = time.time()
    finished = None
    while True:
        now_delivered = fetch_one("SELECT count(*) FROM whisperer_webhookevent WHERE delivered")[0]
        now = time.time()
        if now_delivered >= count:
            finished = now
            delivered = now_delivered
            break
        if now_delivered != delivered:
            delivered, last_progress = now_delivered, now
        if now - last_progress > options.stall_timeout or now - started > options.timeout:
            break
        time.sleep(0.05)

    rows, failed, retried = fetch_one(
        "SELECT count(*), count(*) FILTER (WHERE NOT delivered),"
        " count(*) FILTER (WHERE retry_count > 1) FROM whisperer_webhookevent"
    )
    received = receiver(options.receiver_url, "/stats")
    result: dict[str, Any] = {
        "n": count,
        "completed": finished is not None,
        "delivered": delivered,
        "event_rows": rows,
        "undelivered_rows": failed,
        "retried_rows": retried,
        "receiver_posts": received["count"],
        "enqueue_seconds": round(enqueued - started, 3),
        "enqueue_per_second": round(count / (enqueued - started), 1),
    }
    if finished is not None:
        result["seconds"] = round(finished - started, 3)
        result["deliveries_per_second"] = round(count / (finished - started), 1)
        # The receiver's own clock: first POST to last POST (a check on the DB polling).
        if received["first_at"] and received["last_at"] and count > 1:
            result["receiver_span_seconds"] = round(received["last_at"] - started, 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    setup = commands.add_parser("setup")
    setup.add_argument("--receiver-url", required=True)
    run = commands.add_parser("run")
    run.add_argument("--receiver-url", required=True)
    run.add_argument("--n", type=int, required=True)
    run.add_argument("--timeout", type=float, default=900.0)
    run.add_argument("--stall-timeout", type=float, default=60.0)
    options = parser.parse_args()
    setup_django()
    result = command_setup(options) if options.command == "setup" else command_run(options)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
