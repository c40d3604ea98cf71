#!/usr/bin/env bats
# pg_ripple integration (issue 15, seed 002, docs/citus.md "pg_ripple"): a vertical-
# partitioning table captured through the WAL while it is a local table of the coordinator,
# then promoted to a distributed table as pg_ripple does; handle_vp_promoted validates the
# notification's payload; the poller moves the source's slots to the workers at its next
# tick, and the stream tables reading it go on (the same stream tables, differential again
# after one full refresh).

load helpers

VP=_pg_ripple.vp_42_delta
PER_SUBJECT="SELECT s, count(*) AS n, max(o) AS top FROM _pg_ripple.vp_42_delta GROUP BY s"
BUCKETS="SELECT o % 10 AS bucket, count(*) AS n FROM _pg_ripple.vp_42_delta GROUP BY 1"
PAYLOAD='{"table": "_pg_ripple.vp_42_delta", "shard_count": 32, "shard_table_prefix": "_pg_ripple.vp_42_delta_", "predicate_id": 42}'

setup_file() {
    cluster_up
    [ -n "${E2E_SKIP:-}" ] && return 0
    on coordinator "CREATE EXTENSION pg_trickle"
    on coordinator "CREATE SCHEMA _pg_ripple"
    on coordinator "CREATE TABLE $VP (s bigint NOT NULL, o bigint NOT NULL, g bigint NOT NULL DEFAULT 0)"
    on coordinator "ALTER TABLE $VP REPLICA IDENTITY FULL"
    on coordinator "INSERT INTO $VP SELECT g % 50, g, 0 FROM generate_series(1, 2000) g"
    on coordinator "CALL pgtrickle.create_stream_table('per_subject', '$PER_SUBJECT', refresh_mode => 'differential', cdc_mode => 'wal', schedule => NULL)"
    on coordinator "CALL pgtrickle.create_stream_table('buckets', '$BUCKETS', refresh_mode => 'differential', cdc_mode => 'wal', schedule => NULL)"
}

setup() {
    skip_without_cluster
}

teardown_file() {
    cluster_down
}

# vp_writes ROUND: inserts, updates and deletes of the VP table.
vp_writes() {
    local b=$((100000 * $1))
    on coordinator "INSERT INTO $VP SELECT g % 61, g, 1 FROM generate_series($b, $b + 80) g"
    on coordinator "UPDATE $VP SET o = o + 7 WHERE s % 11 = $1 % 11"
    on coordinator "DELETE FROM $VP WHERE o % 13 = $1 % 13"
}

both_match() {
    refreshed_matches per_subject "$PER_SUBJECT"
    refreshed_matches buckets "$BUCKETS"
}

modes() {
    on coordinator "SELECT string_agg(last_refresh_mode, ',' ORDER BY pgt_name) FROM pgtrickle.pgt_stream_tables"
}

