"""/healthz (open) and /metrics (token)."""

from __future__ import annotations

import datetime as dt

from django.db import connection
from django.http import JsonResponse
from django.utils import timezone
from rest_framework.response import Response
from rest_framework.views import APIView

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


class MetricsView(APIView):
    """Placeholder until the metrics issue lands."""

    def get(self, request):
        return Response({"detail": "Metrics are not available yet."}, status=501)
