"""The Django project that hosts dj-whisperer for the peer benchmark (runs in the peer venv).

The Celery app must exist, and be Celery's current app, before Django imports whisperer:
``whisperer.utils.LockTask`` subclasses ``celery.current_app.Task`` at import time, and its
tasks use ``@current_app.task``.
"""

from __future__ import annotations

from peer_site.celery_app import app as celery_app

__all__ = ["celery_app"]
