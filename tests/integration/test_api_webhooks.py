"""Webhook CRUD (contract §1, §2, §4): shape, validation, 406 duplicates, soft delete, filters."""

from __future__ import annotations

import base64
import re

import pytest
from rest_framework.test import APIClient

from ulak import events, targets
from ulak.models import Webhook

WEBHOOKS = "/api/v1/oms/settings/webhooks/"
WEBHOOK_KEYS = [
    "id",
    "retry_countdown_config",
    "created_date",
    "modified_date",
    "target_url",
    "is_active",
    "secret_key",
    "event_type",
    "callback",
    "additional_headers",
    "config",
]
SEED_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
DUPLICATE = {"code": "webhook_100_2", "en": "Webhook already registered"}
FIXED = {"choice": "fixed", "kwargs": {"seconds": 60}}


@pytest.fixture(autouse=True)
def loopback_targets_allowed(settings):
    """Targets in these tests are loopback addresses: no DNS, nothing contacted."""
    settings.ULAK_ALLOWED_NETWORKS = "127.0.0.0/8,::1/128"
    # Users are made per test; the default password hashing costs 0.3 s each.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def webhook_body(**overrides) -> dict:
    body = {
        "retry_countdown_config": FIXED,
        "target_url": "http://127.0.0.1:9/hooks/orders",
        "event_type": "package.created",
    }
    body.update(overrides)
    return body


def create(client: APIClient, **overrides):
    return client.post(WEBHOOKS, webhook_body(**overrides), format="json")


def targets_are_checked() -> bool:
    """False while ulak.targets is the stub that accepts everything."""
    try:
        targets.check_target_url("ftp://127.0.0.1/", resolve=lambda host: [], allowed_networks=())
    except targets.TargetRefused:
        return True
    return False


# --- shape ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_create_answers_the_webhook_in_the_seeds_shape(user, user_client):
    response = create(user_client, additional_headers={"X-Shop": "1"}, config={"region": "eu"})

    assert response.status_code == 201
    body = response.json()
    assert list(body) == WEBHOOK_KEYS
    assert body["retry_countdown_config"] == FIXED
    assert body["target_url"] == "http://127.0.0.1:9/hooks/orders"
    assert body["is_active"] is True
    assert body["secret_key"] is None
    assert body["callback"] is None
    assert body["additional_headers"] == {"X-Shop": "1"}
    assert body["config"] == {"region": "eu"}
    assert SEED_DATETIME.match(body["created_date"])
    assert SEED_DATETIME.match(body["modified_date"])
    webhook = Webhook.objects.get(id=body["id"])
    assert webhook.owner == user
    assert "owner" not in body


@pytest.mark.django_db
def test_datetimes_keep_six_digits_when_microseconds_are_zero(user, user_client):
    import datetime as dt

    webhook_id = create(user_client).json()["id"]
    Webhook.objects.filter(id=webhook_id).update(
        created_date=dt.datetime(2022, 4, 15, 13, 40, 22, tzinfo=dt.UTC)
    )
    body = user_client.get(f"{WEBHOOKS}{webhook_id}/").json()
    assert body["created_date"] == "2022-04-15T13:40:22.000000Z"


@pytest.mark.django_db
def test_defaults_for_optional_fields(user_client):
    body = create(user_client).json()
    assert body["additional_headers"] == {}
    assert body["config"] == {}


# --- secret_key -------------------------------------------------------------------------


@pytest.mark.django_db
def test_secret_is_masked_in_every_answer(user_client):
    response = create(user_client, secret_key="my-very-secret-ab12")
    assert response.json()["secret_key"] == "****ab12"
    webhook_id = response.json()["id"]

    assert user_client.get(f"{WEBHOOKS}{webhook_id}/").json()["secret_key"] == "****ab12"
    assert user_client.get(WEBHOOKS).json()["results"][0]["secret_key"] == "****ab12"
    # Stored in full (and encrypted at rest by the model).
    assert Webhook.objects.get(id=webhook_id).secret_key == "my-very-secret-ab12"


