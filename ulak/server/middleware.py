"""Browser middleware (sessions, CSRF, login, messages) for the pages a browser opens only.

The API authenticates every request by token (contract §2): sessions, CSRF cookies and
messages are never used under ``/api/``, yet running them cost about a tenth of a small
publish request. ``BrowserOnlyMiddleware`` runs its chain for every other path (the admin
above all) exactly as if the classes were listed in ``MIDDLEWARE`` at its place.

Only the standalone service uses it; in library mode the host project's ``MIDDLEWARE``
rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string

BROWSER_MIDDLEWARE = (
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
)
API_PREFIX = "/api/"


class BrowserOnlyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        handler = get_response
        instances = []
        for path in reversed(BROWSER_MIDDLEWARE):
            handler = import_string(path)(handler)
            instances.append(handler)
        self.browser_chain = handler
        # Django calls process_view of listed middleware itself; for the ones inside this
        # chain (CSRF's check lives there) this class passes the call on, in list order.
        self.view_hooks = [
            instance.process_view
            for instance in reversed(instances)
            if hasattr(instance, "process_view")
        ]

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith(API_PREFIX):
            return self.get_response(request)
        return self.browser_chain(request)

    def process_view(
        self, request: HttpRequest, view: Callable, args: Any, kwargs: Any
    ) -> HttpResponse | None:
        if request.path_info.startswith(API_PREFIX):
            return None
        for hook in self.view_hooks:
            response = hook(request, view, args, kwargs)
            if response is not None:
                return response
        return None
