#!/usr/bin/env bats
# `pgtrickle dump`: the script recreates every stream table (options, suspension,
# dependency order, odd identifiers) in a database that has only the source tables.

load helpers

# Source tables and their rows, created the same way in both databases.
SOURCES_SQL=$(cat <<'SQL'
CREATE TABLE orders (id int PRIMARY KEY, customer int NOT NULL, amount numeric NOT NULL);
INSERT INTO orders SELECT g, g % 5, g * 1.5 FROM generate_series(1, 40) g;
CREATE SCHEMA "sales data";
CREATE TABLE "sales data"."Line ""Items""" (id int PRIMARY KEY, order_id int NOT NULL, qty int NOT NULL);
INSERT INTO "sales data"."Line ""Items""" SELECT g, g % 7, g FROM generate_series(1, 50) g;
SQL
)

setup_file() {
    require_installed_extension
    start_server DUMP
    use_server DUMP postgres
    sql postgres "CREATE DATABASE cli_dump_src"
    sql postgres "CREATE DATABASE cli_dump_dst"
    local db
    for db in cli_dump_src cli_dump_dst; do
        sql "$db" "CREATE EXTENSION pg_trickle"
        "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -d "$db" <<<"$SOURCES_SQL"
    done
    use_server DUMP cli_dump_src
    # zz_base is read by aa_top: the dump must create it first despite the names' order.
    pgt create zz_base --mode differential --schedule 1m \
        --query 'SELECT customer, count(*) AS n, sum(amount) AS total FROM orders GROUP BY customer'
    pgt create aa_top --mode full --query 'SELECT customer, total FROM zz_base WHERE n > 7'
    pgt create '"sales data"."odd ""name"" x"' \
        --query $'SELECT order_id, sum(qty) AS q, \'it\'\'s\' AS tag, E\'back\\\\slash\' AS b\n  FROM "sales data"."Line ""Items""" GROUP BY order_id'
    pgt create paused --schedule '*/5 * * * *' --query 'SELECT id, amount FROM orders WHERE amount > 30'
    pgt alter paused --status suspended
}

teardown_file() {
    stop_server DUMP
}

setup() {
    use_server DUMP cli_dump_src
}

# catalog DB: the stream tables' definitions and options, one line each.
catalog() {
    sql "$1" "SELECT pgt_schema, pgt_name, defining_query, schedule, refresh_mode, cdc_mode, status
              FROM pgtrickle.pgt_stream_tables ORDER BY pgt_schema, pgt_name"
}

# same_contents TABLE COLUMNS: TABLE's visible columns hold the same multiset of rows in
# both databases (copied from the source into the target, then EXCEPT ALL both ways).
same_contents() {
    local table=$1 cols=$2 copy="$BATS_TEST_TMPDIR/rows.copy"
    "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -d cli_dump_src \
        -c "\\copy (SELECT $cols FROM $table) TO '$copy'"
    sql cli_dump_dst "DROP TABLE IF EXISTS expected_rows;
                      CREATE TABLE expected_rows AS SELECT $cols FROM $table WITH NO DATA"
    "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -d cli_dump_dst -c "\\copy expected_rows FROM '$copy'"
    local diff
    diff=$(sql cli_dump_dst "SELECT count(*) FROM (
        (SELECT $cols FROM $table EXCEPT ALL SELECT * FROM expected_rows)
        UNION ALL (SELECT * FROM expected_rows EXCEPT ALL SELECT $cols FROM $table)) d")
    if [ "$diff" != 0 ]; then
        echo "$table differs in $diff rows" >&2
        return 1
    fi
    [ "$(sql cli_dump_dst "SELECT count(*) FROM $table")" -gt 0 ]
}

@test "dump --format json lists definitions in dependency order" {
    run -0 --separate-stderr pgt --format json dump
    json_is '.format_version == 1 and .command == "dump" and .status.code == "ok"'
    json_is '[.stream_tables[].name] | index("zz_base") < index("aa_top")'
    json_is '.stream_tables[] | select(.name == "aa_top") | .depends_on == ["public.zz_base"] and .refresh_mode == "full" and .schedule == null'
    json_is '.stream_tables[] | select(.name == "zz_base") | .schedule == "1m" and .refresh_mode == "differential" and .depends_on == []'
    json_is '.stream_tables[] | select(.name == "paused") | .status == "suspended" and .schedule == "*/5 * * * *"'
    json_is '.stream_tables[] | select(.schema == "sales data") | .name == "odd \"name\" x" and (.query | test("back"))'
    json_is '.stream_tables[0] | keys == (["schema","name","query","schedule","refresh_mode","cdc_mode","output_distribution_column","placement","status","depends_on"] | sort)'
}

@test "the dump recreates identical stream tables in a database with only the sources" {
    local file="$BATS_TEST_TMPDIR/dump.sql"
    pgt dump >"$file"
    grep -q '^-- pg_trickle stream tables' "$file"
    grep -q '^BEGIN;$' "$file"
    grep -q '^COMMIT;$' "$file"
    "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -d cli_dump_dst -f "$file"

    [ "$(catalog cli_dump_dst)" = "$(catalog cli_dump_src)" ]
    [ "$(sql cli_dump_dst "SELECT status FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'paused'")" = suspended ]
    same_contents zz_base 'customer, n, total'
    same_contents aa_top 'customer, total'
    same_contents '"sales data"."odd ""name"" x"' 'order_id, q, tag, b'
    same_contents paused 'id, amount'
    [ "$(sql cli_dump_dst "SELECT b FROM \"sales data\".\"odd \"\"name\"\" x\" LIMIT 1")" = 'back\slash' ]

    # Dumping the copy gives the same script, but for the database name in the header.
    use_server DUMP cli_dump_dst
    diff <(grep -v '^-- Dumped from' "$file") <(pgt dump | grep -v '^-- Dumped from')
    # And the recreated stream tables are maintained: a write shows up after a refresh.
    sql cli_dump_dst "INSERT INTO orders VALUES (1000, 99, 1)"
    run -0 --separate-stderr pgt refresh zz_base
    [ "$(sql cli_dump_dst "SELECT n FROM zz_base WHERE customer = 99")" = 1 ]
}

@test "dump of a database without stream tables is an empty transaction" {
    sql postgres "CREATE DATABASE cli_dump_empty"
    sql cli_dump_empty "CREATE EXTENSION pg_trickle"
    use_server DUMP cli_dump_empty
    run -0 --separate-stderr pgt dump
    [ "$(grep -v -e '^--' -e '^$' <<<"$output")" = $'BEGIN;\nCOMMIT;' ]
    run -0 --separate-stderr pgt --format json dump
    json_is '.stream_tables == []'
    sql postgres "CREATE DATABASE cli_dump_noext"
    use_server DUMP cli_dump_noext
    run -3 --separate-stderr pgt dump
}
