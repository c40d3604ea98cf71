#!/usr/bin/env bats
# `pgtrickle slots` on a single server (no Citus): local WAL-captured sources, the documented
# errors and exit codes.
# Worker slots on a real cluster are tested in tests/e2e/preflight.bats.

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
