#!/usr/bin/env bats
# The CLI across the nodes of a real Citus cluster: `migrate` of a 0.31.0 cluster (one plan
# and one transaction per node, workers first, nothing changed while a worker is down, a
# worker failing half-way reported per node with exit 7 and finished by a rerun), and
# `refresh --all` and `status` on the coordinator.

load helpers

PGTRICKLE_SOURCE_DIR=${PGTRICKLE_SOURCE_DIR:-$(cd "$BATS_TEST_DIRNAME/../.." && pwd)}
PGTRICKLE_BIN=${PGTRICKLE_BIN:-$PGTRICKLE_SOURCE_DIR/build/cli/pgtrickle}

setup_file() {
    cluster_up
    if [ -z "${E2E_SKIP:-}" ]; then
        # 0.31.0 on every node: created on the coordinator, Citus creates it on the workers.
        on coordinator "CREATE EXTENSION pg_trickle VERSION '0.31.0'"
        on coordinator "CREATE TABLE plans (id int PRIMARY KEY, plan text NOT NULL, seats int)"
        on coordinator "INSERT INTO plans SELECT g, CASE WHEN g % 3 = 0 THEN 'pro' ELSE 'free' END, g % 7 FROM generate_series(1, 300) g"
        on coordinator "CREATE TABLE notes (id int PRIMARY KEY, body text)"
        on coordinator "INSERT INTO notes SELECT g, 'n' || g FROM generate_series(1, 50) g"
    fi
}

setup() {
    skip_without_cluster
    unset PGTRICKLE_DSN PGSERVICE PGHOSTADDR PGOPTIONS
    export PGHOST=127.0.0.1 PGPORT=$(port_of coordinator) PGUSER=postgres PGDATABASE=postgres
}

teardown() {
    # A test that halted worker2 or made a worker refuse or stall the update undoes that,
    # also on failure.
    if [ -n "${WORKER2_HALTED:-}" ]; then
        bash "$CLUSTER" resume worker2 >/dev/null 2>&1
        WORKER2_HALTED=
    fi
    on worker2 "DROP EVENT TRIGGER IF EXISTS refuse_alter_extension" >/dev/null 2>&1 || true
    on worker1 "DROP EVENT TRIGGER IF EXISTS slow_alter_extension" >/dev/null 2>&1 || true
}

# on_until NODE SQL EXPECTED: poll NODE (up to 20 s) until SQL returns EXPECTED.
on_until() {
    local i out=
    for i in $(seq 1 80); do
        out=$(on "$1" "$2" 2>/dev/null || true)
        [ "$out" = "$3" ] && return 0
        sleep 0.25
    done
    echo "waited on $1 for '$2' = '$3', last: '$out'"
    return 1
}

teardown_file() {
    cluster_down
}

# version_on NODE: pg_trickle's version on NODE.
version_on() { on "$1" "SELECT extversion FROM pg_extension WHERE extname = 'pg_trickle'"; }

# versions: "coordinator worker1 worker2" versions.
versions() { echo "$(version_on coordinator) $(version_on worker1) $(version_on worker2)"; }

# refuse_update_on_worker2: worker2's ALTER EXTENSION fails (an event trigger raising an
# error), as a broken script or a lock timeout would, after worker1 has been migrated.
refuse_update_on_worker2() {
    bash "$CLUSTER" psql worker2 -q \
        -c "SET citus.enable_ddl_propagation = off" \
        -c "CREATE OR REPLACE FUNCTION public.refuse_alter_extension() RETURNS event_trigger LANGUAGE plpgsql AS \$\$BEGIN RAISE EXCEPTION 'worker2 refuses to update its extensions'; END\$\$" \
        -c "CREATE EVENT TRIGGER refuse_alter_extension ON ddl_command_start WHEN TAG IN ('ALTER EXTENSION') EXECUTE FUNCTION public.refuse_alter_extension()"
}

