#!/usr/bin/env bash
# The whole suite on SQLite, then on a throw-away PostgreSQL server (contract §7).
# Extra arguments go to pytest (for example: scripts/test.sh -k retry).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}

home=$(mktemp -d /tmp/ulak-test.XXXXXX)
pg_dir=""
cleanup() {
    [ -n "$pg_dir" ] && scripts/postgres.sh stop "$pg_dir"
    rm -rf "$home"
}
trap cleanup EXIT INT TERM

status=0
# The browser test needs Chromium and its driver (Debian: chromium, chromium-driver).
if ! { command -v chromium >/dev/null && command -v chromedriver >/dev/null; }; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "== installing chromium and chromium-driver with apt (for the browser test)"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
            || echo "chromium could not be installed: the browser test will be SKIPPED" >&2
    else
        echo "chromium/chromedriver missing and apt not usable as this user: the browser test will be SKIPPED" >&2
    fi
fi

echo "== ruff"
"$PYTHON" -m ruff check ulak tests bench || status=1

echo "== tests on SQLite"
ULAK_HOME="$home/sqlite" "$PYTHON" -m pytest "$@" || status=1

echo "== tests on PostgreSQL"
if out=$(scripts/postgres.sh start); then
    eval "$(echo "$out" | sed 's/^/export /')"
    pg_dir=$ULAK_PG_DIR
    ULAK_HOME="$home/postgres" "$PYTHON" -m pytest "$@" || status=1
else
    echo "PostgreSQL could not be started: the PostgreSQL run is SKIPPED" >&2
fi
exit $status
