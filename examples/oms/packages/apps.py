from __future__ import annotations

from django.apps import AppConfig


class PackagesConfig(AppConfig):
    name = "packages"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from packages.events import register_events

        register_events()