@pytest.mark.django_db
@pytest.mark.parametrize("secret", ["", None])
def test_empty_secret_is_shown_as_it_is(user_client, secret):
    assert create(user_client, secret_key=secret).json()["secret_key"] == secret


@pytest.mark.django_db
def test_generate_makes_a_whsec_secret_shown_once(user_client):
    response = create(user_client, secret_key="generate")

    assert response.status_code == 201
    secret = response.json()["secret_key"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 24
    webhook_id = response.json()["id"]
    assert Webhook.objects.get(id=webhook_id).secret_key == secret
    assert user_client.get(f"{WEBHOOKS}{webhook_id}/").json()["secret_key"] == "****" + secret[-4:]
    # A second webhook gets a different secret.
    other = create(user_client, secret_key="generate", target_url="http://127.0.0.1:9/b")
    assert other.json()["secret_key"] != secret


@pytest.mark.django_db
def test_generate_on_update_rotates_the_secret_and_shows_it_once(user_client):
    webhook_id = create(user_client, secret_key="old-secret-0000").json()["id"]

    response = user_client.patch(
        f"{WEBHOOKS}{webhook_id}/", {"secret_key": "generate"}, format="json"
    )

    assert response.status_code == 200
    secret = response.json()["secret_key"]
    assert secret.startswith("whsec_")
    assert Webhook.objects.get(id=webhook_id).secret_key == secret
    assert user_client.get(f"{WEBHOOKS}{webhook_id}/").json()["secret_key"] == "****" + secret[-4:]


@pytest.mark.django_db
def test_sending_the_mask_back_keeps_the_secret(user_client):
    body = create(user_client, secret_key="keep-me-safe-9876").json()
    webhook_id = body.pop("id")

    response = user_client.put(f"{WEBHOOKS}{webhook_id}/", body, format="json")

    assert response.status_code == 200
    assert Webhook.objects.get(id=webhook_id).secret_key == "keep-me-safe-9876"


@pytest.mark.django_db
def test_secret_longer_than_124_is_refused(user_client):
    response = create(user_client, secret_key="s" * 125)
    assert response.status_code == 400
    assert list(response.json()) == ["secret_key"]


# --- retry_countdown_config (contract §4) ----------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("config", "errors"),
    [
        ({"choice": "weekly", "kwargs": {}}, {"choice": ['"weekly" is not a valid choice.']}),
        ({"choice": "fixed", "kwargs": {}}, {"kwargs": {"seconds": ["This field is required."]}}),
        (
            {"choice": "fixed", "kwargs": {"seconds": -1}},
            {"kwargs": {"seconds": ["Ensure this value is greater than or equal to 0."]}},
        ),
        (
            {"choice": "fixed", "kwargs": {"seconds": "soon"}},
            {"kwargs": {"seconds": ["A valid integer is required."]}},
        ),
        (
            {"choice": "fixed", "kwargs": {"seconds": 1.5}},
            {"kwargs": {"seconds": ["A valid integer is required."]}},
        ),
        (
            {"choice": "linear", "kwargs": {"limit": 10}},
            {"kwargs": {"base": ["This field is required."]}},
        ),
        (
            {"choice": "linear", "kwargs": {"base": 1, "limit": -5}},
            {"kwargs": {"limit": ["Ensure this value is greater than or equal to 0."]}},
        ),
        (
            {"choice": "exponential", "kwargs": {"base": 2, "factor": 0}},
            {"kwargs": {"factor": ["Ensure this value is greater than or equal to 1."]}},
        ),
        (
            {"choice": "exponential", "kwargs": {"base": -2}},
            {"kwargs": {"base": ["Ensure this value is greater than or equal to 0."]}},
        ),
        (
            {"choice": "random", "kwargs": {"min_value": 5, "max_value": 5}},
            {"kwargs": {"non_field_errors": ["'max_value' must be greater than 'min_value'."]}},
        ),
        (
            {"choice": "random", "kwargs": {"min_value": 9, "max_value": 2}},
            {"kwargs": {"non_field_errors": ["'max_value' must be greater than 'min_value'."]}},
        ),
        (
            {"choice": "random", "kwargs": {"min_value": 1}},
            {"kwargs": {"max_value": ["This field is required."]}},
        ),
        ({"kwargs": {"seconds": 1}}, {"choice": ["This field is required."]}),
        ({"choice": "fixed"}, {"kwargs": ["This field is required."]}),
    ],
)
def test_retry_countdown_config_errors(user_client, config, errors):
    response = create(user_client, retry_countdown_config=config)

    assert response.status_code == 400
    assert response.json() == {"retry_countdown_config": errors}
    assert Webhook.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("value", "message"),
    [(None, "This field may not be null."), ("fixed", None), ([1], None)],
)
def test_retry_countdown_config_must_be_an_object(user_client, value, message):
    response = create(user_client, retry_countdown_config=value)
    assert response.status_code == 400
    assert "retry_countdown_config" in response.json()
    if message:
        assert response.json() == {"retry_countdown_config": [message]}


