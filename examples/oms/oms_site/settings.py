"""Settings of the example OMS: a plain Django project with Ulak as one of its apps.

The database is SQLite in ``OMS_DATA_DIR`` (default ``examples/oms/.data``). The lines that
matter for Ulak are marked "Ulak:".
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("OMS_DATA_DIR", BASE_DIR / ".data"))
DATA_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = os.environ.get("OMS_SECRET_KEY", "only-for-the-example-never-in-production")
DEBUG = os.environ.get("OMS_DEBUG", "") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "django_filters",  # Ulak: its API filters events and webhooks with django-filter
    "ulak",  # Ulak: models, the API, `manage.py worker`, `manage.py token`, ...
    "packages",
]

# DRF authenticates API requests itself (Ulak's token), so no session middleware is needed.
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]

ROOT_URLCONF = "oms_site.urls"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(DATA_DIR / "oms.sqlite3"),
        "OPTIONS": {
            # The web process and `manage.py worker` write to the same file: WAL lets them,
            # IMMEDIATE avoids lock upgrades that fail, the timeout waits for the lock.
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=20000;",
        },
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "Europe/Istanbul"

# Ulak: its API answers as the contract says with these DRF defaults (token auth, its
# pagination and error format). A project with other defaults keeps them for its own views.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["ulak.api.authentication.TokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "ulak.api.pagination.PageNumberPagination",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "ulak.api.exceptions.handle_exception",
    "UNAUTHENTICATED_USER": None,
}

# Ulak: targets on this machine are refused unless allowed (contract §6); the example's
# receiver runs on 127.0.0.1, so allow loopback when asked to.
ULAK_ALLOWED_NETWORKS = os.environ.get("ULAK_ALLOWED_NETWORKS", "")
# Ulak: on SQLite the worker polls for new events; a short interval keeps the example snappy.
ULAK_POLL_INTERVAL = float(os.environ.get("ULAK_POLL_INTERVAL", "0.25"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("OMS_LOG_LEVEL", "WARNING")},
}
