#!/usr/bin/env bats
# Differential refresh over Citus sources for the shapes users write (issue 14): deltas that
# read a Citus table's rows (joins, min/max, DISTINCT, EXISTS, rescanned groups) read its
# state copy, kept at the buffer's frontier by the drains (docs/architecture.md, "Citus
# sources: deltas at their buffers' frontier"). Every stream table is created with
# refresh_mode => 'differential' and compared with its query after every refresh.

load helpers

setup_file() {
    cluster_up
    [ -n "${E2E_SKIP:-}" ] && return 0
    shape_tables
    local name q
    while IFS='|' read -r name q; do
        on coordinator "CALL pgtrickle.create_stream_table('$name', \$q\$$q\$q\$, refresh_mode => 'differential', schedule => '1h')"
    done <"$SHAPES"
}

setup() {
    skip_without_cluster
}

teardown_file() {
    cluster_down
}

# all_equal: refresh every shape (in whatever mode it must); each equals its query.
all_equal() {
    local name q
    while IFS='|' read -r name q; do
        refreshed_matches "$name" "$q" || return 1
    done <"$SHAPES"
}

@test "every shape over distributed, reference and mixed sources is created differential" {
    local name q
    while IFS='|' read -r name q; do
        run on coordinator "SELECT effective_mode FROM pgtrickle.pgt_stream_tables WHERE pgt_name = '$name'"
        [ "$output" = differential ]
    done <"$SHAPES"
    # The Citus tables whose rows deltas read have a state copy on the coordinator; the plain
    # table has none (it is read in place).
    run on coordinator "SELECT string_agg(ct.source_relid::text, ',' ORDER BY ct.source_relid::text) FROM pgtrickle.pgt_change_tracking ct WHERE to_regclass('pgtrickle_changes.state_' || ct.source_stable_name) IS NOT NULL"
    [ "$output" = "lines,orders,regions" ]
}

@test "oracle: random rounds of writes, each shape equal to its query after every refresh" {
    local r
    for r in 1 2 3 4; do
        shape_writes "$r"
        shapes_match
    done
}

@test "a copy equals its source after the rounds" {
    local key cols
    key=$(on coordinator "SELECT source_stable_name FROM pgtrickle.pgt_change_tracking WHERE source_relid = 'orders'::regclass")
    local copy="(SELECT c1, c2, c3, c4, c5 FROM pgtrickle_changes.state_$key WHERE __pgt_image IS NOT NULL)"
    run on coordinator "SELECT count(*) FROM ((SELECT * FROM $copy c EXCEPT ALL SELECT id, customer_id, qty, amount, note FROM orders) UNION ALL (SELECT id, customer_id, qty, amount, note FROM orders EXCEPT ALL SELECT * FROM $copy c)) d"
    [ "$output" = 0 ]
}

@test "concurrent writers during refreshes: every shape converges once writes stop" {
    local stop="$BATS_TEST_TMPDIR/stop" i=0
    (
        while [ ! -e "$stop" ]; do
            i=$((i + 1))
            on coordinator "INSERT INTO orders VALUES (700000 + $i, $i % 20, $i % 5, $i, 'c') ON CONFLICT DO NOTHING; UPDATE orders SET qty = qty + 1 WHERE id = 700000 + $i / 2; DELETE FROM orders WHERE id = 700000 + $i / 3; INSERT INTO lines VALUES (700000 + $i, 1, $i % 4) ON CONFLICT DO NOTHING" >/dev/null 2>&1 || true
        done
    ) &
    local writer=$! name q
    for i in 1 2 3; do
        while IFS='|' read -r name q; do
            refresh "$name"
        done <"$SHAPES"
    done
    touch "$stop"
    wait "$writer"
    shapes_match
}

@test "a transaction left open across refreshes delays none of them and counts once" {
    local holder="$BATS_TEST_TMPDIR/holder"
    mkfifo "$holder.in"
    # The open transaction wrote on the workers (through the coordinator) and stays open.
    # (Not to the reference table: Citus serializes writes to a reference table.)
    bash "$CLUSTER" psql coordinator -qAt <"$holder.in" >/dev/null 2>&1 &
    local pid=$!
    exec 9>"$holder.in"
    echo "BEGIN; INSERT INTO orders VALUES (800001, 3, 4, 5, 'open'), (800002, 4, 4, 5, 'open'); UPDATE orders SET qty = qty + 100 WHERE id = 7; INSERT INTO lines VALUES (800001, 1, 3);" >&9
    sleep 1
    shape_writes 5
    # No refresh waits for it (a lock on the source would): each finishes well within 20 s.
    local name q
    while IFS='|' read -r name q; do
        run timeout 20 bash "$CLUSTER" psql coordinator -v ON_ERROR_STOP=1 -qAt -c "CALL pgtrickle.refresh_stream_table('$name')"
        [ "$status" -eq 0 ]
        run differs "$name" "$q"
        [ "$output" = 0 ]
    done <"$SHAPES"
    echo "COMMIT;" >&9
    exec 9>&-
    wait "$pid"
    shapes_match
    run on coordinator "SELECT count(*) FROM orders WHERE note = 'open'"
    [ "$output" = 2 ]
    run differs d_global "SELECT count(*) AS n, sum(qty) AS q, max(qty) AS m FROM orders"
    [ "$output" = 0 ]
}

