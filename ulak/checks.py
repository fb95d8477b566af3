"""Django system checks: a bad setting is reported at start-up, not as a 500 later."""

from __future__ import annotations

from django.core import checks

from ulak import targets
from ulak.conf import setting


@checks.register(checks.Tags.security)
def check_allowed_networks(app_configs, **kwargs) -> list[checks.CheckMessage]:
    try:
        targets.parse_networks(setting("ULAK_ALLOWED_NETWORKS"))
    except ValueError as error:
        return [
            checks.Error(
                f"ULAK_ALLOWED_NETWORKS is not a list of CIDRs: {error}",
                hint="Use comma-separated networks such as 127.0.0.0/8,10.1.0.0/16.",
                id="ulak.E001",
            )
        ]
    return []
