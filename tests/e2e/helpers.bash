# Shared helpers for the e2e suite (bats >= 1.5). Every file starts the cluster in
# setup_file (cluster_up), calls skip_without_cluster in setup, and stops the cluster in
# teardown_file (cluster_down), which bats runs also when tests fail.

bats_require_minimum_version 1.5.0

E2E_DIR=$(cd "$BATS_TEST_DIRNAME" && pwd)
CLUSTER="$E2E_DIR/cluster.sh"

# cluster_up (in setup_file): start the cluster. When Citus cannot be had, every test of
# the file is skipped (bats 1.8 cannot skip from setup_file: setup() calls skip_without_cluster).
cluster_up() {
    cluster_or_skip start
}

# cluster_or_skip CMD: run `cluster.sh CMD` (start, or check); when Citus cannot be had,
# export E2E_SKIP (every test of the file then skips) and succeed.
cluster_or_skip() {
    local rc=0 out
    out=$(bash "$CLUSTER" "$1" 2>&1) || rc=$?
    if [ "$rc" = 77 ]; then
        E2E_SKIP=$(grep '^SKIP:' <<<"$out" || echo "SKIP: Citus not available")
        export E2E_SKIP
    elif [ "$rc" != 0 ]; then
        echo "$out" >&2
        return "$rc"
    fi
}

# skip_without_cluster (in setup): skip the test when cluster_up found no Citus.
skip_without_cluster() {
    if [ -n "${E2E_SKIP:-}" ]; then
        skip "$E2E_SKIP"
    fi
}

# cluster_down (in teardown_file): stop the cluster; fails (after stopping it) when a
# pg_trickle background worker logged a failed iteration during the file's tests.
cluster_down() {
    local failures rc=0
    failures=$(bash "$CLUSTER" worker-failures 2>&1) || rc=$?
    bash "$CLUSTER" stop >/dev/null 2>&1 || true
    if [ "$rc" != 0 ]; then
        echo "pg_trickle workers failed during these tests:" >&2
        echo "$failures" >&2
        return 1
    fi
}

# on NODE SQL: one statement on NODE (coordinator, worker1, worker2), unaligned output.
on() {
    local node=$1
    shift
    bash "$CLUSTER" psql "$node" -At -c "$*"
}

port_of() { bash "$CLUSTER" port "$1"; }

# pgt ARGS: the CLI under test (PGTRICKLE_BIN).
pgt() { "$PGTRICKLE_BIN" "$@"; }

# json_is FILTER: `jq -e FILTER` holds for $output (the last `run`); prints both when not.
json_is() {
    if ! jq -e "$1" >/dev/null <<<"$output"; then
        echo "jq filter failed: $1" >&2
        echo "document: $output" >&2
        return 1
    fi
}

# differs ST QUERY: rows of the stream table and of the query that the other lacks.
differs() {
    local st=$1 q=$2 cols
    cols=$(on coordinator "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = '$st'::regclass AND attnum > 0 AND NOT attisdropped AND attname NOT LIKE '\\_\\_pgt\\_%'")
    on coordinator "SELECT count(*) FROM ((SELECT $cols FROM $st EXCEPT ALL SELECT * FROM ($q) q) UNION ALL (SELECT * FROM ($q) q EXCEPT ALL SELECT $cols FROM $st)) d"
}

# distributed_orders ROWS CUSTOMERS: pg_trickle installed and `orders (id, customer_id, qty)`
# distributed by id, REPLICA IDENTITY FULL (what WAL capture requires), with ROWS rows.
distributed_orders() {
    on coordinator "CREATE EXTENSION pg_trickle"
    on coordinator "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL, qty int)"
    on coordinator "SELECT create_distributed_table('orders', 'id')"
    on coordinator "ALTER TABLE orders REPLICA IDENTITY FULL"
    on coordinator "INSERT INTO orders SELECT g, g % $2, g % 7 FROM generate_series(1, $1) g"
}

# sample_tables: pg_trickle installed; `orders` (distributed by id, 2,000 rows), `regions`
# (a reference table, customers 0-19) and `plans` (a local table, customers 0-19), the Citus
# ones REPLICA IDENTITY FULL (what WAL capture requires).
sample_tables() {
    on coordinator "CREATE EXTENSION pg_trickle"
    on coordinator "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL, qty int, amount numeric(12,2), note text)"
    on coordinator "SELECT create_distributed_table('orders', 'id')"
    on coordinator "ALTER TABLE orders REPLICA IDENTITY FULL"
    on coordinator "INSERT INTO orders SELECT g, g % 20, g % 7, g * 1.5, 'n' || g FROM generate_series(1, 2000) g"
    on coordinator "CREATE TABLE regions (customer_id int PRIMARY KEY, region text NOT NULL)"
    on coordinator "SELECT create_reference_table('regions')"
    on coordinator "ALTER TABLE regions REPLICA IDENTITY FULL"
    on coordinator "INSERT INTO regions SELECT g, CASE WHEN g % 3 = 0 THEN 'east' ELSE 'west' END FROM generate_series(0, 19) g"
    on coordinator "CREATE TABLE plans (customer_id int PRIMARY KEY, plan text NOT NULL)"
    on coordinator "INSERT INTO plans SELECT g, CASE WHEN g % 2 = 0 THEN 'pro' ELSE 'free' END FROM generate_series(0, 19) g"
}

# The shapes of citus_shapes.txt (name|query per line), over shape_tables.
SHAPES="$E2E_DIR/citus_shapes.txt"