@test "a 0.31.0 cluster: dry run plans the coordinator and both workers and changes nothing" {
    local c w1 w2
    c=127.0.0.1:$(port_of coordinator)
    w1=127.0.0.1:$(port_of worker1)
    w2=127.0.0.1:$(port_of worker2)
    [ "$(versions)" = "0.31.0 0.31.0 0.31.0" ]
    run -0 --separate-stderr pgt create plans_per_kind --query 'SELECT plan, count(*) AS n, sum(seats) AS seats FROM plans GROUP BY plan'
    run -0 --separate-stderr pgt create long_notes --query 'SELECT id, body FROM notes WHERE id > 10'
    on coordinator "UPDATE plans SET seats = seats + 1 WHERE id % 5 = 0"

    run -0 --separate-stderr pgt --format json migrate --dry-run
    json_is '.dry_run == true and .status.code == "ok"'
    json_is "[.nodes[].node] == [\"$c\", \"$w1\", \"$w2\"]"
    json_is '[.nodes[].role] == ["coordinator", "worker", "worker"]'
    json_is 'all(.nodes[]; .from == "0.31.0" and .to == "0.35.0" and (.steps | length) == 4 and .applied == false and .outcome == "planned" and .problems == [])'
    # The coordinator's two trigger-captured sources: 7 renames each; the workers capture nothing.
    json_is '(.nodes[0].renames | length) == 14 and .nodes[0].frontier_rekeys == 2'
    json_is 'all(.nodes[1:][]; (.renames | length) == 0)'
    [ "$(versions)" = "0.31.0 0.31.0 0.31.0" ]
}

@test "a stopped worker: migrate refuses before changing anything (exit 7, the node named)" {
    WORKER2_HALTED=1
    bash "$CLUSTER" halt worker2 >/dev/null
    run -7 --separate-stderr pgt --format json migrate
    json_is '.status.code == "partial_failure"'
    json_is ".status.message | test(\"unreachable 127.0.0.1:$(port_of worker2)\") and test(\"nothing was changed\")"
    json_is ".nodes[] | select(.node == \"127.0.0.1:$(port_of worker2)\") | .outcome == \"unreachable\" and .applied == false and (.error | test(\"could not connect\"))"
    json_is '[.nodes[:2][].outcome] == ["not_attempted", "not_attempted"]'
    # The retries are reported on stderr.
    [[ "$stderr" == *"attempt 1 of 3"* ]]
    bash "$CLUSTER" resume worker2 >/dev/null
    WORKER2_HALTED=
    [ "$(version_on coordinator) $(version_on worker1)" = "0.31.0 0.31.0" ]
}