@pytest.mark.django_db
def test_retry_countdown_config_is_required(user_client):
    body = webhook_body()
    del body["retry_countdown_config"]
    response = user_client.post(WEBHOOKS, body, format="json")
    assert response.status_code == 400
    assert response.json() == {"retry_countdown_config": ["This field is required."]}


@pytest.mark.django_db
def test_retry_countdown_config_is_stored_normalised(user_client):
    response = create(
        user_client, retry_countdown_config={"choice": "exponential", "kwargs": {"base": "2"}}
    )
    assert response.status_code == 201
    assert response.json()["retry_countdown_config"] == {
        "choice": "exponential",
        "kwargs": {"base": 2, "factor": 1},
    }


# --- other fields ----------------------------------------------------------------------


@pytest.mark.django_db
def test_unregistered_event_type_is_refused(user_client):
    response = create(user_client, event_type="order.teleported")
    assert response.status_code == 400
    assert response.json() == {"event_type": ['"order.teleported" is not a valid choice.']}


@pytest.mark.django_db
def test_target_url_longer_than_255_is_refused(user_client):
    response = create(user_client, target_url="http://127.0.0.1/" + "a" * 250)
    assert response.status_code == 400
    assert response.json() == {"target_url": ["Ensure this field has no more than 255 characters."]}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9/hook", "ftp://example.com/hook", "http://localhost/hook"],
)
def test_unsafe_target_url_is_refused(settings, user_client, url):
    if not targets_are_checked():
        pytest.skip("ulak.targets.check_target_url is still the stub that accepts everything")
    settings.ULAK_ALLOWED_NETWORKS = ""

    response = create(user_client, target_url=url)

    assert response.status_code == 400
    assert list(response.json()) == ["target_url"]
    assert isinstance(response.json()["target_url"][0], str)
    assert Webhook.objects.count() == 0


@pytest.mark.django_db
def test_token_auth_url_is_checked_like_a_target(settings, user_client):
    if not targets_are_checked():
        pytest.skip("ulak.targets.check_target_url is still the stub that accepts everything")
    settings.ULAK_ALLOWED_NETWORKS = ""
    auth = {"auth_type": "token", "url": "http://127.0.0.1/token", "username": "u", "password": "p"}

    response = create(
        user_client, target_url="http://hooks.example.invalid/", config={"auth": auth}
    )

    assert response.status_code == 400
    assert list(response.json()["config"]["auth"]) == ["url"]


@pytest.mark.django_db
def test_callback_needs_a_superuser(user_client, settings):
    settings.ULAK_CALLBACKS = ["ulak.callbacks.log"]
    response = create(user_client, callback="ulak.callbacks.log")
    assert response.status_code == 400
    assert response.json() == {"callback": ["Only a superuser may set a callback."]}


@pytest.mark.django_db
def test_callback_must_be_listed_in_settings(admin_client_api, settings):
    settings.ULAK_CALLBACKS = ["ulak.callbacks.log"]

    refused = create(admin_client_api, callback="os.system")
    assert refused.status_code == 400
    assert list(refused.json()) == ["callback"]
    assert "ULAK_CALLBACKS" in refused.json()["callback"][0]

    accepted = create(admin_client_api, callback="ulak.callbacks.log")
    assert accepted.status_code == 201
    assert accepted.json()["callback"] == "ulak.callbacks.log"


