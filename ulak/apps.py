from __future__ import annotations

from django.apps import AppConfig


class UlakConfig(AppConfig):
    name = "ulak"
    verbose_name = "Ulak webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from ulak import checks  # noqa: F401  (registers the system checks)
