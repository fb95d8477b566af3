"""ulak.statements: the hot statements' fast paths give what Django's cursor gives, map
errors the same way, and step aside when a project watches queries."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
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


@pytest.mark.django_db(transaction=True)
def test_background_statements_run_in_order_in_the_callers_transaction():
    if connection.vendor != "sqlite":
        pytest.skip("a helper thread for SQLite's inserts; PostgreSQL streams with COPY")
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE probe (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT NOT NULL)")
    try:
        insert = "INSERT INTO probe (v) VALUES (%s) RETURNING id, v"
        with pytest.raises(IntegrityError), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("INSERT INTO probe (v) VALUES ('before')")
            with statements.in_background(connection) as background:
                sent = [background.submit(insert, [f"row {n}"]) for n in range(3)]
                assert [future.result()[0][1] for future in sent] == ["row 0", "row 1", "row 2"]
                ids = [future.result()[0][0] for future in sent]
                assert ids == sorted(ids)  # in the order submitted
                # A database error comes out as Django's, from the statement that failed.
                background.submit(insert, [None]).result()
        # The caller's rollback took the helper's rows too: one transaction.
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM probe")
            assert cursor.fetchone()[0] == 0
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE probe")


@pytest.mark.django_db(transaction=True)
def test_leaving_the_background_block_waits_for_its_statements():
    if connection.vendor != "sqlite":
        pytest.skip("a helper thread for SQLite's inserts")
    # A recursive CTE keeps SQLite busy well past the block's end if nothing waited.
    slow = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %s) "
        "SELECT count(*) FROM n"
    )
    with statements.in_background(connection) as background:
        future = background.submit(slow, [2_000_000])
    assert future.done() and future.result() == [(2_000_000,)]
