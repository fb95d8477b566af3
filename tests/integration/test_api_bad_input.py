"""Bad input answers a clear 4xx naming the field and the reason, never a 500 (contract §2)."""

from __future__ import annotations

import json

import pytest

from ulak.models import Webhook, WebhookEvent

WEBHOOKS = "/api/v1/oms/settings/webhooks/"
UNDELIVERED = "/api/v1/oms/settings/undelivered_webhooks/"
EVENTS = "/api/v1/oms/settings/webhook_events/"
FIXED = {"choice": "fixed", "kwargs": {"seconds": 60}}


@pytest.fixture(autouse=True)
def fast_settings(settings):
    settings.ULAK_ALLOWED_NETWORKS = "127.0.0.0/8,::1/128"
    # Users are made per test; the default password hashing costs 0.3 s each.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def webhook_body(**overrides) -> dict:
    body = {
        "retry_countdown_config": FIXED,
        "target_url": "http://127.0.0.1:9/hook",
        "event_type": "package.created",
    }
    body.update(overrides)
    return body


def post_raw(client, body: bytes, content_type: str = "application/json"):
    return client.generic("POST", WEBHOOKS, body, content_type=content_type)


# --- request bodies ----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [b"{", b'{"target_url": }', b"{'single': 'quotes'}", b'{"a": NaN}', b"nul\x00"],
)
def test_malformed_json_answers_400(user_client, body):
    response = post_raw(user_client, body)
    assert response.status_code == 400
    assert response.json()["detail"].startswith("JSON parse error")
    assert Webhook.objects.count() == 0


@pytest.mark.django_db
def test_non_utf8_body_answers_400(user_client):
    body = json.dumps(webhook_body(target_url="http://127.0.0.1:9/x")).encode()
    body = body.replace(b"/x", b"/\xff\xfe")
    response = post_raw(user_client, body)
    assert response.status_code == 400
    assert "utf-8" in response.json()["detail"].lower()


@pytest.mark.django_db
def test_latin1_declared_body_is_read_as_declared(user_client):
    # A charset the client declares is honoured; the text is valid then.
    body = json.dumps(webhook_body(target_url="http://127.0.0.1:9/caf\u00e9"), ensure_ascii=False)
    response = post_raw(user_client, body.encode("latin-1"), "application/json; charset=latin-1")
    assert response.status_code == 201
    assert response.json()["target_url"] == "http://127.0.0.1:9/caf\u00e9"


@pytest.mark.django_db
def test_deeply_nested_json_answers_400(user_client):
    response = post_raw(user_client, b"[" * 100_000 + b"]" * 100_000)
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize("body", [b"[]", b'"text"', b"42", b"null"])
def test_body_that_is_not_an_object_answers_400(user_client, body):
    response = post_raw(user_client, body)
    assert response.status_code == 400
    assert list(response.json()) == ["non_field_errors"]


@pytest.mark.django_db
def test_other_content_types_answer_415(user_client):
    response = post_raw(user_client, b"target_url=x", "application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert "detail" in response.json()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("is_active", "maybe"),
        ("is_active", None),
        ("event_type", ["package.created"]),
        ("event_type", {"type": "package.created"}),
        ("event_type", "p" * 125),
        ("target_url", None),
        ("target_url", ""),
        ("target_url", {"url": "x"}),
        ("target_url", "http://127.0.0.1:9/\u0000"),
        ("secret_key", ["s"]),
        ("callback", ["os.system"]),
        ("callback", "c" * 65),
        ("config", {"note": "nul \u0000 inside"}),
        ("config", {"note\u0000": "key with nul"}),
    ],
)
def test_wrong_field_values_answer_400_naming_the_field(user_client, field, value):
    response = user_client.post(WEBHOOKS, webhook_body(**{field: value}), format="json")
    assert response.status_code == 400, response.content
    assert list(response.json()) == [field]
    assert Webhook.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("target_url", "http://127.0.0.1:9/@"),
        ("additional_headers", {"X-A": "@"}),
        ("config", {"note": ["nested", {"deep": "@"}]}),
        ("config", {"@": 1}),
    ],
)
def test_lone_surrogates_answer_400(user_client, field, value):
    # JSON may spell a lone surrogate ("\\ud800"); it cannot be stored as UTF-8.
    body = json.dumps(webhook_body(**{field: value})).replace("@", "\\ud800").encode()
    response = post_raw(user_client, body)
    assert response.status_code == 400, response.content
    assert list(response.json()) == [field]
    assert Webhook.objects.count() == 0


@pytest.mark.django_db
def test_event_lists_are_read_only(user, user_client):
    webhook = Webhook.objects.create(
        owner=user, retry_countdown_config=FIXED, target_url="http://x/", event_type="a.b"
    )
    event = WebhookEvent.objects.create(webhook=webhook, request_payload="{}")
    assert user_client.post(EVENTS, {}, format="json").status_code == 405
    assert user_client.put(f"{EVENTS}{event.id}/", {}, format="json").status_code == 405
    assert user_client.delete(f"{UNDELIVERED}{event.id}/").status_code == 405
    assert WebhookEvent.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["abc", "99999999999999999999999", "-1"])