@test "a worker failing half-way: exit 7 with what was done where; a rerun finishes every node" {
    local c w1 w2 sn
    c=127.0.0.1:$(port_of coordinator)
    w1=127.0.0.1:$(port_of worker1)
    w2=127.0.0.1:$(port_of worker2)
    refuse_update_on_worker2
    run -7 --separate-stderr pgt --format json migrate
    json_is '.status.code == "partial_failure"'
    # Workers first: worker1 migrated, worker2 failed (rolled back), the coordinator untouched.
    json_is ".nodes[] | select(.node == \"$w1\") | .outcome == \"migrated\" and .applied == true"
    json_is ".nodes[] | select(.node == \"$w2\") | .outcome == \"failed\" and .applied == false and (.error | test(\"worker2 refuses\")) and (.error | test(\"SQLSTATE P0001\"))"
    json_is ".nodes[] | select(.node == \"$c\") | .outcome == \"not_attempted\" and .applied == false"
    json_is ".status.message | test(\"$w2 failed\") and test(\"migrated: $w1\") and test(\"not attempted: $c\")"
    [ "$(versions)" = "0.31.0 0.35.0 0.31.0" ]
    # Still OID names on the coordinator.
    [ "$(on coordinator "SELECT to_regclass('pgtrickle_changes.changes_' || 'plans'::regclass::oid) IS NOT NULL")" = t ]
    # Until the rerun, preflight and status name the node on another version (exit 6).
    run -6 --separate-stderr pgt --format json preflight
    json_is ".nodes[] | select(.node == \"$w1\") | .checks[] | select(.name == \"extension\") | .status == \"fail\" and (.detail | test(\"0.35.0\")) and (.hint | test(\"pgtrickle migrate\"))"
    json_is ".nodes[] | select(.node == \"$w2\") | .checks[] | select(.name == \"extension\") | .status == \"pass\""
    run -6 --separate-stderr pgt --format json status
    json_is ".nodes[] | select(.node == \"$w1\") | .pg_trickle_version == \"0.35.0\" and .reachable == true and .status.code == \"version_mismatch\""
    json_is ".nodes[] | select(.node == \"$w2\") | .pg_trickle_version == \"0.31.0\" and .status.code == \"ok\""
    json_is "[.problems[] | select(.reason == \"node_version_mismatch\") | .subject] == [\"$w1\"]"

    on worker2 "DROP EVENT TRIGGER refuse_alter_extension"
    run -0 --separate-stderr pgt --format json migrate
    json_is '.status.code == "ok"'
    json_is ".nodes[] | select(.node == \"$w1\") | .from == \"0.35.0\" and .outcome == \"up_to_date\""
    json_is ".nodes[] | select(.node == \"$w2\") | .from == \"0.31.0\" and .outcome == \"migrated\""
    json_is ".nodes[] | select(.node == \"$c\") | .from == \"0.31.0\" and .outcome == \"migrated\" and (.renames | length) == 14"
    [ "$(versions)" = "0.35.0 0.35.0 0.35.0" ]
    # Stable names on the coordinator: the renamed buffer exists, the OID-named one is gone.
    sn=$(on coordinator "SELECT pgtrickle.source_stable_name('plans'::regclass)")
    [[ "$sn" =~ ^[0-9a-f]{16}$ ]]
    [ "$(on coordinator "SELECT to_regclass('pgtrickle_changes.changes_$sn') IS NOT NULL")" = t ]
    [ "$(on coordinator "SELECT to_regclass('pgtrickle_changes.changes_' || 'plans'::regclass::oid) IS NULL")" = t ]
    # The workers' catalogs are the 0.35.0 ones.
    for node in worker1 worker2; do
        [ "$(on "$node" "SELECT count(*) FROM pg_attribute WHERE attrelid = 'pgtrickle.pgt_stream_tables'::regclass AND attname = 'refresh_settings'")" = 1 ]
    done
    # The change made before the migration was kept and is applied differentially.
    refreshed_matches plans_per_kind 'SELECT plan, count(*) AS n, sum(seats) AS seats FROM plans GROUP BY plan'
    [ "$(on coordinator "SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'plans_per_kind'")" = differential ]

    run -0 --separate-stderr pgt --format json migrate
    json_is 'all(.nodes[]; .outcome == "up_to_date") and (.status.message | test("nothing to do"))'
    run -0 --separate-stderr pgt --format json status
    json_is 'all(.nodes[]; .pg_trickle_version == "0.35.0" and .status.code == "ok")'
}

