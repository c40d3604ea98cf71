#!/usr/bin/env bash
# Throwaway PostgreSQL clusters for tests, benchmarks and the demo.
#
#   pgtmp.sh start [--dir DIR] [--port PORT] [--no-preload] [--set name=value]...
#       initdb into DIR (default: a new temp dir), pick a free port on 127.0.0.1,
#       preload pg_trickle, start the server and print shell assignments:
#         PGTMP_DIR=... PGHOST=127.0.0.1 PGPORT=... PGUSER=postgres PGDATABASE=postgres
#       Use: eval "$(tests/support/pgtmp.sh start)"
#   pgtmp.sh stop DIR      stop the server (fast) and remove DIR
#   pgtmp.sh restart DIR   restart the server in DIR (picks up postgresql.conf edits)
#
# When run as root the server runs as the `postgres` user (PostgreSQL refuses root).
# Everything is local: the server listens on 127.0.0.1 only, trust authentication.
set -euo pipefail

PG_BINDIR=${PG_BINDIR:-$(pg_config --bindir)}

die() { echo "pgtmp: $*" >&2; exit 1; }

as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pick_port() {
    local p i
    for i in $(seq 1 200); do
        # Below Linux's ephemeral range (32768-60999), which client connections use.
        p=$((20000 + RANDOM % 12000))
        if ! port_in_use "$p"; then
            echo "$p"
            return 0
        fi
    done
    die "no free port found on 127.0.0.1"
}

cmd_start() {
    local dir="" port="" preload=1
    local -a settings=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --dir) dir=$2; shift 2 ;;
            --port) port=$2; shift 2 ;;
            --no-preload) preload=0; shift ;;
            --set) settings+=("$2"); shift 2 ;;
            *) die "unknown option: $1" ;;
        esac
    done
    [ -n "$dir" ] || dir=$(mktemp -d "${TMPDIR:-/tmp}/pgtrickle-pg.XXXXXX")
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || die "user 'postgres' does not exist (install postgresql-15)"
        chown postgres: "$dir"
        chmod 755 "$dir"
    fi
    as_owner "$PG_BINDIR/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 \
        --locale=C.UTF-8 -N >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    {
        echo "listen_addresses = '127.0.0.1'"
        echo "unix_socket_directories = '$dir'"
        echo "fsync = off"
        echo "synchronous_commit = off"
        echo "full_page_writes = off"
        echo "wal_level = logical"
        echo "max_replication_slots = 16"
        echo "max_wal_senders = 16"
        echo "max_connections = 100"
        # pg_trickle's launcher, and per database a scheduler and a WAL poller; Citus's
        # maintenance daemon, background task executors (rebalances) and logical replication
        # workers (shard moves): 8 is not enough for all of them (docs/citus.md).
        echo "max_worker_processes = 16"
        echo "max_prepared_transactions = 200"  # Citus commits multi-shard writes in two phases
        echo "shared_buffers = 256MB"
        echo "log_min_messages = warning"
        echo "log_line_prefix = '%m [%p] %q%a '"
        if [ "$preload" = 1 ]; then echo "shared_preload_libraries = 'pg_trickle'"; fi
        for s in "${settings[@]+"${settings[@]}"}"; do echo "${s%%=*} = '${s#*=}'"; done
    } | as_owner tee -a "$dir/data/postgresql.conf" >/dev/null
    local attempt
    for attempt in 1 2 3 4 5; do
        local p=${port:-$(pick_port)}
        if as_owner "$PG_BINDIR/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "-p $p" start >/dev/null 2>&1; then
            echo "$p" >"$dir/port"
            printf 'PGTMP_DIR=%q; PGHOST=127.0.0.1; PGPORT=%s; PGUSER=postgres; PGDATABASE=postgres; export PGTMP_DIR PGHOST PGPORT PGUSER PGDATABASE\n' "$dir" "$p"
            return 0
        fi
        [ -z "$port" ] || break
        echo "pgtmp: start on port $p failed (attempt $attempt), retrying" >&2
    done
    tail -n 20 "$dir/server.log" >&2 || true
    die "could not start PostgreSQL in $dir"
}

cmd_stop() {
    local dir=${1:?usage: pgtmp.sh stop DIR}
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_owner "$PG_BINDIR/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    case "$dir" in
        /tmp/*|"${TMPDIR:-/tmp}"/*) rm -rf "$dir" ;;
        *) echo "pgtmp: left $dir in place (not under a temp dir)" >&2 ;;
    esac
}

cmd_restart() {
    local dir=${1:?usage: pgtmp.sh restart DIR}
    local p
    p=$(cat "$dir/port")
    as_owner "$PG_BINDIR/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -m fast \
        -o "-p $p" restart >/dev/null
}

case "${1:-}" in
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    restart) shift; cmd_restart "$@" ;;
    *) die "usage: pgtmp.sh start|stop|restart ..." ;;
esac