@pytest.mark.django_db
def test_owner_may_resend_a_callback_a_superuser_set(user, user_client, settings):
    settings.ULAK_CALLBACKS = ["ulak.callbacks.log"]
    body = create(user_client).json()
    Webhook.objects.filter(id=body["id"]).update(callback="ulak.callbacks.log")
    body = user_client.get(f"{WEBHOOKS}{body['id']}/").json()

    response = user_client.put(f"{WEBHOOKS}{body['id']}/", body, format="json")

    assert response.status_code == 200
    assert response.json()["callback"] == "ulak.callbacks.log"


@pytest.mark.django_db
@pytest.mark.parametrize("empty", ["", None])
def test_anyone_may_leave_the_callback_empty(user_client, empty):
    response = create(user_client, callback=empty)
    assert response.status_code == 201
    assert response.json()["callback"] == empty


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ({"X-Ok": 5}, "X-Ok"),
        ({"X-Bad\r\nInjected": "1"}, "X-Bad\r\nInjected"),
        ({"X-Split": "a\r\nX-Evil: 1"}, "X-Split"),
        ({"X-Line": "a\nb"}, "X-Line"),
        ({"Bad Name": "1"}, "Bad Name"),
        ({"": "1"}, ""),
        ({"X-Null": "a\u0000b"}, "X-Null"),
    ],
)
def test_additional_headers_must_be_valid_headers(user_client, headers, key):
    response = create(user_client, additional_headers=headers)
    assert response.status_code == 400
    errors = response.json()["additional_headers"]
    assert list(errors) == [key]


@pytest.mark.django_db
@pytest.mark.parametrize("headers", [["X-A", "1"], "X-A: 1", None])
def test_additional_headers_must_be_an_object(user_client, headers):
    response = create(user_client, additional_headers=headers)
    assert response.status_code == 400
    assert len(response.json()["additional_headers"]) == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("config", "errors"),
    [
        ({"timeout": 0}, {"timeout": ["Ensure this value is greater than 0."]}),
        ({"timeout": -3}, {"timeout": ["Ensure this value is greater than 0."]}),
        ({"timeout": "10"}, {"timeout": ["A valid number is required."]}),
        ({"timeout": True}, {"timeout": ["A valid number is required."]}),
        ({"timeout": 301}, {"timeout": ["Ensure this value is less than or equal to 300."]}),
        (
            {"max_retry_count": -1},
            {"max_retry_count": ["Ensure this value is greater than or equal to 0."]},
        ),
        ({"max_retry_count": 2.5}, {"max_retry_count": ["A valid integer is required."]}),
        ({"max_retry_count": "3"}, {"max_retry_count": ["A valid integer is required."]}),
        ({"auth": "basic"}, {"auth": ["Expected a JSON object."]}),
        ({"auth": {"username": "u"}}, {"auth": {"auth_type": ["This field is required."]}}),
        (
            {"auth": {"auth_type": "oauth"}},
            {"auth": {"auth_type": ['"oauth" is not a valid choice.']}},
        ),
        (
            {"auth": {"auth_type": "basic", "username": "u"}},
            {"auth": {"password": ["This field is required."]}},
        ),
        (
            {"auth": {"auth_type": "basic", "username": 1, "password": "p"}},
            {"auth": {"username": ["Not a valid string."]}},
        ),
        (
            {"auth": {"auth_type": "token", "username": "u", "password": "p"}},
            {"auth": {"url": ["This field is required."]}},
        ),
    ],
)
def test_config_errors(user_client, config, errors):
    response = create(user_client, config=config)
    assert response.status_code == 400
    assert response.json() == {"config": errors}


