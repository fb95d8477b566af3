"""The Celery app of the peer project; tells the bench when a worker is ready."""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peer_site.settings")

app = Celery("peer_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.set_current()


@worker_ready.connect
def write_ready_file(**kwargs: object) -> None:
    # The bench waits for this file rather than guessing how long a pool takes to start.
    path = os.environ.get("PEER_READY_FILE")
    if path:
        Path(path).write_text(str(os.getpid()))
