"""ulak.statements: the hot statements' fast paths give what Django's cursor gives, map
errors the same way, and step aside when a project watches queries."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext

import ulak
from tests.conftest import make_user
from ulak import statements
from ulak.models import ApiToken, Webhook

RETRY = {"choice": "fixed", "kwargs": {"seconds": 5}}


def make_webhook() -> Webhook:
    return Webhook.objects.create(
        retry_countdown_config=RETRY,
        target_url="https://erp.example.com/hook",
        event_type="package.created",
    )


@pytest.mark.django_db
def test_rows_and_types_are_those_of_djangos_cursor():
    make_webhook()
    sql = (
        "SELECT id, event_type, is_active, created_date FROM ulak_webhook "
        "WHERE event_type = %s AND is_active = %s"
    )
    fast = statements.fetch_all(connection, sql, ["package.created", True])
    with connection.cursor() as cursor:
        cursor.execute(sql, ["package.created", True])
        expected = cursor.fetchall()
    assert fast == expected
    assert len(fast) == 1
    assert fast[0][2] is True  # a boolean, not 1: the connection's converters apply


@pytest.mark.django_db
def test_a_percent_sign_in_the_sql_survives():
    rows = statements.fetch_all(connection, "SELECT 'a%%b', %s", ["x"])
    assert [tuple(row) for row in rows] == [("a%b", "x")]


@pytest.mark.django_db(transaction=True)
def test_database_errors_come_out_as_djangos():
    with pytest.raises(IntegrityError):
        statements.fetch_all(
            connection, "INSERT INTO ulak_webhook (target_url) VALUES (%s)", ["https://x.example"]
        )


@pytest.mark.django_db
def test_a_projects_execute_wrapper_still_sees_the_publish_statements(client):
    make_webhook()
    key = ApiToken.create_for(make_user("publisher", superuser=True))
    seen: list[str] = []

    def watch(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(watch):
        response = client.post(
            "/api/v1/oms/events/",
            {"event_type": "package.created", "payload": {"id": 1}},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Token {key}",
        )
        assert len(ulak.publish("package.created", {"id": 2})) == 1
    assert response.status_code == 202
    assert any("key_hash" in sql for sql in seen), seen  # the token lookup
    assert sum("INSERT INTO" in sql and "ulak_webhookevent" in sql for sql in seen) == 2, seen


@pytest.mark.django_db
def test_query_logging_still_sees_them():
    make_webhook()
    with CaptureQueriesContext(connection) as captured:
        ulak.publish("package.created", {"id": 3})
    assert any("ulak_webhookevent" in query["sql"] for query in captured.captured_queries)
