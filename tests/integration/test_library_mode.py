"""Ulak's endpoints keep the contract whatever the host project's DRF settings are."""

from __future__ import annotations

import pytest
from django.test import override_settings

HOST_SETTINGS = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_PAGINATION_CLASS": None,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.BrowsableAPIRenderer"],
}


@pytest.mark.django_db
def test_host_drf_settings_do_not_change_ulaks_endpoints(client, user_client):
    with override_settings(REST_FRAMEWORK=HOST_SETTINGS):
        anonymous = client.get("/api/v1/oms/settings/undelivered_webhooks/")
        assert anonymous.status_code == 401
        assert anonymous.headers["WWW-Authenticate"] == "Token"
        listed = user_client.get("/api/v1/oms/settings/undelivered_webhooks/")
        assert listed.status_code == 200
        assert listed.headers["Content-Type"] == "application/json"
        assert set(listed.json()) == {"count", "next", "previous", "results"}
        not_a_publisher = user_client.post("/api/v1/oms/events/", {}, format="json")
        assert not_a_publisher.status_code == 403


@pytest.mark.django_db
def test_healthz_and_metrics_come_with_the_library_urls(admin_client_api):
    from django.urls import reverse

    assert reverse("healthz") == "/healthz"
    assert admin_client_api.get("/metrics").status_code == 200
