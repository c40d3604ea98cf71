#!/usr/bin/env bats
# Stream-table lifecycle through the CLI against a real server with pg_trickle:
# create, status, refresh, alter, drop, explain, and their error exits.

load helpers

setup_file() {
    require_installed_extension
    start_server LIFECYCLE
    use_server LIFECYCLE postgres
    sql postgres "CREATE DATABASE cli_lifecycle"
    sql postgres "CREATE DATABASE cli_lifecycle_noext"
    sql cli_lifecycle "CREATE EXTENSION pg_trickle"
    sql cli_lifecycle "CREATE TABLE orders (id int PRIMARY KEY, customer int NOT NULL, amount numeric NOT NULL)"
    sql cli_lifecycle "INSERT INTO orders SELECT g, g % 3, g FROM generate_series(1, 30) g"
}

teardown_file() {
    stop_server LIFECYCLE
}

setup() {
    use_server LIFECYCLE cli_lifecycle
}

@test "create, status, refresh and drop round trip" {
    run -0 --separate-stderr pgt --format json create cli_roundtrip \
        --query 'SELECT customer, count(*) AS n, sum(amount) AS total FROM orders GROUP BY customer'
    json_is '.command == "create" and .stream_table == "cli_roundtrip" and .status.code == "ok"'
    [ "$(sql cli_lifecycle "SELECT count(*) FROM cli_roundtrip")" = 3 ]

    run -0 --separate-stderr pgt --format json status cli_roundtrip
    json_is '.format_version == 1 and .status.code == "ok"'
    json_is '.stream_tables | length == 1'
    json_is '.stream_tables[0] | .pgt_name == "cli_roundtrip" and .pgt_schema == "public" and .status == "active"'
    json_is '.stream_tables[0] | has("refresh_mode") and has("effective_mode") and has("pending_changes") and has("staleness")'
    json_is '.sources | length == 1'

    sql cli_lifecycle "INSERT INTO orders VALUES (1000, 7, 5)"
    run -0 --separate-stderr pgt --format json refresh cli_roundtrip
    json_is '.command == "refresh" and .status.code == "ok"'
    [ "$(sql cli_lifecycle "SELECT n FROM cli_roundtrip WHERE customer = 7")" = 1 ]

    run -0 --separate-stderr pgt refresh --full cli_roundtrip

    run -0 --separate-stderr pgt --format json drop cli_roundtrip
    json_is '.command == "drop" and .status.code == "ok"'
    run -1 --separate-stderr pgt --format json status cli_roundtrip
    json_is '.status.code == "failure"'
}

@test "status of a suspended stream table exits 6 and names it" {
    run -0 --separate-stderr pgt create cli_suspended --query 'SELECT id, amount FROM orders'
    run -0 --separate-stderr pgt alter cli_suspended --status suspended
    run -6 --separate-stderr pgt --format json status
    json_is '.status.code == "unhealthy" and (.status.message | test("cli_suspended"))'
    json_is '.stream_tables[] | select(.pgt_name == "cli_suspended") | .status == "suspended"'
    run -6 --separate-stderr pgt status cli_suspended
    run -0 --separate-stderr pgt alter cli_suspended --status active
    run -0 --separate-stderr pgt status cli_suspended
    run -0 --separate-stderr pgt drop cli_suspended
}

@test "refresh --all refreshes every stream table and reports each" {
    run -0 --separate-stderr pgt create cli_all_a --query 'SELECT customer, count(*) AS n FROM orders GROUP BY customer'
    run -0 --separate-stderr pgt create cli_all_b --query 'SELECT id FROM orders WHERE amount > 10'
    run -0 --separate-stderr pgt --format json refresh --all
    json_is '[.results[].name] | index("public.cli_all_a") != null and index("public.cli_all_b") != null'
    json_is 'all(.results[]; .ok and .error == null)'
    json_is '.summary.failed == 0 and .status.code == "ok"'
    run -0 --separate-stderr pgt drop cli_all_a
    run -0 --separate-stderr pgt drop cli_all_b
}

@test "create with an invalid query exits 5 with the SQLSTATE in JSON" {
    run -5 --separate-stderr pgt --format json create cli_bad --query 'SELECT no_such_column FROM orders'
    json_is '.format_version == 1 and .status.code == "sql_error"'
    json_is '.status.sqlstate == "42703" and (.status.message | test("no_such_column"))'
    [[ "$stderr" == *"42703"* ]]
}

@test "refresh and drop of a missing stream table exit 5" {
    run -5 --separate-stderr pgt --format json refresh cli_missing
    json_is '.status.code == "sql_error" and (.status.sqlstate | length == 5)'
    run -5 --separate-stderr pgt drop cli_missing
}

@test "status NAME of a missing stream table exits 1" {
    run -1 --separate-stderr pgt --format json status cli_missing
    json_is '.status.code == "failure" and (.status.message | test("cli_missing"))'
}

@test "explain returns mode, differential, reason, text and tree" {
    run -0 --separate-stderr pgt --format json explain \
        --query 'SELECT customer, count(*) AS n FROM orders GROUP BY customer'
    json_is '.format_version == 1 and .command == "explain" and .status.code == "ok"'
    json_is '.explain | has("mode") and has("differential") and has("reason") and has("text") and has("tree")'
    json_is '.explain.mode == "differential" and .explain.differential == true'
    run -0 --separate-stderr pgt explain --query 'SELECT customer, count(*) AS n FROM orders GROUP BY customer'
}

@test "commands that need the extension exit 3 in a database without it" {
    use_server LIFECYCLE cli_lifecycle_noext
    run -3 --separate-stderr pgt --format json status
    json_is '.status.code == "configuration" and (.status.hint | test("CREATE EXTENSION pg_trickle"))'
    run -3 --separate-stderr pgt refresh --all
}