@pytest.mark.django_db
def test_config_accepts_known_keys_and_routing_attributes(user_client):
    config = {
        "timeout": 2.5,
        "max_retry_count": 0,
        "auth": {
            "auth_type": "token",
            "url": "http://127.0.0.1:9/token",
            "username": "u",
            "password": "p",
            "extra": "kept",
        },
        "channel": "web",
        "regions": ["eu", "tr"],
    }
    response = create(user_client, config=config)
    assert response.status_code == 201
    shown = {**config, "auth": {**config["auth"], "password": "****"}}
    assert response.json()["config"] == shown
    assert Webhook.objects.get(id=response.json()["id"]).config == config
    basic = {"auth": {"auth_type": "basic", "username": "u", "password": ""}}
    assert create(user_client, config=basic, target_url="http://127.0.0.1/b").status_code == 201


@pytest.mark.django_db
def test_config_must_be_an_object(user_client):
    response = create(user_client, config=["timeout", 5])
    assert response.status_code == 400
    assert response.json() == {"config": ["Expected a JSON object."]}


# --- duplicates ------------------------------------------------------------------------


@pytest.mark.django_db
def test_duplicate_create_answers_406(user_client):
    assert create(user_client).status_code == 201

    response = create(user_client)

    assert response.status_code == 406
    assert response.json() == DUPLICATE
    assert Webhook.objects.count() == 1


@pytest.mark.django_db
def test_same_target_for_another_user_or_event_type_is_fine(user_client, other_client):
    assert create(user_client).status_code == 201
    assert create(other_client).status_code == 201
    assert create(user_client, event_type="package.status.shipped").status_code == 201


@pytest.mark.django_db
def test_duplicate_update_answers_406(user_client):
    first = create(user_client).json()
    second = create(user_client, target_url="http://127.0.0.1:9/other").json()

    patch = user_client.patch(
        f"{WEBHOOKS}{second['id']}/", {"target_url": first["target_url"]}, format="json"
    )
    put = user_client.put(
        f"{WEBHOOKS}{second['id']}/", webhook_body(target_url=first["target_url"]), format="json"
    )

    assert (patch.status_code, patch.json()) == (406, DUPLICATE)
    assert (put.status_code, put.json()) == (406, DUPLICATE)
    assert Webhook.objects.get(id=second["id"]).target_url == "http://127.0.0.1:9/other"
    # Saving a webhook unchanged is not a duplicate of itself.
    same = user_client.put(f"{WEBHOOKS}{first['id']}/", webhook_body(), format="json")
    assert same.status_code == 200


@pytest.mark.django_db
def test_ownerless_webhooks_are_duplicates_too(admin_client_api):
    # Webhooks made outside the API may have no owner; SQL never finds NULLs equal.
    for url in ("http://127.0.0.1:9/a", "http://127.0.0.1:9/b"):
        Webhook.objects.create(
            owner=None, retry_countdown_config=FIXED, target_url=url, event_type="package.created"
        )
    second = Webhook.objects.get(target_url="http://127.0.0.1:9/b")

    response = admin_client_api.patch(
        f"{WEBHOOKS}{second.id}/", {"target_url": "http://127.0.0.1:9/a"}, format="json"
    )

    assert (response.status_code, response.json()) == (406, DUPLICATE)


# --- soft delete -----------------------------------------------------------------------


@pytest.mark.django_db
def test_delete_is_soft_and_patch_revives(user_client):
    webhook_id = create(user_client).json()["id"]

    response = user_client.delete(f"{WEBHOOKS}{webhook_id}/")

    assert response.status_code == 204
    detail = user_client.get(f"{WEBHOOKS}{webhook_id}/")
    assert detail.status_code == 200
    assert detail.json()["is_active"] is False
    assert [w["id"] for w in user_client.get(f"{WEBHOOKS}?is_active=false").json()["results"]] == [
        webhook_id
    ]
    # Still counts as registered.
    assert create(user_client).status_code == 406

    revived = user_client.patch(f"{WEBHOOKS}{webhook_id}/", {"is_active": True}, format="json")

    assert revived.status_code == 200
    assert revived.json()["is_active"] is True
    assert Webhook.objects.get(id=webhook_id).is_active is True


