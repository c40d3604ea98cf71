#!/usr/bin/env bats
# `pgtrickle sandbox up|down|status`: a throwaway server in a marked directory, a stream
# table created in it through the CLI, idempotent up, restart of a stopped sandbox, and
# refusal to touch directories that are not sandboxes. One node (--single, or no Citus);
# the Citus sandbox (coordinator and two workers) is tested in tests/e2e/sandbox.bats.

load helpers

setup_file() {
    require_installed_extension
}

setup() {
    # Under /tmp (not bats' private temp dir): the server may run as `postgres`.
    SANDBOX_DIR=$(mktemp -u /tmp/pgtrickle-sandbox-test.XXXXXX)
    export SANDBOX_DIR
}

teardown() {
    "$PGTRICKLE_BIN" sandbox down --dir "$SANDBOX_DIR" >/dev/null 2>&1 || true
    rm -rf "${OTHER_DIR:-/nonexistent-pgtrickle-test}"
}

# as_server_user CMD...: runs CMD as the server's user (postgres when we are root).
as_server_user() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

@test "sandbox up, status and down round trip" {
    run -0 --separate-stderr pgt sandbox up --single --dir "$SANDBOX_DIR"
    [[ "$output" =~ ^postgresql://postgres@127\.0\.0\.1:[0-9]+/pgtrickle$ ]]
    [[ "$stderr" == *"export PGTRICKLE_DSN="* ]]
    local dsn=$output
    [ -f "$SANDBOX_DIR/pgtrickle-sandbox.json" ]
    [ "$("$PG_BINDIR/psql" -X -At -d "$dsn" -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_trickle'")" = 0.35.0 ]
    [ "$("$PG_BINDIR/psql" -X -At -d "$dsn" -c "SHOW wal_level")" = logical ]
    [ "$("$PG_BINDIR/psql" -X -At -d "$dsn" -c "SHOW shared_preload_libraries")" = pg_trickle ]

    run -0 --separate-stderr pgt --format json sandbox status --dir "$SANDBOX_DIR"
    json_is '.command == "sandbox" and .action == "status" and .status.code == "ok"'
    json_is ".sandbox.state == \"running\" and .sandbox.dsn == \"$dsn\" and .sandbox.dir == \"$SANDBOX_DIR\""
    json_is '(.sandbox.port | type == "number") and (.sandbox.pid | type == "number") and .sandbox.database == "pgtrickle"'
    json_is ".sandbox.topology == \"single\" and (.sandbox.nodes | length) == 1 and .sandbox.nodes[0].name == \"server\" and .sandbox.nodes[0].dsn == \"$dsn\" and .sandbox.nodes[0].state == \"running\""

    run -0 --separate-stderr pgt --format json sandbox down --dir "$SANDBOX_DIR"
    json_is '.action == "down" and .status.code == "ok"'
    [ ! -e "$SANDBOX_DIR" ]
    run -6 --separate-stderr pgt --format json sandbox status --dir "$SANDBOX_DIR"
    json_is '.sandbox.state == "absent" and .status.code == "unhealthy" and .sandbox.topology == null and .sandbox.nodes == []'
    run -0 --separate-stderr pgt sandbox down --dir "$SANDBOX_DIR"
}

@test "a stream table created in the sandbox through the CLI is maintained" {
    run -0 --separate-stderr pgt sandbox up --single --dir "$SANDBOX_DIR"
    export PGTRICKLE_DSN=$output
    "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -d "$PGTRICKLE_DSN" \
        -c "CREATE TABLE orders (id int PRIMARY KEY, customer int NOT NULL)" \
        -c "INSERT INTO orders SELECT g, g % 3 FROM generate_series(1, 9) g"
    run -0 --separate-stderr pgt create per_customer --schedule 1s \
        --query 'SELECT customer, count(*) AS n FROM orders GROUP BY customer'
    "$PG_BINDIR/psql" -X -q -d "$PGTRICKLE_DSN" -c "INSERT INTO orders VALUES (100, 7)"
    local i n=""
    for i in $(seq 1 50); do
        n=$("$PG_BINDIR/psql" -X -At -d "$PGTRICKLE_DSN" -c "SELECT n FROM per_customer WHERE customer = 7")
        [ "$n" = 1 ] && break
        sleep 0.2
    done
    [ "$n" = 1 ]  # refreshed by the sandbox's scheduler
    run -0 --separate-stderr pgt --format json status
    json_is '.scheduler.running == true and .stream_tables[0].pgt_name == "per_customer"'
}

@test "sandbox up is idempotent and restarts a stopped sandbox with its data" {
    run -0 --separate-stderr pgt sandbox up --single --dir "$SANDBOX_DIR"
    local dsn=$output
    "$PG_BINDIR/psql" -X -q -d "$dsn" -c "CREATE TABLE kept (x int)"
    run -0 --separate-stderr pgt --format json sandbox up --dir "$SANDBOX_DIR"
    json_is ".action == \"up\" and .sandbox.dsn == \"$dsn\" and (.status.message | test(\"already running\"))"

    as_server_user "$PG_BINDIR/pg_ctl" -D "$SANDBOX_DIR/data" -m fast -w stop >/dev/null
    run -6 --separate-stderr pgt --format json sandbox status --dir "$SANDBOX_DIR"
    json_is '.sandbox.state == "stopped" and .sandbox.pid == null and .sandbox.nodes[0].state == "stopped"'
    # An existing one-node sandbox stays one node, also without --single.
    run -0 --separate-stderr pgt sandbox up --dir "$SANDBOX_DIR"
    [ "$output" = "$dsn" ]
    [ "$("$PG_BINDIR/psql" -X -At -d "$dsn" -c "SELECT count(*) FROM pg_tables WHERE tablename = 'kept'")" = 1 ]
}

@test "sandbox up uses the --port given" {
    local port
    port=$(closed_port)
    run -0 --separate-stderr pgt sandbox up --single --dir "$SANDBOX_DIR" --port "$port"
    [ "$output" = "postgresql://postgres@127.0.0.1:$port/pgtrickle" ]
    run -2 --separate-stderr pgt sandbox status --dir "$SANDBOX_DIR" --port "$port"
    run -2 --separate-stderr pgt sandbox up --dir "$SANDBOX_DIR" --port 0
    run -2 --separate-stderr pgt sandbox sideways
}

@test "--single applies to up only and is said on stderr" {
    run -2 --separate-stderr pgt sandbox status --single --dir "$SANDBOX_DIR"
    [[ "$stderr" == *"--single applies to sandbox up only"* ]]
    run -2 --separate-stderr pgt sandbox down --single --dir "$SANDBOX_DIR"
    run -2 --separate-stderr pgt sandbox up --single=sideways --dir "$SANDBOX_DIR"
    [ ! -e "$SANDBOX_DIR" ]
    run -0 --separate-stderr pgt --format json sandbox up --single --dir "$SANDBOX_DIR"
    json_is '.sandbox.topology == "single" and .sandbox.state == "running"'
    [[ "$stderr" == *"one node: --single given"* ]]
}

@test "without Citus, up starts one node and says why" {
    # PostgreSQL's binaries through a directory whose pg_config names an empty pkglibdir.
    FAKE_BINDIR=$(mktemp -d /tmp/pgtrickle-fake-bindir.XXXXXX)
    OTHER_DIR=$FAKE_BINDIR
    local b
    for b in initdb pg_ctl postgres; do ln -s "$PG_BINDIR/$b" "$FAKE_BINDIR/$b"; done
    mkdir "$FAKE_BINDIR/lib" "$FAKE_BINDIR/share"
    printf '#!/bin/sh\ncase "$1" in --pkglibdir) echo %s/lib ;; --sharedir) echo %s/share ;; *) exec %s/pg_config "$@" ;; esac\n' \
        "$FAKE_BINDIR" "$FAKE_BINDIR" "$PG_BINDIR" >"$FAKE_BINDIR/pg_config"
    chmod 755 "$FAKE_BINDIR" "$FAKE_BINDIR/pg_config"
    PG_BINDIR=$FAKE_BINDIR run -0 --separate-stderr pgt --format json sandbox up --dir "$SANDBOX_DIR"
    json_is '.sandbox.topology == "single" and .sandbox.state == "running" and (.sandbox.nodes | length) == 1'
    [[ "$stderr" == *"one node: Citus is not installed (no citus.so in $FAKE_BINDIR/lib)"* ]]
    [ "$("$PG_BINDIR/psql" -X -At -d "$(jq -r .sandbox.dsn <<<"$output")" -c "SHOW shared_preload_libraries")" = pg_trickle ]
}

@test "down and up refuse a directory that is not a sandbox" {
    OTHER_DIR=$(mktemp -d /tmp/pgtrickle-not-a-sandbox.XXXXXX)
    echo precious >"$OTHER_DIR/data.txt"
    run -1 --separate-stderr pgt --format json sandbox down --dir "$OTHER_DIR"
    json_is '.status.code == "failure" and (.status.message | test("not a pgtrickle sandbox")) and (.status.hint | test("--dir"))'
    [ -f "$OTHER_DIR/data.txt" ]
    run -1 --separate-stderr pgt sandbox up --dir "$OTHER_DIR"
    run -1 --separate-stderr pgt sandbox status --dir "$OTHER_DIR"
    [ "$(cat "$OTHER_DIR/data.txt")" = precious ]
}
