#!/usr/bin/env bats
# `pgtrickle slots` on a single server (no Citus): local WAL-captured sources, the documented
# errors and exit codes; and how `pgtrickle status` judges worker slots, from catalog rows
# written directly (failing, recovered, not capturable).
# Worker slots on a real cluster are tested in tests/e2e/preflight.bats, unreachable nodes in
# tests/e2e/status_health.bats.

load helpers

setup_file() {
    require_installed_extension
    start_server SLOTS
    use_server SLOTS postgres
    sql postgres "CREATE DATABASE cli_slots"
    sql cli_slots "CREATE EXTENSION pg_trickle"
    sql cli_slots "CREATE TABLE orders (id int PRIMARY KEY)"
    sql postgres "CREATE DATABASE cli_slots_noext"
}

teardown_file() {
    stop_server SLOTS
}

@test "slots without pg_trickle in the database exits 3 with the CREATE EXTENSION hint" {
    use_server SLOTS cli_slots_noext
    for action in list provision drop; do
        run -3 --separate-stderr pgt --format json slots "$action"
        json_is '.command == "slots" and .status.code == "configuration"'
        json_is '.status.hint | test("CREATE EXTENSION pg_trickle")'
    done
}

@test "slots list without Citus prints no rows and says why (exit 0)" {
    use_server SLOTS cli_slots
    run -0 --separate-stderr pgt --format json slots list
    json_is '.command == "slots" and .action == "list" and .slots == [] and .status.code == "ok"'
    json_is '.status.message | test("Citus is not installed")'
    run -0 --separate-stderr pgt slots list
    [ -z "$output" ]
    [[ "$stderr" == *"Citus is not installed"* ]]
    [[ "$stderr" == *"cdc_mode 'wal'"* ]]
    run -0 --separate-stderr pgt --format json slots list --source orders
    json_is '.slots == []'
    run -1 --separate-stderr pgt --format json slots list no_such_table
    json_is '.status.message | test("no_such_table")'
}

@test "slots on a single server: a local table captured through WAL has its slot listed and provisioned" {
    use_server SLOTS cli_slots
    run -0 --separate-stderr pgt --format json slots provision
    json_is '.status.code == "ok" and .slots == []'
    sql cli_slots "CREATE TABLE walsrc (id int PRIMARY KEY, v int)"
    sql cli_slots "ALTER TABLE walsrc REPLICA IDENTITY FULL"
    sql cli_slots "CALL pgtrickle.create_stream_table('walst', 'SELECT v, count(*) AS n FROM walsrc GROUP BY v', cdc_mode => 'wal')"
    run -0 --separate-stderr pgt --format json slots list
    json_is '(.slots | length) == 1 and (.slots[0].slot_name | test("^pgtrickle_[0-9a-f]{16}$")) and .slots[0].source == "public.walsrc"'
    run -0 --separate-stderr pgt --format json slots provision walsrc
    json_is '(.slots | length) == 1 and .slots[0].action == "present"'
    run -0 --separate-stderr pgt --format json slots drop
    json_is '.status.code == "ok" and .slots == []'
    sql cli_slots "CALL pgtrickle.drop_stream_table('walst')"
    sql cli_slots "DROP TABLE walsrc"
    run -0 --separate-stderr pgt --format json slots list
    json_is '.slots == []'
}

@test "slots usage errors: unknown action, a source for drop, two different sources" {
    use_server SLOTS cli_slots
    run -2 --separate-stderr pgt slots frobnicate
    run -2 --separate-stderr pgt --format json slots drop orders
    json_is '.status.code == "usage"'
    run -2 --separate-stderr pgt slots list orders --source other
}

@test "status without Citus has no worker_slots and no worker slot metrics" {
    use_server SLOTS cli_slots
    run -0 --separate-stderr pgt --format json status
    json_is 'has("worker_slots") | not'
    run -0 --separate-stderr pgt --format prometheus status
    [[ "$output" != *pgtrickle_worker_slot_* ]]
}

