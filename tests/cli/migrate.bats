#!/usr/bin/env bats
# `pgtrickle migrate`: plan, dry run, apply, idempotence, rollback, and an interrupted
# migration (kill -9 of the client) that leaves the installation fully old.

load helpers

setup_file() {
    require_installed_extension
    start_server MIG
}

teardown_file() {
    stop_server MIG
}

# fresh_031 DB: a 0.31.0 installation with two sources, three stream tables and changes
# that no refresh has applied yet.
fresh_031() {
    use_server MIG postgres
    sql postgres "DROP DATABASE IF EXISTS $1 WITH (FORCE)"
    sql postgres "CREATE DATABASE $1"
    use_server MIG "$1"
    sql "$1" "CREATE EXTENSION pg_trickle VERSION '0.31.0'"
    sql "$1" "CREATE TABLE orders (id int PRIMARY KEY, customer int, amount int)"
    sql "$1" "CREATE TABLE customers (id int PRIMARY KEY, name text)"
    sql "$1" "INSERT INTO orders SELECT g, g % 5, g FROM generate_series(1, 100) g"
    sql "$1" "INSERT INTO customers SELECT g, 'c' || g FROM generate_series(0, 4) g"
    pgt create per_customer --query 'SELECT customer, count(*) AS n, sum(amount) AS total FROM orders GROUP BY customer'
    pgt create named --query 'SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer'
    pgt create big --query 'SELECT id, amount FROM orders WHERE amount > 50'
    sql "$1" "INSERT INTO orders SELECT g, g % 5, g FROM generate_series(200, 220) g"
}

# matches DB: every stream table equals its query.
matches() {
    sql "$1" "CALL pgtrickle.refresh_stream_table('per_customer')"
    sql "$1" "CALL pgtrickle.refresh_stream_table('named')"
    sql "$1" "CALL pgtrickle.refresh_stream_table('big')"
    local q1='SELECT customer, count(*), sum(amount) FROM orders GROUP BY customer'
    local d
    d=$(sql "$1" "SELECT count(*) FROM (((SELECT customer, n, total FROM per_customer) EXCEPT ALL ($q1)) UNION ALL (($q1) EXCEPT ALL (SELECT customer, n, total FROM per_customer))) x")
    [ "$d" = 0 ]
    d=$(sql "$1" "SELECT count(*) FROM (((SELECT id, amount FROM big) EXCEPT ALL (SELECT id, amount FROM orders WHERE amount > 50)) UNION ALL ((SELECT id, amount FROM orders WHERE amount > 50) EXCEPT ALL (SELECT id, amount FROM big))) x")
    [ "$d" = 0 ]
}

@test "dry run prints the plan as JSON and changes nothing" {
    fresh_031 mig_dry
    run -0 --separate-stderr pgt --format json migrate --dry-run
    json_is '.format_version == 1 and .command == "migrate" and .dry_run == true'
    json_is '.nodes[0].from == "0.31.0" and .nodes[0].to == "0.35.0" and .nodes[0].applied == false'
    json_is '(.nodes[0].steps | length) == 4 and (.nodes[0].renames | length) == 14'
    json_is '.nodes[0].renames[0].kind == "table" and (.nodes[0].renames[0].to | test("changes_[0-9a-f]{16}$"))'
    json_is '.nodes[0].frontier_rekeys == 3 and .status.code == "ok"'
    json_is '(.nodes | length) == 1 and .nodes[0].role == "single" and .nodes[0].outcome == "planned"'
    [ "$(sql mig_dry "SELECT extversion FROM pg_extension WHERE extname = 'pg_trickle'")" = "0.31.0" ]
}

@test "migrate applies the plan, keeps pending changes, and a second run is a no-op" {
    fresh_031 mig_apply
    local sn
    run -0 pgt migrate
    [ "$(sql mig_apply "SELECT extversion FROM pg_extension WHERE extname = 'pg_trickle'")" = "0.35.0" ]
    sn=$(sql mig_apply "SELECT pgtrickle.source_stable_name('orders'::regclass)")
    [ "$(sql mig_apply "SELECT to_regclass('pgtrickle_changes.changes_$sn') IS NOT NULL")" = "t" ]
    [ "$(sql mig_apply "SELECT pgtrickle.pending_changes(pgt_id) FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'big'")" != "0" ]
    matches mig_apply
    [ "$(sql mig_apply "SELECT string_agg(DISTINCT last_refresh_mode, ',') FROM pgtrickle.pgt_stream_tables")" = "differential" ]
    run -0 --separate-stderr pgt --format json migrate
    json_is '.nodes[0].from == "0.35.0" and .nodes[0].to == "0.35.0" and .nodes[0].applied == false'
    json_is '.nodes[0].outcome == "up_to_date"'
    json_is '.status.message | test("nothing to do")'
}

@test "rollback moves back to OID names and keeps working" {
    fresh_031 mig_back
    run -0 pgt migrate
    sql mig_back "UPDATE orders SET amount = amount + 1 WHERE id % 4 = 0"
    run -0 --separate-stderr pgt --format json migrate --rollback
    json_is '.nodes[0].to == "0.31.0" and .nodes[0].applied == true'
    local oid
    oid=$(sql mig_back "SELECT 'orders'::regclass::oid")
    [ "$(sql mig_back "SELECT to_regclass('pgtrickle_changes.changes_$oid') IS NOT NULL")" = "t" ]
    matches mig_back
}

@test "usage errors: unknown version, --rollback with --to" {
    use_server MIG postgres
    run -2 pgt migrate --to 9.9.9
    run -2 pgt migrate --rollback --to 0.33.0
}

