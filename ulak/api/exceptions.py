"""Errors as JSON (contract §2): validation ``{"field": [...]}``, coded ``{"code", "en"}``,
``{"detail"}`` otherwise; never a 500 for bad input."""

from __future__ import annotations

from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.views import exception_handler


class CodedError(APIException):
    """An error with a stable code, answered as ``{"code": ..., "en": ...}``."""

    status_code = status.HTTP_406_NOT_ACCEPTABLE

    def __init__(self, code: str, message: str, status_code: int | None = None):
        super().__init__(detail=message, code=code)
        self.error_code = code
        self.message = message
        if status_code is not None:
            self.status_code = status_code


WEBHOOK_ALREADY_REGISTERED = ("webhook_100_2", "Webhook already registered")
EVENT_ALREADY_DELIVERED = ("event_100_3", "Event already delivered")
EVENT_IN_RETRY_PROCESS = ("event_100_6", "Event is still in retry process")


def handle_exception(exc, context):
    if isinstance(exc, RecursionError):
        # Only input nested absurdly deep gets here (json.loads of "[[[[..."): bad input, a 400.
        exc = ParseError("JSON parse error - the document is nested too deeply.")
    response = exception_handler(exc, context)
    if response is not None and isinstance(exc, CodedError):
        response.data = {"code": exc.error_code, "en": exc.message}
    return response