# --- registry, filters, ordering, pagination --------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", [WEBHOOKS + "registry/", "/whisperer/hooks/registry/"])
def test_registry_lists_the_event_types(user_client, path):
    response = user_client.get(path)
    assert response.status_code == 200
    assert response.json() == events.registered_event_types()
    assert "package.status.shipped" in response.json()


@pytest.mark.django_db
def test_webhook_filters(user_client):
    a = create(user_client, target_url="http://127.0.0.1:9/A").json()["id"]
    b = create(user_client, target_url="http://127.0.0.1:9/b", event_type="shipment.created")
    b = b.json()["id"]
    user_client.delete(f"{WEBHOOKS}{b}/")

    def ids(query: str) -> list[int]:
        response = user_client.get(f"{WEBHOOKS}?{query}")
        assert response.status_code == 200, query
        return sorted(item["id"] for item in response.json()["results"])

    assert ids("event_type=SHIPMENT.CREATED") == [b]
    assert ids("event_type=package.created") == [a]
    assert ids("target_url=http://127.0.0.1:9/a") == [a]
    assert ids("is_active=true") == [a]
    assert ids("is_active=0") == [b]
    assert ids("") == [a, b]


@pytest.mark.django_db
def test_webhook_ordering(user_client):
    for path in ("c", "a", "b"):
        create(user_client, target_url=f"http://127.0.0.1:9/{path}")

    def urls(ordering: str) -> list[str]:
        response = user_client.get(f"{WEBHOOKS}?ordering={ordering}")
        return [item["target_url"][-1] for item in response.json()["results"]]

    assert urls("target_url") == ["a", "b", "c"]
    assert urls("-target_url") == ["c", "b", "a"]
    assert urls("id") == ["c", "a", "b"]
    assert [w["target_url"][-1] for w in user_client.get(WEBHOOKS).json()["results"]] == [
        "b",
        "a",
        "c",
    ]  # newest first by default


@pytest.mark.django_db
def test_webhook_pagination(user_client):
    for index in range(5):
        create(user_client, target_url=f"http://127.0.0.1:9/{index}")

    first = user_client.get(f"{WEBHOOKS}?page_size=2").json()
    assert first["count"] == 5
    assert len(first["results"]) == 2
    assert first["previous"] is None
    assert "page=2" in first["next"] and "page_size=2" in first["next"]
    last = user_client.get(f"{WEBHOOKS}?page_size=2&page=3").json()
    assert len(last["results"]) == 1
    assert last["next"] is None
    assert "page=2" in last["previous"]


@pytest.mark.django_db
def test_whisperer_paths_serve_the_same_webhooks(user_client):
    response = user_client.post("/whisperer/hooks/", webhook_body(), format="json")
    assert response.status_code == 201
    webhook_id = response.json()["id"]
    assert user_client.get(f"{WEBHOOKS}{webhook_id}/").status_code == 200
    assert user_client.delete(f"/whisperer/hooks/{webhook_id}/").status_code == 204
    assert Webhook.objects.get(id=webhook_id).is_active is False


@pytest.mark.django_db
def test_auth_password_is_masked_and_kept_when_sent_back(admin_client_api):
    from ulak.models import Webhook

    body = {
        "retry_countdown_config": {"choice": "fixed", "kwargs": {"seconds": 5}},
        "target_url": "https://erp.example.com/hooks",
        "event_type": "package.created",
        "config": {"auth": {"auth_type": "basic", "username": "erp", "password": "s3cret-pw"}},
    }
    created = admin_client_api.post("/api/v1/oms/settings/webhooks/", body, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["config"]["auth"] == {
        "auth_type": "basic",
        "username": "erp",
        "password": "****",
    }
    assert "s3cret-pw" not in created.content.decode()

    hook_id = created.json()["id"]
    read = admin_client_api.get(f"/api/v1/oms/settings/webhooks/{hook_id}/").json()
    updated = admin_client_api.put(f"/api/v1/oms/settings/webhooks/{hook_id}/", read, format="json")
    assert updated.status_code == 200, updated.json()
    assert Webhook.objects.get(id=hook_id).config["auth"]["password"] == "s3cret-pw"
