"""URLs to include in a host Django project: ``path("", include("ulak.urls"))``."""

from __future__ import annotations

from django.urls import path

from ulak.api import service_views
from ulak.api.urls import urlpatterns as api_urlpatterns

urlpatterns = [
    *api_urlpatterns,
    path("healthz", service_views.healthz, name="healthz"),
    path("metrics", service_views.MetricsView.as_view(), name="metrics"),
]
