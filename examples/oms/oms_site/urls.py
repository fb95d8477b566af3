from __future__ import annotations

from django.urls import include, path

urlpatterns = [
    # Ulak's API: /api/v1/oms/settings/..., /api/v1/oms/events/, /whisperer/...
    path("", include("ulak.urls")),
]
