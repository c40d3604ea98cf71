#!/usr/bin/env bash
# The one shared server of the integration suite, as a ctest fixture:
#
#   test-server.sh start FILE   start a throwaway server (pgtmp.sh) and write its shell
#                               assignments (PGTMP_DIR=...; PGPORT=...) to FILE
#   test-server.sh stop FILE    stop that server, remove its data dir and FILE
#
# tests/CMakeLists.txt registers `start` as FIXTURES_SETUP and `stop` as FIXTURES_CLEANUP
# (ctest runs the cleanup also when tests fail) and points the integration tests at FILE
# with PGTRICKLE_TEST_SERVER_FILE (tests/integration/pg_fixture.cpp).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
die() { echo "test-server: $*" >&2; exit 1; }

stop_from() {
    local file=$1 dir
    [ -f "$file" ] || return 0
    dir=$(sed -nE 's/^PGTMP_DIR=([^;]+);.*/\1/p' "$file" | head -n1)
    local failed=""
    if [ -n "$dir" ]; then
        # A scheduler whose iterations fail shows no error to any test: its log does
        # (failures injected by the boundary tests aside).
        failed=$(grep -E "pg_trickle: (scheduler tick|launcher iteration|WAL poll) failed" "$dir/server.log" 2>/dev/null |
            grep -v "fault injection" | head -n 5 || true)
        bash "$here/pgtmp.sh" stop "$dir" || true
        echo "test-server: stopped the server in $dir" >&2
    fi
    rm -f "$file"
    if [ -n "$failed" ]; then
        echo "test-server: the scheduler failed during the run (server log):" >&2
        echo "$failed" >&2
        return 1
    fi
}

cmd=${1:-}
file=${2:-}
[ -n "$file" ] || die "usage: test-server.sh start|stop FILE"
case "$cmd" in
    start)
        # A server left behind by an interrupted run is stopped first.
        stop_from "$file" || true
        mkdir -p "$(dirname "$file")"
        dir=$(mktemp -d "${TMPDIR:-/tmp}/pgtrickle-it.XXXXXX")
        # Written before the start, so that `stop` removes the dir even if the start fails.
        printf 'PGTMP_DIR=%s; PGPORT=; \n' "$dir" >"$file"
        out=$(bash "$here/pgtmp.sh" start --dir "$dir") || die "could not start the server"
        printf '%s\n' "$out" >"$file.tmp"
        mv "$file.tmp" "$file"
        echo "test-server: started: $out" >&2
        ;;
    stop) stop_from "$file" ;;
    *) die "usage: test-server.sh start|stop FILE" ;;
esac
