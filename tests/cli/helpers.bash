# Shared helpers for the pgtrickle CLI suite (bats >= 1.5). Every .bats file is
# independent: it starts its own throwaway server(s) in setup_file and stops them in
# teardown_file. Tests assert exit codes and JSON (via jq), never the human tables.

bats_require_minimum_version 1.5.0

PGTRICKLE_SOURCE_DIR=${PGTRICKLE_SOURCE_DIR:-$(cd "$BATS_TEST_DIRNAME/../.." && pwd)}
PGTRICKLE_BIN=${PGTRICKLE_BIN:-$PGTRICKLE_SOURCE_DIR/build/cli/pgtrickle}
PGTMP=$PGTRICKLE_SOURCE_DIR/tests/support/pgtmp.sh
PG_BINDIR=${PG_BINDIR:-$(pg_config --bindir)}
export PGTRICKLE_SOURCE_DIR PGTRICKLE_BIN PGTMP PG_BINDIR

# The environment must not point pgtrickle anywhere by accident.
unset PGTRICKLE_DSN PGSERVICE PGHOSTADDR

# pgt ARGS...: the CLI under test.
pgt() {
    "$PGTRICKLE_BIN" "$@"
}

# sql DB STATEMENT: runs SQL with psql against the file's server, stops on error.
sql() {
    local db=$1
    shift
    "$PG_BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "$*"
}

# require_installed_extension: fail early, with the fix, when pg_trickle is not installed
# (pgtmp.sh preloads it, so the server would not even start).
require_installed_extension() {
    local libdir
    libdir=$(pg_config --pkglibdir)
    if [ ! -f "$libdir/pg_trickle.so" ]; then
        echo "pg_trickle.so is not installed in $libdir: run 'cmake --install build' first" >&2
        return 1
    fi
}

# start_server PREFIX [pgtmp.sh options]: starts a server and exports PREFIX_DIR and
# PREFIX_PORT (the server listens on 127.0.0.1, user postgres, trust auth).
start_server() {
    local prefix=$1
    shift
    local out
    out=$("$PGTMP" start "$@") || return 1
    local PGTMP_DIR PGPORT
    eval "$out"
    export "${prefix}_DIR=$PGTMP_DIR" "${prefix}_PORT=$PGPORT"
}

# stop_server PREFIX: stops the server started by start_server PREFIX, if any.
stop_server() {
    local dir_var="${1}_DIR"
    if [ -n "${!dir_var:-}" ]; then
        "$PGTMP" stop "${!dir_var}"
    fi
}

# use_server PREFIX DB: points libpq (and so pgtrickle and psql) at that server and database.
use_server() {
    local port_var="${1}_PORT"
    export PGHOST=127.0.0.1 PGPORT=${!port_var} PGUSER=postgres PGDATABASE=$2
}

# closed_port: a TCP port on 127.0.0.1 where nothing listens.
closed_port() {
    local p
    for p in $(seq 1 50); do
        # Above Linux's ephemeral range (32768-60999): no client connection holds it later.
        p=$((61000 + RANDOM % 4000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# json_is FILTER: asserts that the jq filter is true for the last run's stdout ($output),
# printing the document when it is not.
json_is() {
    if ! jq -e "$1" >/dev/null <<<"$output"; then
        echo "jq filter failed: $1" >&2
        echo "document: $output" >&2
        echo "stderr: ${stderr:-}" >&2
        return 1
    fi
}
