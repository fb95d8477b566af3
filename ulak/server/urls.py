from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from ulak.api import service_views
from ulak.server.static import serve_static

urlpatterns = [
    path("", include("ulak.urls")),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("healthz", service_views.healthz, name="healthz"),
    path("metrics", service_views.MetricsView.as_view(), name="metrics"),
    re_path(r"^static/(?P<path>.+)$", serve_static, name="static"),
]