@test "TRUNCATE and a schema change of a copied source: readers recompute, then go on differentially" {
    on coordinator "TRUNCATE lines"
    on coordinator "INSERT INTO lines SELECT g, 1, g % 5 FROM generate_series(1, 600, 2) g"
    local name q
    all_equal
    on coordinator "ALTER TABLE orders ADD COLUMN extra int DEFAULT 7"
    on coordinator "UPDATE orders SET extra = 8 WHERE id % 10 = 0"
    all_equal
    shape_writes 6
    shapes_match
}

@test "a plain role's stream table reads the copies with its own rights, also after a schema change" {
    on coordinator "CREATE ROLE analyst LOGIN"
    on coordinator "GRANT USAGE ON SCHEMA pgtrickle TO analyst"
    on coordinator "GRANT CREATE ON SCHEMA public TO analyst"
    on coordinator "GRANT SELECT ON orders, regions TO analyst"
    # The role's own = for bigint and text (what pg_trickle's own SQL compares: row ids,
    # images, names; the query does not), first on its search_path: were it ever run with
    # the extension owner's rights, the role would become a superuser.
    on coordinator "CREATE SCHEMA analyst_s AUTHORIZATION analyst"
    local t
    for t in bigint text; do
        on coordinator "SET ROLE analyst; CREATE FUNCTION analyst_s.eq($t, $t) RETURNS bool LANGUAGE plpgsql AS \$f\$ BEGIN BEGIN ALTER ROLE analyst SUPERUSER; EXCEPTION WHEN others THEN NULL; END; RETURN \$1 OPERATOR(pg_catalog.=) \$2; END \$f\$; CREATE OPERATOR analyst_s.= (LEFTARG = $t, RIGHTARG = $t, FUNCTION = analyst_s.eq)"
    done
    local as_analyst="SET ROLE analyst; SET search_path = analyst_s, public, pg_catalog;"
    local q="SELECT r.region, max(o.amount) AS top, count(*) AS n FROM orders o JOIN regions r ON r.customer_id = o.customer_id GROUP BY r.region"
    on coordinator "$as_analyst CALL pgtrickle.create_stream_table('public.analyst_top', \$q\$$q\$q\$, refresh_mode => 'differential')"
    shape_writes 7
    on coordinator "$as_analyst CALL pgtrickle.refresh_stream_table('public.analyst_top')"
    run differs analyst_top "$q"
    [ "$output" = 0 ]
    run on coordinator "SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'analyst_top'"
    [ "$output" = differential ]
    # The copy is rebuilt with the new column; the role can still read it.
    on coordinator "ALTER TABLE orders ADD COLUMN tag text"
    on coordinator "UPDATE orders SET tag = 't' WHERE id % 9 = 0"
    shape_writes 8
    on coordinator "$as_analyst CALL pgtrickle.refresh_stream_table('public.analyst_top')"
    shape_writes 9
    on coordinator "$as_analyst CALL pgtrickle.refresh_stream_table('public.analyst_top')"
    run differs analyst_top "$q"
    [ "$output" = 0 ]
    run on coordinator "SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'analyst_top'"
    [ "$output" = differential ]
    run on coordinator "SELECT rolsuper FROM pg_roles WHERE rolname = 'analyst'"
    [ "$output" = f ]
    on coordinator "CALL pgtrickle.drop_stream_table('analyst_top')"
    on coordinator "DROP SCHEMA analyst_s CASCADE"
}

@test "a drain rolled back takes its copy rows with it: each change reaches the copy once" {
    local key
    all_equal  # past the schema change above (which made its readers recompute)
    key=$(on coordinator "SELECT pgtrickle.source_stable_name('orders'::regclass)")
    shape_writes 15
    on coordinator "BEGIN; SELECT sum(changes) FROM pgtrickle.poll_worker_slots('orders'); CALL pgtrickle.refresh_stream_table('d_minmax'); ROLLBACK"
    # (The scheduler's poller may have drained them meanwhile: then the copy moved on and
    # the refreshes below see it; either way each change counts once.)
    shapes_match
    run on coordinator "SELECT count(*) FROM ((SELECT c1, c2, c3, c4, c5 FROM pgtrickle_changes.state_$key WHERE __pgt_image IS NOT NULL EXCEPT ALL SELECT id, customer_id, qty, amount, note FROM orders) UNION ALL (SELECT id, customer_id, qty, amount, note FROM orders EXCEPT ALL SELECT c1, c2, c3, c4, c5 FROM pgtrickle_changes.state_$key WHERE __pgt_image IS NOT NULL)) d"
    [ "$output" = 0 ]
}