@test "handle_vp_promoted refuses a bad payload naming the field" {
    local bad expect
    while IFS='|' read -r bad expect; do
        run on coordinator "SELECT pgtrickle.handle_vp_promoted('$bad')"
        [ "$status" -ne 0 ]
        [[ "$output" == *"$expect"* ]] || { echo "payload $bad: $output"; return 1; }
    done <<'EOF'
not json|invalid vp_promoted payload: not JSON
[1, 2]|not a JSON object
{"shard_count": 32, "shard_table_prefix": "x_", "predicate_id": 1}|field "table" must be a non-empty string (got nothing)
{"table": 7, "shard_count": 32, "shard_table_prefix": "x_", "predicate_id": 1}|field "table" must be a non-empty string (got 7)
{"table": "_pg_ripple.vp_42_delta", "shard_count": "32", "shard_table_prefix": "x_", "predicate_id": 1}|field "shard_count" must be a positive integer (got "32")
{"table": "_pg_ripple.vp_42_delta", "shard_count": 0, "shard_table_prefix": "x_", "predicate_id": 1}|field "shard_count" must be a positive integer (got 0)
{"table": "_pg_ripple.vp_42_delta", "shard_count": 32, "predicate_id": 1}|field "shard_table_prefix" must be a non-empty string (got nothing)
{"table": "_pg_ripple.vp_42_delta", "shard_count": 32, "shard_table_prefix": "x_", "predicate_id": -1}|field "predicate_id" must be a non-negative integer (got -1)
{"table": "_pg_ripple.vp_42_delta", "shard_count": 32, "shard_table_prefix": "x_", "predicate_id": 1.5}|field "predicate_id" must be a non-negative integer (got 1.5)
{"table": "_pg_ripple.nope", "shard_count": 32, "shard_table_prefix": "x_", "predicate_id": 1}|field "table": relation "_pg_ripple.nope" does not exist
{"table": "a.b.c.d", "shard_count": 32, "shard_table_prefix": "x_", "predicate_id": 1}|field "table": relation "a.b.c.d" does not exist
{"table": "otherdb.s.t", "shard_count": 32, "shard_table_prefix": "x_", "predicate_id": 1}|field "table": relation "otherdb.s.t" does not exist
EOF
    # A table pg_trickle does not capture: false; the captured one, still local: false.
    on coordinator "CREATE TABLE _pg_ripple.vp_7 (s bigint, o bigint)"
    run on coordinator "SELECT pgtrickle.handle_vp_promoted('{\"table\": \"_pg_ripple.vp_7\", \"shard_count\": 2, \"shard_table_prefix\": \"_pg_ripple.vp_7_\", \"predicate_id\": 7}')"
    [ "$output" = f ]
    run on coordinator "SELECT pgtrickle.handle_vp_promoted('$PAYLOAD')"
    [ "$output" = f ]
}

@test "a local WAL-captured source on the coordinator keeps its slot through the orphan sweep" {
    local slot
    slot=$(on coordinator "SELECT slot_name FROM pgtrickle.pgt_worker_slots")
    [ -n "$slot" ]
    on coordinator "SELECT * FROM pgtrickle.drop_orphan_worker_slots()"
    run on coordinator "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$slot'"
    [ "$output" = 1 ]
    vp_writes 1
    both_match
    [ "$(modes)" = differential,differential ]
}

@test "promoted to a distributed table: slots on the workers at the next tick, the same stream tables go on" {
    local ids slot
    ids=$(on coordinator "SELECT string_agg(pgt_id::text || ':' || pgt_relid::oid::text, ',' ORDER BY pgt_name) FROM pgtrickle.pgt_stream_tables")
    slot=$(on coordinator "SELECT slot_name FROM pgtrickle.pgt_worker_slots")
    vp_writes 2
    # What pg_ripple does (citus_trickle_compat: colocate_with 'none'), then its notification.
    on coordinator "SELECT create_distributed_table('$VP', 's', colocate_with => 'none')" >/dev/null 2>&1
    on coordinator "SELECT truncate_local_data_after_distributing_table('$VP')" >/dev/null
    run on coordinator "SELECT pgtrickle.handle_vp_promoted('$PAYLOAD')"
    [ "$output" = t ]
    # The poller's next tick: slots on both workers, none left on the coordinator.
    wait_for "SELECT count(*) FROM pgtrickle.pgt_worker_slots WHERE worker_port IN ($(port_of worker1), $(port_of worker2)) AND worker_frontier IS NOT NULL" 2 30
    wait_for "SELECT source_placement FROM pgtrickle.pgt_change_tracking" distributed
    run on coordinator "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$slot'"
    [ "$output" = 0 ]
    run on coordinator "SELECT DISTINCT source_placement FROM pgtrickle.pgt_dependencies"
    [ "$output" = distributed ]
    vp_writes 3
    # One full refresh each (what was written between the distribution and the new slots is
    # in no buffer), named in the history; then differential again.
    both_match
    [ "$(modes)" = full,full ]
    run on coordinator "SELECT count(*) FROM pgtrickle.pgt_refresh_history WHERE reason LIKE '%became a Citus distributed table (was local)%'"
    [ "$output" = 2 ]
    vp_writes 4
    both_match
    [ "$(modes)" = differential,differential ]
    vp_writes 5
    both_match
    [ "$(modes)" = differential,differential ]
    # Not recreated: the same stream tables and storage.
    [ "$(on coordinator "SELECT string_agg(pgt_id::text || ':' || pgt_relid::oid::text, ',' ORDER BY pgt_name) FROM pgtrickle.pgt_stream_tables")" = "$ids" ]
}
