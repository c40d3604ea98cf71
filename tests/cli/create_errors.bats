#!/usr/bin/env bats
# Errors in the user's --query are reported at their line and column within that query
# (not within the CALL statement the CLI sends, which passes the query as a parameter).

load helpers

setup_file() {
    require_installed_extension
    start_server CREATE_ERRORS
    use_server CREATE_ERRORS postgres
    sql postgres "CREATE DATABASE cli_create_errors"
    sql cli_create_errors "CREATE EXTENSION pg_trickle"
    sql cli_create_errors "CREATE TABLE orders (id int PRIMARY KEY, customer int, amount numeric)"
}

teardown_file() {
    stop_server CREATE_ERRORS
}

setup() {
    use_server CREATE_ERRORS cli_create_errors
}

# caret_under TEXT: true when the caret line of the last run's .status.position.excerpt
# stands under the first occurrence of TEXT in the LINE line above it.
caret_under() {
    if ! jq -e --arg t "$1" '.status.position.excerpt | split("\n") as $l
            | ($l[1] | index("^")) == ($l[0] | index($t))' >/dev/null <<<"$output"; then
        echo "the caret is not under \"$1\": $output" >&2
        return 1
    fi
}

@test "a syntax error on the third line of a query is reported at line 3 with a caret" {
    run -5 --separate-stderr pgt --format json create cli_bad_syntax --query 'SELECT id,
       amount
  FROM orders WHERE WHERE id > 1'
    json_is '.status.code == "sql_error" and .status.sqlstate == "42601"'
    json_is '.status.message == "syntax error at or near \"WHERE\""'
    json_is '.status.position | .line == 3 and .column == 21 and .character == 46'
    json_is '.status.position.excerpt | startswith("LINE 3:   FROM orders WHERE WHERE id > 1\n")'
    caret_under "WHERE id"
    [[ "$stderr" == *"line 3, column 21 of the query"* ]]
    [[ "$stderr" != *"CALL pgtrickle"* ]]
}

@test "an error past the end of the CALL text is still located in the query" {
    # libpq draws nothing for positions beyond the CALL statement's own length.
    run -5 --separate-stderr pgt --format json create cli_bad_column --query 'SELECT id, customer, amount, id + 1 AS one, id + 2 AS two, id + 3 AS three
  FROM orders
 WHERE customer > 0
   AND amout > 10'
    json_is '.status.sqlstate == "42703" and (.status.message | test("amout"))'
    json_is '.status.position | .line == 4 and .column == 8'
    caret_under "amout"
    json_is '.status.hint | test("orders.amount")'
}

@test "a non-ASCII query is located by characters, not bytes" {
    run -5 --separate-stderr pgt --format json create cli_bad_unicode --query "SELECT 'grüße, 世界' AS greeting,
       nope FROM orders"
    json_is '.status.sqlstate == "42703"'
    json_is '.status.position | .line == 2 and .column == 8'
    caret_under "nope"
}

@test "alter --query errors are located in the new query too" {
    run -0 --separate-stderr pgt create cli_alter_ok --query 'SELECT id, amount FROM orders'
    run -5 --separate-stderr pgt --format json alter cli_alter_ok --query 'SELECT id
  FROM orderz'
    json_is '.status.sqlstate == "42P01" and .status.position.line == 2'
    caret_under "orderz"
    run -0 --separate-stderr pgt drop cli_alter_ok
}

@test "errors that are not about the query carry no position" {
    run -0 --separate-stderr pgt create cli_taken --query 'SELECT id FROM orders'
    run -5 --separate-stderr pgt --format json create cli_taken --query 'SELECT id FROM orders'
    json_is '.status.sqlstate == "42P07" and (.status | has("position") | not)'
    run -0 --separate-stderr pgt drop cli_taken
}