@test "a database without pg_trickle has nothing to migrate (exit 3)" {
    use_server MIG postgres
    sql postgres "DROP DATABASE IF EXISTS mig_none WITH (FORCE)"
    sql postgres "CREATE DATABASE mig_none"
    use_server MIG mig_none
    run -3 --separate-stderr pgt --format json migrate
    json_is '.status.code == "configuration"'
}

@test "kill -9 during migrate leaves the installation fully old; running it again finishes" {
    fresh_031 mig_kill
    # Hold a lock the migration needs, so it waits inside its transaction.
    "$PG_BINDIR/psql" -X -q -d mig_kill -c "BEGIN; LOCK TABLE orders IN ACCESS SHARE MODE; SELECT pg_sleep(4); COMMIT;" &
    local holder=$!
    sleep 0.5
    "$PGTRICKLE_BIN" -q migrate &
    local migrate=$!
    local i
    for i in $(seq 1 100); do
        [ "$(sql mig_kill "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'ALTER EXTENSION pg_trickle UPDATE%' AND wait_event_type = 'Lock'")" = 1 ] && break
        sleep 0.05
    done
    kill -9 "$migrate"
    wait "$holder"
    # The orphaned server session rolls back when it finds its client gone.
    for i in $(seq 1 100); do
        [ "$(sql mig_kill "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'ALTER EXTENSION pg_trickle UPDATE%'")" = 0 ] && break
        sleep 0.05
    done
    local oid
    oid=$(sql mig_kill "SELECT 'orders'::regclass::oid")
    [ "$(sql mig_kill "SELECT extversion FROM pg_extension WHERE extname = 'pg_trickle'")" = "0.31.0" ]
    [ "$(sql mig_kill "SELECT to_regclass('pgtrickle_changes.changes_$oid') IS NOT NULL")" = "t" ]
    run -0 pgt migrate
    [ "$(sql mig_kill "SELECT extversion FROM pg_extension WHERE extname = 'pg_trickle'")" = "0.35.0" ]
    matches mig_kill
}

# wal_031 DB: fresh_031, then `orders` captured the way 0.31.0 captured through WAL: no
# triggers, a publication and a pgoutput slot named after its OID, which hold changes that
# are in no buffer yet.
wal_031() {
    fresh_031 "$1"
    local oid
    oid=$(sql "$1" "SELECT 'orders'::regclass::oid")
    sql "$1" "DROP TRIGGER pg_trickle_cdc_ins_$oid ON orders; DROP TRIGGER pg_trickle_cdc_upd_$oid ON orders; DROP TRIGGER pg_trickle_cdc_del_$oid ON orders; DROP TRIGGER pg_trickle_cdc_trunc_$oid ON orders"
    sql "$1" "DROP FUNCTION pgtrickle_changes.pg_trickle_cdc_fn_$oid()"
    sql "$1" "UPDATE pgtrickle.pgt_change_tracking SET cdc_mode = 'wal' WHERE source_relid = 'orders'::regclass"
    sql "$1" "ALTER TABLE orders REPLICA IDENTITY FULL"
    sql "$1" "CREATE PUBLICATION pgtrickle_$oid FOR TABLE orders"
    sql "$1" "SELECT pg_create_logical_replication_slot('pgtrickle_$oid', 'pgoutput')"
    sql "$1" "INSERT INTO orders SELECT g, g % 5, g FROM generate_series(300, 340) g"
    sql "$1" "UPDATE orders SET amount = amount * 3 WHERE id % 7 = 0"
    sql "$1" "DELETE FROM orders WHERE id % 11 = 0"
}

@test "a 0.31.0 WAL-captured source: its slot's changes reach the buffer, the new slot takes over, the old one goes" {
    wal_031 mig_wal
    local oid sn since
    oid=$(sql mig_wal "SELECT 'orders'::regclass::oid")
    run -0 --separate-stderr pgt --format json migrate --dry-run
    json_is "[.nodes[0].renames[] | select(.kind == \"slot\") | .from] == [\"pgtrickle_$oid\"]"
    json_is '[.nodes[0].renames[] | select(.kind == "trigger")] | length == 4'  # customers only
    since=$(sql mig_wal "SELECT now()")
    run -0 pgt migrate
    [ "$(sql mig_wal "SELECT extversion FROM pg_extension WHERE extname = 'pg_trickle'")" = "0.35.0" ]
    sn=$(sql mig_wal "SELECT pgtrickle.source_stable_name('orders'::regclass)")
    [ "$(sql mig_wal "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pgtrickle_$oid'")" = 0 ]
    [ "$(sql mig_wal "SELECT count(*) FROM pg_publication WHERE pubname = 'pgtrickle_$oid'")" = 0 ]
    [ "$(sql mig_wal "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pgtrickle_$sn'")" = 1 ]
    [ "$(sql mig_wal "SELECT count(*) FROM pgtrickle.pgt_worker_slots WHERE source_stable_name = '$sn'")" = 1 ]
    # Written after the migration: read through the new slot.
    sql mig_wal "INSERT INTO orders SELECT g, g % 5, g FROM generate_series(400, 410) g"
    sql mig_wal "UPDATE orders SET amount = amount + 1 WHERE id % 3 = 0"
    matches mig_wal
    # Nothing recomputed: the old slot's changes were drained, not replaced by a full refresh.
    [ "$(sql mig_wal "SELECT count(*) FROM pgtrickle.pgt_refresh_history WHERE mode = 'full' AND started_at > '$since'")" = 0 ]
    [ "$(sql mig_wal "SELECT string_agg(DISTINCT last_refresh_mode, ',') FROM pgtrickle.pgt_stream_tables")" = "differential" ]
    # Rolling back below 0.35.0 is refused while a source is captured through WAL.
    run -6 --separate-stderr pgt --format json migrate --rollback
    json_is '.nodes[0].problems[0] | test("captured through WAL")'
}
