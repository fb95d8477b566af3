"""POST /api/v1/oms/events/ (contract §5). Placeholder until the publishing issue lands."""

from __future__ import annotations

from rest_framework.response import Response
from rest_framework.views import APIView


class PublishView(APIView):
    def post(self, request):
        return Response({"detail": "Publishing is not available yet."}, status=501)
