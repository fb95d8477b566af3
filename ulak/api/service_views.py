"""/healthz (open) and /metrics (token)."""

from __future__ import annotations

import datetime as dt
import json

from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.views import APIView

from ulak.api.defaults import UlakApiDefaults
from ulak.metrics import render_metrics
from ulak.models import WorkerHeartbeat

# A worker that has not written its heartbeat for this long is counted as gone.
HEARTBEAT_STALE_SECONDS = 30


def healthz(request):
    """Database reachable, and how many workers wrote a heartbeat lately."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        since = timezone.now() - dt.timedelta(seconds=HEARTBEAT_STALE_SECONDS)
        workers = WorkerHeartbeat.objects.filter(seen_at__gte=since).count()
    except Exception as error:  # noqa: BLE001 - any database failure is "unhealthy"
        return JsonResponse(
            {"status": "error", "database": str(error.__class__.__name__)}, status=503
        )
    return JsonResponse({"status": "ok", "database": "ok", "workers": workers})


class PrometheusRenderer(BaseRenderer):
    media_type = "text/plain"
    format = "txt"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, str) else json.dumps(data)


class MetricsView(UlakApiDefaults, APIView):
    """Prometheus metrics of every worker and of the queue (token required, contract §2)."""

    # Scrapers ask for text/plain; errors (401) are rendered as JSON text in the same type.
    renderer_classes = [PrometheusRenderer, JSONRenderer]

    @extend_schema(responses={(200, "text/plain"): str})
    def get(self, request):
        return HttpResponse(
            render_metrics(), content_type="text/plain; version=0.0.4; charset=utf-8"
        )