# fake_slots: two worker slot rows of a source pg_trickle does not capture (so that no poller
# touches them): 10.0.0.1 healthy, 10.0.0.2 with 3 failed polls.
fake_slots() {
    sql cli_slots "INSERT INTO pgtrickle.pgt_worker_slots (source_stable_name, worker_name, worker_port, slot_name, publication_name, worker_frontier, worker_lsn, last_polled_at, consecutive_failures, last_error, failing_since) VALUES
        ('00000000000000aa', '10.0.0.1', 5432, 'pgtrickle_00000000000000aa', 'pgtrickle_00000000000000aa', '0/1000', '0/1800', now(), 0, NULL, NULL),
        ('00000000000000aa', '10.0.0.2', 5432, 'pgtrickle_00000000000000aa', 'pgtrickle_00000000000000aa', '0/2000', '0/2000', now() - interval '1 minute', 3, 'could not connect to node 10.0.0.2:5432: Connection refused', now() - interval '1 minute')"
}

@test "status: a worker slot with failed polls is unhealthy (exit 6), in JSON, problems and metrics" {
    use_server SLOTS cli_slots
    fake_slots
    run -6 --separate-stderr pgt --format json status
    json_is '.status.code == "unhealthy" and (.status.message | test("1 of 2 worker slots failing"))'
    json_is '[.worker_slots[].worker] == ["10.0.0.1:5432", "10.0.0.2:5432"]'
    json_is '.worker_slots[0].status == {"code": "ok", "message": "healthy"}'
    json_is '.worker_slots[1].status.code == "failing" and (.worker_slots[1].status.message | test("^3 failed polls since .*: could not connect to node 10.0.0.2:5432"))'
    json_is '.problems | length == 1 and .[0].subject == "00000000000000aa@10.0.0.2:5432" and .[0].reason == "worker_slot_failing"'
    json_is 'has("nodes") | not'
    run -6 --separate-stderr pgt --format prometheus status
    [[ "$output" == *'pgtrickle_worker_slot_up{source="00000000000000aa",worker="10.0.0.1:5432"} 1'* ]]
    [[ "$output" == *'pgtrickle_worker_slot_up{source="00000000000000aa",worker="10.0.0.2:5432"} 0'* ]]
    [[ "$output" == *$'\npgtrickle_healthy 0\n'* ]]
    [[ "$output" != *pgtrickle_node_up* ]]
    run -6 --separate-stderr pgt status
    # slots list shows the rows and does not judge them (exit 0)
    run -0 --separate-stderr pgt --format json slots list
    json_is '(.slots | length) == 2 and (.status.message | test("1 failing"))'
    sql cli_slots "DELETE FROM pgtrickle.pgt_worker_slots WHERE source_stable_name = '00000000000000aa'"
}

@test "status: a slot that recovered is healthy; one without a frontier is not capturable (exit 6)" {
    use_server SLOTS cli_slots
    fake_slots
    # What a successful poll after a recreated slot leaves: no failure, a note.
    sql cli_slots "UPDATE pgtrickle.pgt_worker_slots SET consecutive_failures = 0, failing_since = NULL, last_error = 'slot pgtrickle_00000000000000aa was lost; readers fully refreshed' WHERE worker_name = '10.0.0.2'"
    run -0 --separate-stderr pgt --format json status
    json_is '.status.code == "ok" and .problems == []'
    json_is '.worker_slots[1].status.code == "ok" and (.worker_slots[1].status.message | test("recovered: slot pgtrickle_00000000000000aa was lost"))'
    # No frontier: the node cannot capture the source (last_error says why).
    sql cli_slots "UPDATE pgtrickle.pgt_worker_slots SET worker_frontier = NULL, last_error = 'wal_level is not logical on 10.0.0.2:5432' WHERE worker_name = '10.0.0.2'"
    run -6 --separate-stderr pgt --format json status
    json_is '.problems[0].reason == "worker_slot_not_capturable" and (.problems[0].message | test("wal_level is not logical"))'
    json_is '.worker_slots[1].status.code == "not_capturable"'
    sql cli_slots "DELETE FROM pgtrickle.pgt_worker_slots WHERE source_stable_name = '00000000000000aa'"
}

@test "status NAME judges only the worker slots of the sources that stream table reads" {
    use_server SLOTS cli_slots
    run -0 --separate-stderr pgt create st_orders --query 'SELECT id FROM orders'
    fake_slots
    run -6 --separate-stderr pgt --format json status
    run -0 --separate-stderr pgt --format json status st_orders
    json_is '(has("worker_slots") | not) and .problems == [] and .status.code == "ok"'
    sql cli_slots "DELETE FROM pgtrickle.pgt_worker_slots WHERE source_stable_name = '00000000000000aa'"
    run -0 --separate-stderr pgt drop st_orders
}
