"""Settings of the standalone Ulak service.

SQLite under ``ULAK_HOME`` (default ``./.ulak``) unless ``DATABASE_URL`` names a
PostgreSQL server. Everything a deployment changes comes from the environment.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url

ULAK_HOME = Path(os.environ.get("ULAK_HOME", ".ulak")).resolve()


def _read_or_create_secret_key() -> str:
    """A per-installation SECRET_KEY kept in ULAK_HOME, so tokens and secrets survive restarts."""
    if os.environ.get("ULAK_SECRET_KEY"):
        return os.environ["ULAK_SECRET_KEY"]
    ULAK_HOME.mkdir(parents=True, exist_ok=True)
    path = ULAK_HOME / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        key = secrets.token_urlsafe(50)
        # O_EXCL: two processes starting together agree on the first key written.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as handle:
            handle.write(key)
        return key


SECRET_KEY = _read_or_create_secret_key()
DEBUG = os.environ.get("ULAK_DEBUG", "") == "1"
ALLOWED_HOSTS = [h for h in os.environ.get("ULAK_ALLOWED_HOSTS", "*").split(",") if h]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "ulak",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Sessions, CSRF, login and messages, for every path but /api/ (token-only).
    "ulak.server.middleware.BrowserOnlyMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# The admin's checks look for the session, login and message middleware in MIDDLEWARE by
# name; BrowserOnlyMiddleware runs them for the admin's paths.
SILENCED_SYSTEM_CHECKS = ["admin.E408", "admin.E409", "admin.E410"]

ROOT_URLCONF = "ulak.server.urls"
WSGI_APPLICATION = "ulak.server.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database() -> dict:
    url = os.environ.get("DATABASE_URL")
    if url:
        database = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
        return database
    ULAK_HOME.mkdir(parents=True, exist_ok=True)
    # ULAK_SQLITE_PATH lets a process (a test's worker, say) open another database file.
    path = os.environ.get("ULAK_SQLITE_PATH") or str(ULAK_HOME / "ulak.sqlite3")
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        # The test database is a file too: worker processes started by tests must see it.
        "TEST": {"NAME": str(ULAK_HOME / "test.sqlite3")},
        # Keep connections across requests: opening one costs ~1 ms, and closing the last
        # one checkpoints and removes the WAL, which took a quarter of each API request.
        "CONN_MAX_AGE": None,
        "OPTIONS": {
            # WAL lets the API read while the worker writes; IMMEDIATE avoids the
            # upgrade deadlock of deferred transactions; the busy timeout waits for locks.
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": (
                "PRAGMA journal_mode=WAL;"
                "PRAGMA synchronous=NORMAL;"
                "PRAGMA busy_timeout=20000;"
                "PRAGMA foreign_keys=ON;"
            ),
        },
    }


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = str(ULAK_HOME / "static")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["ulak.api.authentication.TokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "ulak.api.pagination.PageNumberPagination",
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "ulak.api.exceptions.handle_exception",
    # A no-op unless ULAK_THROTTLE_RATE is set (contract §6).
    "DEFAULT_THROTTLE_CLASSES": ["ulak.api.throttling.TokenRateThrottle"],
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Ulak",
    "DESCRIPTION": "Outgoing webhooks for order management systems.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

ULAK_ALLOWED_NETWORKS = os.environ.get("ULAK_ALLOWED_NETWORKS", "")
# The worker's tuning (ulak.conf.DEFAULTS) may come from the environment too.
for _name in (
    "ULAK_LEASE_SECONDS",
    "ULAK_WORKER_BATCH_SIZE",
    "ULAK_WORKER_CONCURRENCY",
    "ULAK_TARGET_CONCURRENCY",
    "ULAK_POLL_INTERVAL",
    "ULAK_DRAIN_SECONDS",
    "ULAK_HEARTBEAT_SECONDS",
    "ULAK_DEFAULT_TIMEOUT",
):
    if os.environ.get(_name):
        globals()[_name] = float(os.environ[_name])
# API throttling per token, e.g. "100/second"; unset = off.
ULAK_THROTTLE_RATE = os.environ.get("ULAK_THROTTLE_RATE") or None
ULAK_PREPARED_STATEMENTS = os.environ.get("ULAK_PREPARED_STATEMENTS", "1").lower() not in (
    "0",
    "false",
    "no",
)
# Keys encrypting webhook secrets, newest first (comma-separated); unset = SECRET_KEY.
ULAK_SECRET_KEYS = [
    key.strip() for key in os.environ.get("ULAK_SECRET_KEYS", "").split(",") if key.strip()
]
ULAK_EVENT_TYPES = [t for t in os.environ.get("ULAK_EVENT_TYPES", "").split(",") if t]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("ULAK_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