@test "a copy dropped by hand is created again by the next refresh, a full one that says why" {
    local key since name q
    # Every shape past the schema change above (which made its readers recompute).
    all_equal
    key=$(on coordinator "SELECT source_stable_name FROM pgtrickle.pgt_change_tracking WHERE source_relid = 'orders'::regclass")
    since=$(on coordinator "SELECT now()")
    on coordinator "DROP TABLE pgtrickle_changes.state_$key"
    shape_writes 10
    refreshed_matches d_region "$(grep '^d_region|' "$SHAPES" | cut -d'|' -f2-)"
    run on coordinator "SELECT h.mode || ': ' || h.reason FROM pgtrickle.pgt_refresh_history h JOIN pgtrickle.pgt_stream_tables s USING (pgt_id) WHERE s.pgt_name = 'd_region' AND h.started_at > '$since'"
    [[ "$output" == "full: the state copy of orders was missing"* ]]
    run on coordinator "SELECT count(*) FROM pgtrickle_changes.state_$key WHERE __pgt_image IS NOT NULL"
    [ "$output" = "$(on coordinator "SELECT count(*) FROM orders")" ]
    shape_writes 11
    shapes_match
}

@test "kill -9 of the coordinator empties the unlogged copies: the next refreshes fill them again" {
    local name q
    all_equal
    shape_writes 12
    bash "$CLUSTER" kill coordinator
    bash "$CLUSTER" resume coordinator
    shape_writes 13
    # Each reader finds its copies empty (not filled): a full refresh fills them, then they go
    # on differentially.
    all_equal
    run on coordinator "SELECT count(*) FROM pgtrickle_changes.state_$(on coordinator "SELECT pgtrickle.source_stable_name('orders'::regclass)") WHERE __pgt_image IS NOT NULL"
    [ "$output" = "$(on coordinator "SELECT count(*) FROM orders")" ]
    shape_writes 14
    shapes_match
}

# slots_of TABLE: the slots of TABLE's source on both workers.
slots_of() {
    local sn a b
    sn=$(on coordinator "SELECT pgtrickle.source_stable_name('$1'::regclass)")
    a=$(on worker1 "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pgtrickle_$sn'")
    b=$(on worker2 "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pgtrickle_$sn'")
    echo $((a + b))
}

@test "a stream table maintained by full refresh keeps no slot; made differential it gets them, and back" {
    on coordinator "CREATE TABLE events (id bigint PRIMARY KEY, kind int)"
    on coordinator "SELECT create_distributed_table('events', 'id')"
    on coordinator "ALTER TABLE events REPLICA IDENTITY FULL"
    on coordinator "INSERT INTO events SELECT g, g % 4 FROM generate_series(1, 500) g"
    local q="SELECT kind, count(*) AS n FROM events GROUP BY kind"
    on coordinator "CALL pgtrickle.create_stream_table('ev', '$q', refresh_mode => 'full', schedule => '1h')"
    run slots_of events
    [ "$output" = 0 ]
    run on coordinator "SELECT count(*) FROM pgtrickle.pgt_change_tracking WHERE source_relid = 'events'::regclass"
    [ "$output" = 0 ]
    on coordinator "INSERT INTO events SELECT g, g % 5 FROM generate_series(501, 600) g"
    refreshed_matches ev "$q"
    on coordinator "CALL pgtrickle.alter_stream_table('ev', refresh_mode => 'differential')"
    run slots_of events
    [ "$output" = 2 ]
    on coordinator "UPDATE events SET kind = 9 WHERE id % 10 = 0"
    refreshed_matches ev "$q"
    run on coordinator "SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'ev'"
    [ "$output" = differential ]
    # A second reader maintained by full refresh shares the capture while a differential
    # reader needs it; back to full refresh, the last one takes the slots with it.
    on coordinator "CALL pgtrickle.create_stream_table('ev_all', 'SELECT * FROM events', refresh_mode => 'full', schedule => '1h')"
    on coordinator "CALL pgtrickle.alter_stream_table('ev', refresh_mode => 'full')"
    run slots_of events
    [ "$output" = 0 ]
    run on coordinator "SELECT count(*) FROM pgtrickle.pgt_change_tracking WHERE source_relid = 'events'::regclass"
    [ "$output" = 0 ]
    on coordinator "DELETE FROM events WHERE id % 7 = 0"
    refreshed_matches ev "$q"
    refreshed_matches ev_all "SELECT * FROM events"
    on coordinator "CALL pgtrickle.drop_stream_table('ev_all')"
    on coordinator "CALL pgtrickle.drop_stream_table('ev')"
}

@test "the last reader's drop removes the copies" {
    local name q
    while IFS='|' read -r name q; do
        on coordinator "CALL pgtrickle.drop_stream_table('$name')"
    done <"$SHAPES"
    run on coordinator "SELECT count(*) FROM pg_tables WHERE schemaname = 'pgtrickle_changes'"
    [ "$output" = 0 ]
}
