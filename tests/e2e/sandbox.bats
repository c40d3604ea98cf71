#!/usr/bin/env bats
# `pgtrickle sandbox up` with Citus installed: a coordinator and two workers with change data
# capture on, registered with each other, citus and pg_trickle in the database of each; a
# stream table over a distributed table in it; a stopped worker started again on its
# registered port; `down` stops every node. This file does not use cluster.sh's cluster: the
# sandbox starts its own on PGTRICKLE_E2E_SANDBOX_PORT (57936) and the next two ports, away
# from the e2e clusters on 57636-57638, 57736-57738 and 57836-57838.

load helpers

PGTRICKLE_SOURCE_DIR=${PGTRICKLE_SOURCE_DIR:-$(cd "$BATS_TEST_DIRNAME/../.." && pwd)}
PGTRICKLE_BIN=${PGTRICKLE_BIN:-$PGTRICKLE_SOURCE_DIR/build/cli/pgtrickle}
PG_BINDIR=${PG_BINDIR:-$(pg_config --bindir)}
SANDBOX_PORT=${PGTRICKLE_E2E_SANDBOX_PORT:-57936}

# q PORT SQL: one statement on the sandbox node at PORT, database pgtrickle.
q() {
    local port=$1
    shift
    PGCONNECT_TIMEOUT=10 "$PG_BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 \
        -d "postgresql://postgres@127.0.0.1:$port/pgtrickle" -c "$*"
}

# postmaster_gone PID: the process exits (or is a zombie: PID 1 in a container may not
# reap it) within 5 s; pg_ctl stop returns when the PID file is gone, just before the exit.
postmaster_gone() {
    local i state
    for i in $(seq 1 50); do
        state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || echo gone)
        [ "$state" = gone ] || [ "$state" = Z ] && return 0
        sleep 0.1
    done
    echo "process $1 still runs (state $state)" >&2
    return 1
}

