"""Hot SQL statements run as prepared statements on PostgreSQL.

Django's psycopg cursors bind parameters on the client, so PostgreSQL parses and plans
every statement again: for a one-event publish request (token lookup, webhook match,
insert) that was about a third of the server's CPU. These helpers send the parameters
apart from the SQL and ask psycopg to prepare the statement once per connection.

Behind PgBouncer in transaction mode, prepared statements need PgBouncer 1.21 or later
with ``max_prepared_statements`` set; ``ULAK_PREPARED_STATEMENTS = False`` turns them off.
On SQLite (and with query logging on, as in DEBUG) Django's own cursor runs the statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ulak.conf import setting

# Django connects with prepare_threshold=None, which makes psycopg ignore prepare=True.
# A threshold nothing reaches keeps Django's own statements unprepared (as before) while
# the statements executed with prepare=True are prepared on their first run.
EXPLICIT_ONLY_THRESHOLD = 2**31 - 1


def raw_cursor(connection: Any) -> Any:
    """A psycopg cursor on Django's PostgreSQL connection on which prepare=True works."""
    import psycopg

    connection.ensure_connection()
    raw_connection = connection.connection
    if raw_connection.prepare_threshold is None:
        raw_connection.prepare_threshold = EXPLICIT_ONLY_THRESHOLD
    return psycopg.Cursor(raw_connection)


def _prepares(connection: Any) -> bool:
    return (
        connection.vendor == "postgresql"
        and not connection.queries_logged
        and bool(setting("ULAK_PREPARED_STATEMENTS"))
    )


def fetch_all(
    connection: Any, sql: str, params: Sequence[Any], *, server_binding: bool = False
) -> list[tuple]:
    """Rows of ``sql`` (empty for a statement without rows): prepared on PostgreSQL.

    ``server_binding``: the SQL uses psycopg's own placeholders (``%b`` for binary), so
    even unprepared it goes through a server-binding cursor. Errors come out as Django's
    database errors either way (IntegrityError and so on).
    """
    if _prepares(connection):
        with connection.wrap_database_errors:
            with raw_cursor(connection) as cursor:
                cursor.execute(sql, params, prepare=True)
                return cursor.fetchall() if cursor.description else []
    if server_binding and connection.vendor == "postgresql":
        cursor = _server_binding_cursor(connection)
    else:
        cursor = connection.cursor()
    with cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def _server_binding_cursor(connection: Any) -> Any:
    """A psycopg cursor that sends parameters apart from the query, in Django's wrapper
    (query logging and execute wrappers kept)."""
    import psycopg

    connection.ensure_connection()
    raw_cursor = psycopg.Cursor(connection.connection)
    if connection.queries_logged:
        return connection.make_debug_cursor(raw_cursor)
    return connection.make_cursor(raw_cursor)