def test_bad_ids_in_the_path_answer_404(user_client, key):
    for path in (WEBHOOKS, UNDELIVERED, EVENTS, "/whisperer/hooks/"):
        response = user_client.get(f"{path}{key}/")
        assert response.status_code == 404, path
        assert list(response.json()) == ["detail"]


# --- query strings -----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        (WEBHOOKS, "is_active=maybe", "is_active"),
        (WEBHOOKS, "event_type=%00", "event_type"),
        (WEBHOOKS, "ordering=secret_key", "ordering"),
        (WEBHOOKS, "ordering=owner__password", "ordering"),
        (UNDELIVERED, "webhook=abc", "webhook"),
        (UNDELIVERED, "webhook=1.5", "webhook"),
        (UNDELIVERED, "webhook=99999999999999999999999", "webhook"),
        (UNDELIVERED, "object_id=-1", "object_id"),
        (UNDELIVERED, "object_id=1e3", "object_id"),
        (UNDELIVERED, "content_type=package", "content_type"),
        (UNDELIVERED, "uuid=not-a-uuid", "uuid"),
        (UNDELIVERED, "response_http_status=99999", "response_http_status"),
        (UNDELIVERED, "retry_count__gte=many", "retry_count__gte"),
        (UNDELIVERED, "is_exhausted=perhaps", "is_exhausted"),
        (UNDELIVERED, "created_date=yesterday", "created_date"),
        (UNDELIVERED, "created_date=2023-13-45", "created_date"),
        (UNDELIVERED, "created_date__gt=2023-10-12T25:00:00Z", "created_date__gt"),
        (UNDELIVERED, "created_date__lte=0001-01-01T00:00:00%2B05:00", "created_date__lte"),
        (UNDELIVERED, "created_date__lt=12/10/2023", "created_date__lt"),
        (UNDELIVERED, "event_type=a%00b", "event_type"),
        (UNDELIVERED, "ordering=request_payload", "ordering"),
        (EVENTS, "delivered=yes", "delivered"),
        (EVENTS, "ordering=webhook__secret_key", "ordering"),
    ],
)
def test_bad_filter_values_answer_400_naming_the_filter(user, user_client, path, query, field):
    response = user_client.get(f"{path}?{query}")
    assert response.status_code == 400, response.content
    body = response.json()
    assert list(body) == [field]
    assert isinstance(body[field][0], str) and body[field][0]


@pytest.mark.django_db
def test_unknown_ordering_names_the_choices(user_client):
    message = user_client.get(f"{EVENTS}?ordering=-nope").json()["ordering"][0]
    assert '"-nope"' in message
    assert "retry_count" in message


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["page=abc", "page=0", "page=999", "page=-1"])
def test_bad_page_answers_404_with_a_message(user_client, query):
    response = user_client.get(f"{UNDELIVERED}?{query}")
    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid page."}


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["page_size=abc", "page_size=-5", "page_size=0"])
def test_unusable_page_size_falls_back_to_the_default(user, user_client, query):
    response = user_client.get(f"{UNDELIVERED}?{query}")
    assert response.status_code == 200
    assert response.json()["count"] == 0


@pytest.mark.django_db
@pytest.mark.parametrize("path", [WEBHOOKS, UNDELIVERED, EVENTS])
def test_percent_encoded_non_utf8_value_answers_400(user_client, path):
    response = user_client.get(f"{path}?event_type=%FF%FE")
    assert response.status_code == 400
    assert response.json() == {"event_type": ["Not valid UTF-8."]}


@pytest.mark.django_db
def test_percent_encoded_non_utf8_name_answers_400(user_client):
    response = user_client.get(f"{UNDELIVERED}?%FF%FE=1")
    assert response.status_code == 400
    assert response.json() == {"query_string": ["A parameter name is not valid UTF-8."]}


@pytest.mark.django_db
def test_raw_non_utf8_bytes_in_the_query_string_answer_400(user_client):
    # WSGI hands raw bytes over as latin-1 text; these are the bytes FF FE, unescaped.
    response = user_client.get(UNDELIVERED, QUERY_STRING="event_type=\xff\xfe")
    assert response.status_code == 400
    assert response.json() == {"event_type": ["Not valid UTF-8."]}


@pytest.mark.django_db
def test_utf8_query_values_are_fine(user_client):
    response = user_client.get(f"{UNDELIVERED}?event_type=%C4%B0STANBUL")  # "İSTANBUL"
    assert response.status_code == 200


@pytest.mark.django_db
def test_bad_query_without_token_still_answers_401(client):
    response = client.get(f"{UNDELIVERED}?event_type=%FF")
    assert response.status_code == 401
