"""URLs to include in a host Django project: ``path("", include("ulak.urls"))``."""

from __future__ import annotations

from ulak.api.urls import urlpatterns

__all__ = ["urlpatterns"]
