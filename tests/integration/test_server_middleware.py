"""The standalone service's middleware: sessions, CSRF, login and messages for the admin and
other browser pages, nothing of them for the token-only API."""

from __future__ import annotations

import pytest
from django.http import HttpResponse
from django.test import Client, RequestFactory

from tests.conftest import make_user
from ulak.models import ApiToken
from ulak.server.middleware import BrowserOnlyMiddleware


def test_admin_login_still_needs_the_csrf_token(db):
    make_user("root", superuser=True)
    strict = Client(enforce_csrf_checks=True)
    refused = strict.post("/admin/login/", {"username": "root", "password": "pw-root"})
    assert refused.status_code == 403
    assert b"CSRF" in refused.content

    page = strict.get("/admin/login/")
    token = page.cookies["csrftoken"].value
    accepted = strict.post(
        "/admin/login/",
        {"username": "root", "password": "pw-root", "csrfmiddlewaretoken": token},
    )
    assert accepted.status_code == 302
    assert "sessionid" in accepted.cookies
    assert strict.get("/admin/").status_code == 200


def test_api_requests_skip_sessions_and_csrf(db, client):
    user = make_user("publisher", superuser=True)
    key = ApiToken.create_for(user)
    response = client.post(
        "/api/v1/oms/events/",
        {"event_type": "package.created", "payload": {"number": "PKG-1"}},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {key}",
    )
    assert response.status_code == 202
    assert "sessionid" not in response.cookies
    assert "csrftoken" not in response.cookies
    assert "Cookie" not in response.get("Vary", "")


@pytest.mark.parametrize(
    ("path", "browser"),
    [("/api/v1/oms/events/", False), ("/api/docs/", False), ("/admin/", True), ("/", True)],
)
def test_only_browser_paths_get_a_session_and_a_user(db, path, browser):
    seen = {}

    def view(request):
        seen["session"] = hasattr(request, "session")
        seen["user"] = hasattr(request, "user")
        seen["messages"] = hasattr(request, "_messages")
        return HttpResponse()

    middleware = BrowserOnlyMiddleware(view)
    middleware(RequestFactory().get(path))
    assert seen == {"session": browser, "user": browser, "messages": browser}


def test_csrf_check_runs_for_browser_paths_only(db):
    middleware = BrowserOnlyMiddleware(lambda request: HttpResponse())

    def posted(path):
        request = RequestFactory().post(path, {"a": "b"})
        request._dont_enforce_csrf_checks = False
        middleware(request)  # process_request of the chain: session, user, CSRF cookie
        return middleware.process_view(request, lambda request: None, (), {})

    refused = posted("/admin/login/")
    assert refused is not None and refused.status_code == 403
    assert posted("/api/v1/oms/events/") is None