setup_file() {
    cluster_or_skip check
    if [ -n "${E2E_SKIP:-}" ]; then
        return 0
    fi
    SANDBOX_DIR=$(mktemp -u /tmp/pgtrickle-sandbox-e2e.XXXXXX)
    export SANDBOX_DIR
    local port
    for port in "$SANDBOX_PORT" $((SANDBOX_PORT + 1)) $((SANDBOX_PORT + 2)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "port $port is in use (set PGTRICKLE_E2E_SANDBOX_PORT)" >&2
            return 1
        fi
    done
}

setup() {
    skip_without_cluster
}

teardown_file() {
    if [ -n "${SANDBOX_DIR:-}" ]; then
        "$PGTRICKLE_BIN" sandbox down --dir "$SANDBOX_DIR" >/dev/null 2>&1 || true
    fi
}

@test "sandbox up starts a Citus coordinator and two workers" {
    run -0 --separate-stderr pgt sandbox up --dir "$SANDBOX_DIR" --port "$SANDBOX_PORT"
    [ "$output" = "postgresql://postgres@127.0.0.1:$SANDBOX_PORT/pgtrickle" ]
    [[ "$stderr" == *"worker1"*"postgresql://postgres@127.0.0.1:$((SANDBOX_PORT + 1))/pgtrickle"* ]]
    [[ "$stderr" == *"worker2"*"postgresql://postgres@127.0.0.1:$((SANDBOX_PORT + 2))/pgtrickle"* ]]
    local port
    for port in "$SANDBOX_PORT" $((SANDBOX_PORT + 1)) $((SANDBOX_PORT + 2)); do
        [ "$(q "$port" "SELECT 1")" = 1 ]
        [ "$(q "$port" "SHOW citus.enable_change_data_capture")" = on ]
        [ "$(q "$port" "SHOW wal_level")" = logical ]
        [ "$(q "$port" "SHOW shared_preload_libraries")" = citus,pg_trickle ]
        [ "$(q "$port" "SELECT extversion FROM pg_extension WHERE extname = 'pg_trickle'")" = 0.35.0 ]
    done
    run q "$SANDBOX_PORT" "SELECT string_agg(nodeport::text, ',' ORDER BY nodeport) FROM pg_dist_node WHERE groupid <> 0 AND isactive AND noderole = 'primary'"
    [ "$output" = "$((SANDBOX_PORT + 1)),$((SANDBOX_PORT + 2))" ]
    run q "$SANDBOX_PORT" "SELECT nodeport FROM pg_dist_node WHERE groupid = 0"
    [ "$output" = "$SANDBOX_PORT" ]

    run -0 --separate-stderr pgt --format json sandbox status --dir "$SANDBOX_DIR"
    json_is '.sandbox.topology == "citus" and .sandbox.state == "running" and .status.code == "ok"'
    json_is '[.sandbox.nodes[] | .name] == ["coordinator", "worker1", "worker2"]'
    json_is '[.sandbox.nodes[] | select(.state == "running" and (.pid | type == "number"))] | length == 3'
    json_is ".sandbox.nodes[2].dsn == \"postgresql://postgres@127.0.0.1:$((SANDBOX_PORT + 2))/pgtrickle\""
}

@test "a stream table over a distributed table in the sandbox equals its query" {
    local dsn="postgresql://postgres@127.0.0.1:$SANDBOX_PORT/pgtrickle"
    q "$SANDBOX_PORT" "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL, qty int NOT NULL)"
    q "$SANDBOX_PORT" "SELECT create_distributed_table('orders', 'id')" >/dev/null
    q "$SANDBOX_PORT" "ALTER TABLE orders REPLICA IDENTITY FULL"
    q "$SANDBOX_PORT" "INSERT INTO orders SELECT g, g % 10, g % 5 FROM generate_series(1, 500) g"
    local query="SELECT customer_id, count(*) AS orders, sum(qty) AS qty FROM orders GROUP BY customer_id"
    run -0 --separate-stderr pgt --dsn "$dsn" create per_customer --mode differential --query "$query"
    q "$SANDBOX_PORT" "INSERT INTO orders SELECT g, g % 10, 3 FROM generate_series(501, 700) g"
    q "$SANDBOX_PORT" "DELETE FROM orders WHERE id % 9 = 0"
    run -0 --separate-stderr pgt --dsn "$dsn" refresh per_customer
    run q "$SANDBOX_PORT" "SELECT count(*) FROM ((SELECT customer_id, orders, qty FROM per_customer EXCEPT ALL $query) UNION ALL ($query EXCEPT ALL SELECT customer_id, orders, qty FROM per_customer)) d"
    [ "$output" = 0 ]
    run q "$SANDBOX_PORT" "SELECT count(*) FROM pgtrickle.citus_status WHERE pgt_name = 'per_customer'"
    [ "$output" = 2 ]
}

@test "sandbox up on a running Citus sandbox says so; --single and another --port are refused" {
    run -0 --separate-stderr pgt --format json sandbox up --dir "$SANDBOX_DIR"
    json_is '.sandbox.topology == "citus" and (.status.message | test("already running"))'
    run -1 --separate-stderr pgt sandbox up --single --dir "$SANDBOX_DIR"
    [[ "$stderr" == *"holds a Citus sandbox"* ]]
}

@test "a stopped worker makes the sandbox stopped; up starts it on its registered port" {
    local owner=()
    [ "$(id -u)" = 0 ] && owner=(runuser -u postgres --)
    "${owner[@]}" "$PG_BINDIR/pg_ctl" -D "$SANDBOX_DIR/worker2/data" -m fast -w stop >/dev/null
    run -6 --separate-stderr pgt --format json sandbox status --dir "$SANDBOX_DIR"
    json_is '.sandbox.state == "stopped" and .sandbox.nodes[2].state == "stopped" and .sandbox.nodes[0].state == "running"'
    run -1 --separate-stderr pgt sandbox up --dir "$SANDBOX_DIR" --port $((SANDBOX_PORT + 10))
    [[ "$stderr" == *"cannot change them"* ]]
    run -0 --separate-stderr pgt sandbox up --dir "$SANDBOX_DIR"
    [ "$(q $((SANDBOX_PORT + 2)) "SELECT count(*) FROM pg_extension WHERE extname IN ('citus', 'pg_trickle')")" = 2 ]
    run q "$SANDBOX_PORT" "SELECT count(*) FROM orders"
    [ "$status" -eq 0 ]
}

@test "sandbox down stops every node and removes the directory" {
    local pids
    pids=$(pgt --format json sandbox status --dir "$SANDBOX_DIR" | jq -r '.sandbox.nodes[].pid')
    [ "$(wc -w <<<"$pids")" = 3 ]
    run -0 --separate-stderr pgt sandbox down --dir "$SANDBOX_DIR"
    [ ! -e "$SANDBOX_DIR" ]
    local pid port
    for pid in $pids; do
        run postmaster_gone "$pid"
        [ "$status" -eq 0 ]
    done
    for port in "$SANDBOX_PORT" $((SANDBOX_PORT + 1)) $((SANDBOX_PORT + 2)); do
        run bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"
        [ "$status" -ne 0 ]
    done
    run -6 --separate-stderr pgt sandbox status --dir "$SANDBOX_DIR"
}
