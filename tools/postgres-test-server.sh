#!/usr/bin/env bash
# A throwaway PostgreSQL server for runnel's PostgreSQL tests: the Debian
# package's binaries, a fresh cluster in a temporary directory, listening on
# 127.0.0.1 on a free port, with its durability settings left on (fsync,
# synchronous_commit, full_page_writes).
#
#   tools/postgres-test-server.sh start     install the package if missing, initdb,
#                                           start, wait until it accepts connections,
#                                           print KEY=VALUE lines:
#                                             RUNNEL_POSTGRES=postgres://runnel@127.0.0.1:PORT/postgres
#                                             RUNNEL_POSTGRES_DIR=/tmp/...
#                                             RUNNEL_POSTGRES_BIN=/usr/lib/postgresql/N/bin
#   tools/postgres-test-server.sh stop DIR  stop the server started by `start`, remove DIR
#
# Typical use (what tools/test.sh and .ci/run do):
#   set -a; eval "$(bash tools/postgres-test-server.sh start)"; set +a
#   trap 'bash tools/postgres-test-server.sh stop "$RUNNEL_POSTGRES_DIR"' EXIT
#
# PostgreSQL refuses to run as root, so the cluster belongs to the package's
# `postgres` account when the script runs as root. Progress goes to stderr;
# only the KEY=VALUE lines go to stdout.
set -euo pipefail
log() { echo "postgres-test-server: $*" >&2; }
bindir() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
    [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}
install() {
    if bindir >/dev/null; then
        return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        log "PostgreSQL is not installed; install the Debian package postgresql (as root)"
        exit 1
    fi
    log "installing the Debian package postgresql"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
}
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
start() {
    install
    local bin dir port attempt
    bin=$(bindir)
    dir=$(mktemp -d "${TMPDIR:-/tmp}/runnel-postgres.XXXXXX")
    chmod 755 "$dir"
    if [ "$(id -u)" = 0 ]; then
        chown postgres: "$dir"
    fi
    as_owner "$bin/initdb" -D "$dir/data" -U runnel --auth=trust --encoding=UTF8 \
        --locale=C >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        exit 1
    }
    for attempt in 1 2 3 4 5; do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        if port_open "$port"; then
            continue
        fi
        if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=on \
                -c synchronous_commit=on -c full_page_writes=on \
                -c max_prepared_transactions=16" start >&2; then
            log "PostgreSQL listening on 127.0.0.1:$port (data $dir/data, log $dir/server.log)"
            echo "RUNNEL_POSTGRES=postgres://runnel@127.0.0.1:$port/postgres"
            echo "RUNNEL_POSTGRES_DIR=$dir"
            echo "RUNNEL_POSTGRES_BIN=$bin"
            return 0
        fi
        log "could not start on port $port (attempt $attempt); see $dir/server.log"
    done
    exit 1
}
stop() {
    local dir=${1:?usage: postgres-test-server.sh stop DIR}
    local bin
    bin=$(bindir)
    if [ -d "$dir/data" ]; then
        as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
    fi
    rm -rf "$dir"
}
case "${1:-}" in
start) start ;;
stop) stop "${2:-}" ;;
*)
    echo "usage: $0 start | stop DIR" >&2
    exit 2
    ;;
esac