@test "refresh --all on the coordinator refreshes stream tables over distributed, reference and local tables, upstream first" {
    local q_orders q_regions q_top
    # Whatever the tests before left, the cluster is at this CLI's version from here on.
    run -0 --separate-stderr pgt migrate
    [ "$(versions)" = "0.35.0 0.35.0 0.35.0" ]
    on coordinator "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL, qty int)"
    on coordinator "SELECT create_distributed_table('orders', 'id')"
    on coordinator "ALTER TABLE orders REPLICA IDENTITY FULL"
    on coordinator "INSERT INTO orders SELECT g, g % 20, g % 7 FROM generate_series(1, 2000) g"
    on coordinator "CREATE TABLE regions (customer_id int PRIMARY KEY, region text NOT NULL)"
    on coordinator "SELECT create_reference_table('regions')"
    on coordinator "ALTER TABLE regions REPLICA IDENTITY FULL"
    on coordinator "INSERT INTO regions SELECT g, CASE WHEN g % 3 = 0 THEN 'east' ELSE 'west' END FROM generate_series(0, 19) g"
    q_orders='SELECT customer_id, count(*) AS n, sum(qty) AS qty FROM orders GROUP BY customer_id'
    q_regions='SELECT region, count(*) AS customers FROM regions GROUP BY region'
    q_top='SELECT customer_id, qty FROM per_customer WHERE qty > 600'
    on coordinator "CALL pgtrickle.create_stream_table('per_customer', '$q_orders', refresh_mode => 'differential')"
    on coordinator "CALL pgtrickle.create_stream_table('per_region', '$q_regions', refresh_mode => 'differential')"
    # A stream table over a stream table: refreshed after it.
    on coordinator "CALL pgtrickle.create_stream_table('top_customers', '$q_top')"
    on coordinator "INSERT INTO orders SELECT g, g % 23, 9 FROM generate_series(5000, 5400) g"
    on coordinator "DELETE FROM orders WHERE id % 11 = 0"
    on coordinator "UPDATE regions SET region = 'north' WHERE customer_id % 4 = 0"
    on coordinator "UPDATE plans SET seats = seats + 2 WHERE id % 3 = 0"

    run -0 --separate-stderr pgt --format json refresh --all
    json_is '.status.code == "ok" and .summary.failed == 0'
    json_is '.summary.refreshed == ([.results[]] | length) and all(.results[]; .ok)'
    json_is '[.results[].name] | index("public.per_customer") < index("public.top_customers")'
    json_is '[.results[].name] | contains(["public.per_customer", "public.per_region", "public.top_customers", "public.plans_per_kind", "public.long_notes"])'
    [ "$(differs per_customer "$q_orders")" = 0 ]
    [ "$(differs per_region "$q_regions")" = 0 ]
    [ "$(differs top_customers "SELECT customer_id, qty FROM ($q_orders) p WHERE qty > 600")" = 0 ]
    [ "$(differs plans_per_kind 'SELECT plan, count(*) AS n, sum(seats) AS seats FROM plans GROUP BY plan')" = 0 ]
    [ "$(on coordinator "SELECT count(*) FROM pgtrickle.pgt_stream_tables WHERE pgt_name IN ('per_customer', 'per_region') AND last_refresh_mode = 'differential'")" = 2 ]
}

@test "refresh --all and migrate against a worker refuse (exit 3), naming the coordinator" {
    local c
    c=127.0.0.1:$(port_of coordinator)
    run -3 --separate-stderr pgt --format json --dsn "host=127.0.0.1 port=$(port_of worker1) user=postgres dbname=postgres" refresh --all
    json_is ".status.code == \"configuration\" and (.status.message | test(\"Citus worker\")) and (.status.message | test(\"$c\")) and (.status.hint | test(\"coordinator\"))"
    run -3 --separate-stderr pgt --format json --dsn "host=127.0.0.1 port=$(port_of worker1) user=postgres dbname=postgres" migrate --dry-run
    json_is ".status.code == \"configuration\" and (.status.message | test(\"Citus worker\")) and (.status.hint | test(\"against the coordinator\"))"
}

@test "a plan with a problem on the coordinator changes no node (exit 6)" {
    # WAL-captured sources (orders, regions) cannot be read by the 0.31.0 catalog.
    run -6 --separate-stderr pgt --format json migrate --rollback
    json_is '.status.code == "unhealthy" and (.status.message | test("nothing was changed on any node"))'
    json_is '.nodes[0].role == "coordinator" and (.nodes[0].problems | any(test("public.orders is captured through WAL")))'
    json_is 'all(.nodes[]; .applied == false and .outcome == "not_attempted")'
    [ "$(versions)" = "0.35.0 0.35.0 0.35.0" ]
}

