from __future__ import annotations

from django.test import override_settings

from ulak.checks import check_allowed_networks


def test_a_bad_allowed_network_is_reported_at_start_up():
    with override_settings(ULAK_ALLOWED_NETWORKS="127.0.0.0/8,not-a-network"):
        errors = check_allowed_networks(None)
    assert [error.id for error in errors] == ["ulak.E001"]
    assert "not-a-network" in errors[0].msg


def test_good_allowed_networks_pass():
    with override_settings(ULAK_ALLOWED_NETWORKS="127.0.0.0/8,::1/128"):
        assert check_allowed_networks(None) == []
