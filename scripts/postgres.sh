#!/usr/bin/env bash
# A throw-away PostgreSQL 15 server for tests and benchmarks.
#   scripts/postgres.sh start   -> prints "DATABASE_URL=postgres://..." and the folder to stop
#   scripts/postgres.sh stop DIR
# The server runs as the `postgres` user (it refuses root) with its data and socket in a
# fresh temporary folder that user owns, never in the checkout (which may be private to root).
set -euo pipefail

find_bin() {
    for dir in /usr/lib/postgresql/*/bin; do
        [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
    done
    return 1
}

as_postgres() {
    if [ "$(id -u)" = 0 ]; then
        (cd / && runuser -u postgres -- "$@")
    else
        (cd / && "$@")
    fi
}

case "${1:-}" in
start)
    bin=$(find_bin) || {
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "PostgreSQL is missing: installing it with apt" >&2
            (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) >&2 || true
        fi
        bin=$(find_bin) || { echo "PostgreSQL is not installed and could not be installed" >&2; exit 3; }
    }
    dir=$(mktemp -d /tmp/ulak-pg.XXXXXX)
    chmod 755 "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    port=${PGPORT_WANTED:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
    as_postgres "$bin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    # Durability off: this server lives for one test run. (The benchmark passes its own options.)
    as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 ${PG_EXTRA_OPTIONS:--c fsync=off -c synchronous_commit=off -c full_page_writes=off}" >/dev/null \
        || { cat "$dir/server.log" >&2; exit 1; }
    as_postgres "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres ulak
    echo "DATABASE_URL=postgres://postgres@127.0.0.1:$port/ulak"
    echo "ULAK_PG_DIR=$dir"
    echo "ULAK_PG_BIN=$bin"
    ;;
stop)
    dir=${2:?usage: postgres.sh stop DIR}
    bin=$(find_bin)
    [ -d "$dir/data" ] && as_postgres "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 start | stop DIR" >&2
    exit 2
    ;;
esac