@test "a rollback goes coordinator first; a worker's connection killed mid-update gives exit 7, a rerun finishes" {
    local c w1 w2 pid rc=0
    c=127.0.0.1:$(port_of coordinator)
    w1=127.0.0.1:$(port_of worker1)
    w2=127.0.0.1:$(port_of worker2)
    run -0 --separate-stderr pgt drop top_customers
    run -0 --separate-stderr pgt drop per_customer
    run -0 --separate-stderr pgt drop per_region
    # worker1: its update hangs (an event trigger sleeping) until its connection is killed.
    bash "$CLUSTER" psql worker1 -q \
        -c "SET citus.enable_ddl_propagation = off" \
        -c "CREATE OR REPLACE FUNCTION public.slow_alter_extension() RETURNS event_trigger LANGUAGE plpgsql AS \$\$BEGIN PERFORM pg_sleep(120); END\$\$" \
        -c "CREATE EVENT TRIGGER slow_alter_extension ON ddl_command_start WHEN TAG IN ('ALTER EXTENSION') EXECUTE FUNCTION public.slow_alter_extension()"
    pgt --format json migrate --rollback >"$BATS_TEST_TMPDIR/out.json" 2>"$BATS_TEST_TMPDIR/err" 3>&- &
    pid=$!
    on_until worker1 "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'ALTER EXTENSION%' AND wait_event = 'PgSleep'" 1
    # The coordinator went first and is committed by now.
    [ "$(version_on coordinator)" = 0.31.0 ]
    on worker1 "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'ALTER EXTENSION%' AND wait_event = 'PgSleep'" >/dev/null
    wait "$pid" || rc=$?
    on worker1 "DROP EVENT TRIGGER slow_alter_extension"
    [ "$rc" = 7 ] || { cat "$BATS_TEST_TMPDIR/err"; return 1; }
    output=$(cat "$BATS_TEST_TMPDIR/out.json")
    json_is '.status.code == "partial_failure"'
    json_is ".nodes[] | select(.node == \"$c\") | .outcome == \"migrated\" and .to == \"0.31.0\""
    json_is ".nodes[] | select(.node == \"$w1\") | .outcome == \"failed\" and (.error | test(\"terminating connection|connection was lost\"))"
    json_is ".nodes[] | select(.node == \"$w2\") | .outcome == \"not_attempted\""
    [ "$(versions)" = "0.31.0 0.35.0 0.35.0" ]

    run -0 --separate-stderr pgt --format json migrate --rollback
    json_is ".nodes[] | select(.node == \"$c\") | .outcome == \"up_to_date\""
    json_is "[.nodes[] | select(.role == \"worker\") | .outcome] == [\"migrated\", \"migrated\"]"
    [ "$(versions)" = "0.31.0 0.31.0 0.31.0" ]
    [ "$(on coordinator "SELECT to_regclass('pgtrickle_changes.changes_' || 'plans'::regclass::oid) IS NOT NULL")" = t ]

    # And forward again: every node at this CLI's version, the stream tables still work.
    run -0 --separate-stderr pgt migrate
    [ "$(versions)" = "0.35.0 0.35.0 0.35.0" ]
    on coordinator "UPDATE plans SET seats = seats + 1 WHERE id % 7 = 0"
    run -0 --separate-stderr pgt --format json refresh --all
    json_is '.summary.failed == 0 and .summary.refreshed == 2'
    [ "$(differs plans_per_kind 'SELECT plan, count(*) AS n, sum(seats) AS seats FROM plans GROUP BY plan')" = 0 ]
}

@test "a catalog in use on a worker: migrate waits for it with jittered retries, then migrates" {
    run -0 --separate-stderr pgt migrate --to 0.34.0
    [ "$(versions)" = "0.34.0 0.34.0 0.34.0" ]
    # worker2: a transaction reads pg_trickle's catalog for 3 seconds (as a long refresh would).
    bash "$CLUSTER" psql worker2 -q -c "BEGIN" -c "LOCK TABLE pgtrickle.pgt_stream_tables IN ACCESS SHARE MODE" -c "SELECT pg_sleep(3)" -c "COMMIT" >/dev/null 2>&1 3>&- &
    on_until worker2 "SELECT count(*) FROM pg_locks WHERE relation = 'pgtrickle.pgt_stream_tables'::regclass AND granted AND mode = 'AccessShareLock' AND pid <> pg_backend_pid()" 1
    run -0 --separate-stderr pgt --format json migrate
    json_is '.status.code == "ok" and all(.nodes[]; .outcome == "migrated")'
    [[ "$stderr" == *"127.0.0.1:$(port_of worker2): pg_trickle's catalog is in use, retrying in"* ]]
    [ "$(versions)" = "0.35.0 0.35.0 0.35.0" ]
    # Nothing of pg_trickle's own failed meanwhile (teardown_file checks the logs too).
    run -0 --separate-stderr pgt --format json refresh --all
}
