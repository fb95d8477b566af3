"""Settings of the peer project: dj-whisperer 0.5.3 as the OMS configures it.

Ports and tuning come from the environment, set by bench/peer/runner.py.
"""

from __future__ import annotations

import os

SECRET_KEY = "peer-benchmark-only"
DEBUG = False  # DEBUG=True would keep every SQL query in memory
ALLOWED_HOSTS = ["127.0.0.1"]
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
ROOT_URLCONF = "peer_site.urls"
MIDDLEWARE: list[str] = []

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "whisperer",
    "peer_events",
]

# CONN_MAX_AGE: persistent connections (the OMS's setting) unless a config asks otherwise.
_conn_max_age = os.environ.get("PEER_CONN_MAX_AGE", "600")
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("PEER_DATABASE_NAME", "whisperer"),
        "USER": "postgres",
        "HOST": "127.0.0.1",
        "PORT": os.environ.get("PEER_POSTGRES_PORT", "5432"),
        "CONN_MAX_AGE": None if _conn_max_age == "none" else int(_conn_max_age),
    }
}

_redis = "redis://127.0.0.1:{}".format(os.environ.get("PEER_REDIS_PORT", "6379"))
# whisperer's LockTask takes its lock through django_redis.
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": _redis + "/1",
        "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
    }
}

CELERY_BROKER_URL = _redis + "/0"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_PREFETCH_MULTIPLIER = int(os.environ.get("PEER_PREFETCH_MULTIPLIER", "4"))
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

WHISPERER_REQUEST_TIMEOUT = 10

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
