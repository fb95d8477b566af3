"""Ulak's API behaviour fixed on its views, whatever the host project's DRF settings.

In library mode the host's ``REST_FRAMEWORK`` may use sessions, another paginator or
another error format; Ulak's endpoints keep the contract's (token auth with 401, the
seed's pagination, ``{"code", "en"}`` errors) regardless.
"""

from __future__ import annotations

from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import filters, permissions
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer

from ulak.api.authentication import TokenAuthentication
from ulak.api.exceptions import handle_exception
from ulak.api.pagination import PageNumberPagination
from ulak.api.throttling import TokenRateThrottle


class UlakApiDefaults:
    authentication_classes = [TokenAuthentication]
    permission_classes = [permissions.IsAuthenticated]
    throttle_classes = [TokenRateThrottle]
    pagination_class = PageNumberPagination
    filter_backends = [DjangoFilterBackend, filters.OrderingFilter]
    renderer_classes = [JSONRenderer]
    parser_classes = [JSONParser]

    def get_exception_handler(self):
        return handle_exception