# shape_tables: sample_tables and `lines` (distributed by order_id, co-located with orders).
shape_tables() {
    sample_tables
    on coordinator "CREATE TABLE lines (order_id bigint NOT NULL, line int NOT NULL, n int, PRIMARY KEY (order_id, line))"
    on coordinator "SELECT create_distributed_table('lines', 'order_id', colocate_with => 'orders')"
    on coordinator "ALTER TABLE lines REPLICA IDENTITY FULL"
    on coordinator "INSERT INTO lines SELECT g, l, (g + l) % 5 FROM generate_series(1, 2000, 3) g, generate_series(1, 2) l"
}

# shapes_match [PREFIX]: refresh every shape's stream table (PREFIX_name, or name); each
# equals its query and was refreshed differentially (or had nothing to do: none of its
# sources changed).
shapes_match() {
    local name q mode st
    while IFS='|' read -r name q; do
        st=${1:+$1_}$name
        refreshed_matches "$st" "$q" || return 1
        mode=$(on coordinator "SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables WHERE pgt_name = '$st'")
        [ "$mode" = differential ] || [ "$mode" = none ] || { echo "$st refreshed $mode"; return 1; }
    done <"$SHAPES"
}

# shape_writes ROUND: inserts, updates and deletes on every source of the shapes, in one
# transaction per table.
shape_writes() {
    local r=$1 b=$(( 10000 * $1 ))
    on coordinator "INSERT INTO orders SELECT g, g % 23, g % 9, g * 0.25, 'r' FROM generate_series($b, $b + 60) g"
    on coordinator "UPDATE orders SET qty = qty + 1, amount = amount + 0.10 WHERE id % 13 = $r"
    on coordinator "DELETE FROM orders WHERE id % 17 = $r"
    on coordinator "INSERT INTO lines SELECT g, 7, g % 6 FROM generate_series($b, $b + 30) g"
    on coordinator "DELETE FROM lines WHERE order_id % 19 = $r"
    on coordinator "UPDATE regions SET region = CASE region WHEN 'east' THEN 'west' ELSE 'east' END WHERE customer_id % 7 = $r % 7"
    on coordinator "INSERT INTO regions VALUES ($r + 20, 'r$r') ON CONFLICT DO NOTHING"
    on coordinator "UPDATE plans SET plan = 'team' WHERE customer_id = $r % 30"
}

# refresh ST: a manual refresh of stream table ST on the coordinator.
refresh() { on coordinator "CALL pgtrickle.refresh_stream_table('$1')"; }

# refreshed_matches ST QUERY: refresh ST, then it must equal QUERY (as a multiset).
# Explicit returns: callers may run it where errexit does not apply (`a && b`, `if`).
refreshed_matches() {
    local d
    refresh "$1" || { echo "refresh of $1 failed"; return 1; }
    d=$(differs "$1" "$2") || return 1
    [ "$d" = 0 ] || { echo "$1 differs by $d rows"; return 1; }
}

# wait_for SQL EXPECTED [SECONDS]: poll the coordinator (up to SECONDS, default 20) until SQL
# returns EXPECTED.
wait_for() {
    local i out tries=$(( ${3:-20} * 4 ))
    for i in $(seq 1 "$tries"); do
        out=$(on coordinator "$1" 2>/dev/null || true)
        [ "$out" = "$2" ] && return 0
        sleep 0.25
    done
    echo "waited for '$1' = '$2', last: '$out'"
    return 1
}

# converges ST QUERY [SECONDS=60]: wait until the scheduler made ST equal QUERY (writes have
# stopped). A scheduled refresh reads what the WAL poller drained, so no single refresh can
# be waited for: the stream table must get there.
converges() {
    local i d=
    for i in $(seq 1 $(( ${3:-60} * 2 ))); do
        d=$(differs "$1" "$2" 2>/dev/null || true)
        [ "$d" = 0 ] && return 0
        sleep 0.5
    done
    echo "$1 still differs from its query by $d rows"
    return 1
}

# start_worker3 [name=value...]: start a fourth node (not yet in the cluster) on
# PGTRICKLE_E2E_WORKER3_PORT (57639) with Citus, pg_trickle and these settings, and print its
# port; stop_worker3 (in teardown_file) stops it, whatever happened.
start_worker3() {
    local port=${PGTRICKLE_E2E_WORKER3_PORT:-57639} dir s sets=()
    dir=$(mktemp -d "${TMPDIR:-/tmp}/pgtrickle-e2e-worker3.XXXXXX")
    chmod 755 "$dir"
    echo "$dir/node" >"$BATS_FILE_TMPDIR/worker3.dir"
    for s in citus.enable_change_data_capture=on "$@"; do
        sets+=(--set "$s")
    done
    bash "$E2E_DIR/../support/pgtmp.sh" start --dir "$dir/node" --port "$port" --no-preload \
        --set shared_preload_libraries=citus,pg_trickle --set synchronous_commit=on "${sets[@]}" >/dev/null
    PGCONNECT_TIMEOUT=10 psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "CREATE EXTENSION citus"
    echo "$port"
}

stop_worker3() {
    if [ -f "$BATS_FILE_TMPDIR/worker3.dir" ]; then
        bash "$E2E_DIR/../support/pgtmp.sh" stop "$(cat "$BATS_FILE_TMPDIR/worker3.dir")" || true
    fi
}

# restart_worker3: restart the fourth node (settings changed with ALTER SYSTEM).
restart_worker3() {
    local data pg_ctl
    data=$(cat "$BATS_FILE_TMPDIR/worker3.dir")/data
    pg_ctl=$(pg_config --bindir)/pg_ctl
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$pg_ctl" -D "$data" -w restart >/dev/null
    else
        "$pg_ctl" -D "$data" -w restart >/dev/null
    fi
}
