"""Hot SQL statements: prepared on PostgreSQL, straight to sqlite3 on SQLite; bulk rows by COPY.

Django's psycopg cursors bind parameters on the client, so PostgreSQL parses and plans
every statement again: for a one-event publish request (token lookup, webhook match,
insert) that was about a third of the server's CPU. These helpers send the parameters
apart from the SQL and ask psycopg to prepare the statement once per connection.

Behind PgBouncer in transaction mode, prepared statements need PgBouncer 1.21 or later
with ``max_prepared_statements`` set; ``ULAK_PREPARED_STATEMENTS = False`` turns them off.

On SQLite the statement goes to the sqlite3 connection itself, its ``%s`` placeholders
turned into ``?`` once (Django's cursor rewrites them with a regular expression on every
call, and its wrappers cost as much again); sqlite3 keeps the compiled statement cached.

Django's own cursor runs the statement when something watches queries: query logging
(DEBUG, tests counting queries) or an ``execute_wrapper`` a project installed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
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


def watched(connection: Any) -> bool:
    """Whether a project or a test looks at the queries (they must go through Django)."""
    return connection.queries_logged or bool(connection.execute_wrappers)


def _prepares(connection: Any) -> bool:
    return (
        connection.vendor == "postgresql"
        and bool(setting("ULAK_PREPARED_STATEMENTS"))
        and not watched(connection)
    )


def fetch_all(
    connection: Any,
    sql: str,
    params: Sequence[Any],
    *,
    server_binding: bool = False,
    prepare: bool = True,
) -> list[tuple]:
    """Rows of ``sql`` (empty for a statement without rows): prepared on PostgreSQL.

    ``server_binding``: the SQL uses psycopg's own placeholders (``%b`` for binary), so
    even unprepared it goes through a server-binding cursor. ``prepare=False`` for bulk
    statements: preparing one with thousands of rows made it slower, not faster. Errors come out as Django's
    database errors either way (IntegrityError and so on).
    """
    if connection.vendor == "sqlite" and not watched(connection):
        connection.ensure_connection()
        with connection.wrap_database_errors:
            return connection.connection.execute(_qmark(sql), params).fetchall()
    if prepare and _prepares(connection):
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


def copy_rows(
    connection: Any, sql: str, types: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """Stream ``rows`` to ``COPY ... FROM STDIN (FORMAT BINARY)`` on PostgreSQL.

    PostgreSQL inserts the rows as they arrive, on its own core, while this process
    produces the next ones: an INSERT needs all its parameters before it starts (for
    10,000 events of 2 KB a 10 MB message per statement). ``types`` name the columns'
    types for psycopg's binary dumpers. Query logging and execute wrappers do not see it:
    callers use an INSERT when something watches the queries (``watched``).
    """
    import psycopg

    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        with cursor.copy(sql) as copy:
            copy.set_types(types)
            write_row = copy.write_row
            for row in rows:
                write_row(row)


class Background:
    """SQLite statements run in order on a helper thread while the caller goes on.

    sqlite3 releases the GIL while SQLite executes, so a bulk INSERT runs on one core while
    this thread builds the next rows on the other. The helper uses the caller's sqlite3
    connection (Django opens it with ``check_same_thread=False``; SQLite is built
    serialized) and so its transaction; the caller must not use the connection until the
    block ends, which waits for every statement, also when the block raises.
    """

    def __init__(self, connection: Any):
        # Taken here, on the caller's thread: Django's connection objects are per thread.
        self._sqlite = connection.connection
        self._database_errors = connection.wrap_database_errors
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ulak-insert")

    def submit(self, sql: str, params: Sequence[Any]) -> Future[list[tuple]]:
        """Run ``sql`` after the statements submitted before; its rows when done."""
        return self._executor.submit(self._run, _qmark(sql), params)

    def _run(self, sql: str, params: Sequence[Any]) -> list[tuple]:
        with self._database_errors:
            return self._sqlite.execute(sql, params).fetchall()

    def close(self, *, cancel: bool) -> None:
        self._executor.shutdown(wait=True, cancel_futures=cancel)


@contextmanager
def in_background(connection: Any) -> Iterator[Background]:
    """A Background on Django's SQLite connection (not for watched connections)."""
    if connection.vendor != "sqlite" or watched(connection):
        raise ValueError("in_background() is for unwatched SQLite connections")
    connection.ensure_connection()
    background = Background(connection)
    try:
        yield background
    except BaseException:
        background.close(cancel=True)
        raise
    background.close(cancel=False)


_QMARK_SQL: dict[str, str] = {}
_FORMAT_PLACEHOLDER = re.compile(r"(?<!%)%s")  # Django's own pattern


def _qmark(sql: str) -> str:
    """``sql`` with sqlite3's placeholders, converted as Django's SQLite cursor does."""
    converted = _QMARK_SQL.get(sql)
    if converted is None:
        converted = _FORMAT_PLACEHOLDER.sub("?", sql).replace("%%", "%")
        if len(_QMARK_SQL) < 256:
            _QMARK_SQL[sql] = converted
    return converted


def _server_binding_cursor(connection: Any) -> Any:
    """A psycopg cursor that sends parameters apart from the query, in Django's wrapper
    (query logging and execute wrappers kept)."""
    import psycopg

    connection.ensure_connection()
    raw_cursor = psycopg.Cursor(connection.connection)
    if connection.queries_logged:
        return connection.make_debug_cursor(raw_cursor)
    return connection.make_cursor(raw_cursor)
