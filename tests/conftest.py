"""Shared fixtures: users and tokens, API clients, the database in use, subprocess env."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from django.db import connection

from ulak.models import ApiToken

SHARED = Path(__file__).resolve().parents[2] / "shared"
REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    """A fast password hasher: the default one costs a third of a second per test user."""
    from django.conf import settings

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def pytest_collection_modifyitems(config, items):
    """Skip ``postgres_only`` tests on SQLite, saying why."""
    from django.conf import settings

    vendor_is_postgres = "postgresql" in settings.DATABASES["default"]["ENGINE"]
    skip = pytest.mark.skip(reason="needs PostgreSQL (this run is on SQLite)")
    for item in items:
        if "postgres_only" in item.keywords and not vendor_is_postgres:
            item.add_marker(skip)


@pytest.fixture
def is_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture
def example_response() -> dict:
    """The seed's example response (shared/spec), or the copy kept in the tests."""
    for path in (
        SHARED / "spec" / "example-undelivered-response.json",
        REPO / "tests" / "data" / "example-undelivered-response.json",
    ):
        if path.exists():
            return json.loads(path.read_text(encoding="utf-8"))
    raise FileNotFoundError("example-undelivered-response.json")


def make_user(username: str, *, superuser: bool = False):
    from django.contrib.auth import get_user_model

    User = get_user_model()
    if superuser:
        return User.objects.create_superuser(username=username, password="pw-" + username)
    return User.objects.create_user(username=username, password="pw-" + username)


@pytest.fixture
def loopback_allowed(settings):
    """Targets on loopback allowed: the tests' receivers listen there (contract §6)."""
    from tests.receivers import LOOPBACK_NETWORKS

    settings.ULAK_ALLOWED_NETWORKS = LOOPBACK_NETWORKS


@pytest.fixture
def receiver():
    """A real HTTP receiver on loopback (tests.receivers.Receiver), stopped after the test."""
    from tests.receivers import Receiver

    with Receiver() as running:
        yield running


@pytest.fixture
def superuser(db):
    return make_user("root", superuser=True)


@pytest.fixture
def user(db):
    return make_user("alice")


@pytest.fixture
def other_user(db):
    return make_user("bob")


def client_for(user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + ApiToken.create_for(user))
    return client


@pytest.fixture
def admin_client_api(superuser):
    """An API client authenticated with a superuser's token."""
    return client_for(superuser)


@pytest.fixture
def user_client(user):
    return client_for(user)


@pytest.fixture
def other_client(other_user):
    return client_for(other_user)


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """Environment for a child process (``ulak worker``) that must use this test's database.

    The test must use ``django_db(transaction=True)`` so the child sees committed rows.
    """
    env = dict(os.environ)
    name = connection.settings_dict["NAME"]
    if connection.vendor == "postgresql":
        url = os.environ["DATABASE_URL"]
        env["DATABASE_URL"] = url.rsplit("/", 1)[0] + "/" + name
    else:
        env.pop("DATABASE_URL", None)
        env["ULAK_SQLITE_PATH"] = str(name)
    env["DJANGO_SETTINGS_MODULE"] = "ulak.server.settings"
    env.setdefault("ULAK_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
    return env
