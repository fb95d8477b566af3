"""API throttling per token (contract §6): off by default; with ``ULAK_THROTTLE_RATE`` set,
429 with ``Retry-After`` once a token has used its allowance."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from rest_framework.test import APIClient

from tests.conftest import client_for
from ulak.api.throttling import TokenRateThrottle, parse_rate

WEBHOOKS = "/api/v1/oms/settings/webhooks/"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def fresh_cache(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    """The throttle's clock, so a test can let time pass without sleeping."""
    fake = FakeClock()
    monkeypatch.setattr(TokenRateThrottle, "timer", staticmethod(fake))
    return fake


@pytest.mark.django_db
def test_off_by_default(settings, user_client):
    assert getattr(settings, "ULAK_THROTTLE_RATE", None) is None
    for _ in range(30):
        response = user_client.get(WEBHOOKS)
        assert response.status_code == 200
        assert "Retry-After" not in response.headers


@pytest.mark.django_db
def test_429_with_retry_after_once_the_allowance_is_used(settings, user_client, clock):
    settings.ULAK_THROTTLE_RATE = "3/minute"
    assert [user_client.get(WEBHOOKS).status_code for _ in range(3)] == [200, 200, 200]
    throttled = user_client.get(WEBHOOKS)
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "20"  # one request per 20 s after the burst
    assert throttled.json()["detail"].startswith("Request was throttled.")
    clock.now += 19
    assert user_client.get(WEBHOOKS).status_code == 429
    assert user_client.get(WEBHOOKS).headers["Retry-After"] == "1"
    clock.now += 1
    assert user_client.get(WEBHOOKS).status_code == 200
    assert user_client.get(WEBHOOKS).status_code == 429
    clock.now += 60  # a quiet minute gives the whole allowance back
    assert [user_client.get(WEBHOOKS).status_code for _ in range(4)] == [200, 200, 200, 429]


@pytest.mark.django_db
def test_each_token_has_its_own_allowance(settings, user, user_client, other_client, clock):
    settings.ULAK_THROTTLE_RATE = "2/second"
    assert [user_client.get(WEBHOOKS).status_code for _ in range(3)] == [200, 200, 429]
    assert [other_client.get(WEBHOOKS).status_code for _ in range(3)] == [200, 200, 429]
    second_token_of_alice = client_for(user)
    assert second_token_of_alice.get(WEBHOOKS).status_code == 200


@pytest.mark.django_db
def test_every_endpoint_is_throttled(settings, admin_client_api, clock):
    settings.ULAK_THROTTLE_RATE = "1/hour"
    assert admin_client_api.get("/whisperer/hooks/").status_code == 200
    for path in ["/whisperer/hooks/", WEBHOOKS, "/api/v1/oms/settings/webhook_events/"]:
        response = admin_client_api.get(path)
        assert response.status_code == 429, path
        assert response.headers["Retry-After"] == "3600"
    published = admin_client_api.post(
        "/api/v1/oms/events/", {"event_type": "package.created", "payload": {}}, format="json"
    )
    assert published.status_code == 429


@pytest.mark.django_db
def test_a_missing_token_is_still_401_not_429(settings, clock):
    settings.ULAK_THROTTLE_RATE = "1/hour"
    anonymous = APIClient()
    for _ in range(3):
        assert anonymous.get(WEBHOOKS).status_code == 401


@pytest.mark.parametrize(
    ("rate", "parsed"),
    [
        ("100/second", (100, 1.0)),
        ("100/s", (100, 1.0)),
        ("5/minute", (5, 60.0)),
        ("1000/hour", (1000, 3600.0)),
        ("10000/day", (10000, 86400.0)),
        ("50/10s", (50, 10.0)),
        (" 7 / 2min ", (7, 120.0)),
    ],
)
def test_rates(rate, parsed):
    assert parse_rate(rate) == parsed


@pytest.mark.parametrize("rate", ["", "100", "fast", "0/second", "10/0s", "10/fortnight", "-1/s"])
def test_bad_rates_name_the_setting(rate):
    with pytest.raises(ImproperlyConfigured, match="ULAK_THROTTLE_RATE"):
        parse_rate(rate)
