#!/usr/bin/env bats
# Where a stream table's storage lives on a Citus cluster (issue 15, docs/citus.md
# "Placement"): local, a reference table, or a table distributed by one of its grouping
# columns (co-located with the source whose distribution column it is) or by its row
# identity; chosen by output_distribution_column or automatically by size; a conversion by
# the user detected. Every layout is checked against its query after random writes.

load helpers

# The shapes of citus_shapes.txt, each as a reference and as a row-id-distributed stream
# table (automatic placement: citus_reference_max_rows above or below their size).
setup_file() {
    cluster_up
    [ -n "${E2E_SKIP:-}" ] && return 0
    shape_tables
    local name q
    while IFS='|' read -r name q; do
        bash "$CLUSTER" psql coordinator -v ON_ERROR_STOP=1 -qAt \
            -c "SET pg_trickle.citus_st_placement = auto" -c "SET pg_trickle.citus_reference_max_rows = 1000000000" \
            -c "CALL pgtrickle.create_stream_table('r_$name', \$q\$$q\$q\$, refresh_mode => 'differential', schedule => '1h')"
        bash "$CLUSTER" psql coordinator -v ON_ERROR_STOP=1 -qAt \
            -c "SET pg_trickle.citus_st_placement = auto" -c "SET pg_trickle.citus_reference_max_rows = 0" \
            -c "CALL pgtrickle.create_stream_table('x_$name', \$q\$$q\$q\$, refresh_mode => 'differential', schedule => '1h')"
    done <"$SHAPES"
}

setup() {
    skip_without_cluster
}

teardown_file() {
    cluster_down
}

# placement ST: st_placement and output_distribution_column as the catalog records them.
placement() {
    on coordinator "SELECT st_placement || coalesce(':' || output_distribution_column, '') FROM pgtrickle.pgt_stream_tables WHERE pgt_name = '$1'"
}

# citus_kind ST: what Citus says the storage is (local when it is not a Citus table).
citus_kind() {
    on coordinator "SELECT coalesce((SELECT citus_table_type || CASE WHEN citus_table_type = 'distributed' THEN ':' || distribution_column ELSE '' END FROM citus_tables WHERE table_name = '$1'::regclass), 'local')"
}

@test "automatic placement (citus_st_placement = auto): reference below citus_reference_max_rows, distributed by the row identity above, local without a distributed source" {
    local name q
    while IFS='|' read -r name q; do
        if [ "$name" = d_reference_local ]; then
            # No distributed source: the coordinator keeps it.
            [ "$(placement "r_$name")" = local ]
            [ "$(citus_kind "r_$name")" = local ]
            continue
        fi
        [ "$(placement "r_$name")" = reference ]
        [ "$(citus_kind "r_$name")" = reference ]
        [ "$(placement "x_$name")" = distributed:__pgt_row_id ]
        [ "$(citus_kind "x_$name")" = distributed:__pgt_row_id ]
    done <"$SHAPES"
    # Filled where they are (no rows left behind in the coordinator's shell table).
    run on coordinator "SELECT count(*) FROM ONLY x_d_distinct"
    [ "$output" = "$(on coordinator "SELECT count(*) FROM (SELECT DISTINCT customer_id, qty FROM orders) q")" ]
    run on coordinator "SELECT pg_relation_size('x_d_distinct')"
    [ "$output" = 0 ]
}

@test "oracle: every shape as a reference and as a distributed stream table equals its query after every refresh" {
    local r
    for r in 1 2 3; do
        shape_writes "$r"
        shapes_match r
        shapes_match x
    done
}

@test "output_distribution_column: a grouping column, co-located with the source it distributes; keys a group with the row id" {
    on coordinator "CALL pgtrickle.create_stream_table('by_id', 'SELECT id, customer_id, qty FROM orders WHERE qty > 2', refresh_mode => 'differential', output_distribution_column => 'id')"
    on coordinator "CALL pgtrickle.create_stream_table('by_customer', 'SELECT customer_id, count(*) AS n, sum(amount) AS total, max(qty) AS top FROM orders GROUP BY customer_id', refresh_mode => 'differential', output_distribution_column => 'customer_id')"
    [ "$(placement by_id)" = distributed:id ]
    [ "$(citus_kind by_id)" = distributed:id ]
    [ "$(placement by_customer)" = distributed:customer_id ]
    # by_id is distributed like orders (by its id): co-located with it.
    run on coordinator "SELECT (SELECT colocation_id FROM citus_tables WHERE table_name = 'by_id'::regclass) = (SELECT colocation_id FROM citus_tables WHERE table_name = 'orders'::regclass)"
    [ "$output" = t ]
    # The group's identity includes the distribution column, as Citus requires.
    run on coordinator "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'by_customer'::regclass AND indisunique"
    [[ "$output" == *"(customer_id, __pgt_row_id)"* ]]
    local r
    for r in 4 5; do
        shape_writes "$r"
        refreshed_matches by_id "SELECT id, customer_id, qty FROM orders WHERE qty > 2"
        refreshed_matches by_customer "SELECT customer_id, count(*) AS n, sum(amount) AS total, max(qty) AS top FROM orders GROUP BY customer_id"
        [ "$(on coordinator "SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'by_customer'")" = differential ]
    done
}

@test "output_distribution_column refused clearly: not a column, an aggregate, without Citus's rules" {
    run on coordinator "CALL pgtrickle.create_stream_table('bad1', 'SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id', output_distribution_column => 'nope')"
    [ "$status" -ne 0 ]
    [[ "$output" == *'output_distribution_column "nope" is not a column of the stream table'* ]]
    [[ "$output" == *"customer_id, n"* ]]
    run on coordinator "CALL pgtrickle.create_stream_table('bad2', 'SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id', refresh_mode => 'differential', output_distribution_column => 'n')"
    [ "$status" -ne 0 ]
    [[ "$output" == *'output_distribution_column "n" is not a grouping column'* ]]
    [[ "$output" == *"Use one of its grouping columns (customer_id) or __pgt_row_id"* ]]
    run on coordinator "SELECT count(*) FROM pgtrickle.pgt_stream_tables WHERE pgt_name LIKE 'bad%'"
    [ "$output" = 0 ]
    run on coordinator "SELECT to_regclass('bad2')"
    [ "$output" = "" ]
}

@test "a stream table the user makes a reference or distributed table is detected and maintained" {
    local grouped="SELECT customer_id, count(*) AS n, min(qty) AS lo FROM orders GROUP BY customer_id"
    local rows="SELECT id, customer_id, amount FROM orders WHERE qty < 3"
    bash "$CLUSTER" psql coordinator -v ON_ERROR_STOP=1 -qAt -c "SET pg_trickle.citus_st_placement = local" \
        -c "CALL pgtrickle.create_stream_table('u_grouped', '$grouped', refresh_mode => 'differential')" \
        -c "CALL pgtrickle.create_stream_table('u_rows', '$rows', refresh_mode => 'differential')"
    [ "$(placement u_grouped)" = local ]
    [ "$(citus_kind u_rows)" = local ]
    on coordinator "SELECT create_reference_table('u_grouped')" >/dev/null 2>&1
    on coordinator "SELECT create_distributed_table('u_rows', 'customer_id')" >/dev/null 2>&1
    shape_writes 6
    refreshed_matches u_grouped "$grouped"
    refreshed_matches u_rows "$rows"
    [ "$(placement u_grouped)" = reference ]
    [ "$(placement u_rows)" = distributed:customer_id ]
    run on coordinator "SELECT string_agg(last_refresh_mode, ',' ORDER BY pgt_name) FROM pgtrickle.pgt_stream_tables WHERE pgt_name IN ('u_grouped', 'u_rows')"
    [ "$output" = differential,differential ]
    # Grouped storage distributed by a column a refresh updates in place (its unique index
    # rebuilt by hand so that Citus accepts it): refused clearly, not failed inside Citus.
    on coordinator "CALL pgtrickle.create_stream_table('u_bad', 'SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id', refresh_mode => 'differential')"
    on coordinator "CREATE UNIQUE INDEX u_bad_n ON u_bad (n, __pgt_row_id)"
    on coordinator "DROP INDEX u_bad___pgt_row_id_idx"
    on coordinator "SELECT create_distributed_table('u_bad', 'n')" >/dev/null 2>&1
    shape_writes 16
    run on coordinator "CALL pgtrickle.refresh_stream_table('u_bad')"
    [ "$status" -ne 0 ]
    [[ "$output" == *'stream table "u_bad" is distributed by column "n", which is not one of its grouping columns'* ]]
    [[ "$output" == *"undistribute_table"* ]]
    on coordinator "CALL pgtrickle.drop_stream_table('u_bad')"
}

@test "writers during refreshes of distributed storage: every stream table converges" {
    local stop="$BATS_TEST_TMPDIR/stop" i=0
    (
        while [ ! -e "$stop" ]; do
            i=$((i + 1))
            on coordinator "INSERT INTO orders VALUES (900000 + $i, $i % 20, $i % 5, $i, 'c') ON CONFLICT DO NOTHING; UPDATE orders SET qty = qty + 1 WHERE id = 900000 + $i / 2; DELETE FROM orders WHERE id = 900000 + $i / 3" >/dev/null 2>&1 || true
        done
    ) &
    local writer=$!
    for i in 1 2 3; do
        refresh by_customer
        refresh x_d_region
        refresh r_d_minmax
    done
    touch "$stop"
    wait "$writer"
    refreshed_matches by_customer "SELECT customer_id, count(*) AS n, sum(amount) AS total, max(qty) AS top FROM orders GROUP BY customer_id"
    shapes_match x
    shapes_match r
}

@test "a forced full refresh of distributed storage never shows a reader an empty or partial table" {
    local q="SELECT customer_id, count(*) AS n, sum(amount) AS total, max(qty) AS top FROM orders GROUP BY customer_id"
    refreshed_matches by_customer "$q"
    local expected stop="$BATS_TEST_TMPDIR/stop-reader" seen="$BATS_TEST_TMPDIR/seen"
    expected=$(on coordinator "SELECT count(*) || '/' || sum(n) FROM by_customer")
    (
        while [ ! -e "$stop" ]; do
            on coordinator "SELECT count(*) || '/' || sum(n) FROM by_customer" >>"$seen"
        done
    ) &
    local reader=$!
    for i in 1 2 3 4 5; do
        on coordinator "CALL pgtrickle.refresh_stream_table('by_customer', true)"
    done
    touch "$stop"
    wait "$reader"
    [ "$(wc -l <"$seen")" -gt 3 ]
    run sort -u "$seen"
    [ "$output" = "$expected" ]
}

# as_placer SQL...: statements in one session of the plain role `placer` (its own search_path).
as_placer() {
    local args=() s
    for s in "$@"; do args+=(-c "$s"); done
    bash "$CLUSTER" psql coordinator -U placer -v ON_ERROR_STOP=1 -qAt "${args[@]}"
}

@test "a plain role with its own \"=\" first on its search_path: its reference and distributed stream tables refresh as it, differentially" {
    # Its "=" for bigint and text raise: pg_trickle's SQL must resolve none of them (Citus
    # also refuses a volatile operator in a write to its tables), and the role stays plain.
    on coordinator "CREATE ROLE placer LOGIN; CREATE SCHEMA placer AUTHORIZATION placer; GRANT USAGE ON SCHEMA pgtrickle TO placer; GRANT SELECT ON orders, regions TO placer"
    on coordinator "ALTER ROLE placer SET search_path = placer, pg_catalog, public"
    as_placer "CREATE FUNCTION placer.trap(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS \$\$BEGIN RAISE EXCEPTION 'placer.= (bigint) ran'; END\$\$" \
        "CREATE OPERATOR placer.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = placer.trap)" \
        "CREATE FUNCTION placer.trap(text, text) RETURNS boolean LANGUAGE plpgsql AS \$\$BEGIN RAISE EXCEPTION 'placer.= (text) ran'; END\$\$" \
        "CREATE OPERATOR placer.= (LEFTARG = text, RIGHTARG = text, FUNCTION = placer.trap)"
    local by_region="SELECT r.region, count(*) AS n, sum(o.amount) AS total, max(o.qty) AS top FROM public.orders o JOIN public.regions r ON r.customer_id OPERATOR(pg_catalog.=) o.customer_id GROUP BY r.region"
    local by_customer="SELECT o.customer_id, count(*) AS n, sum(o.amount) AS total FROM public.orders o GROUP BY o.customer_id"
    local rows="SELECT o.customer_id, o.qty FROM public.orders o WHERE o.qty OPERATOR(pg_catalog.<) 3"
    as_placer "SET pg_trickle.citus_st_placement = auto" \
        "CALL pgtrickle.create_stream_table('placer.p_region', \$q\$$by_region\$q\$, refresh_mode => 'differential', schedule => '1h')" \
        "CALL pgtrickle.create_stream_table('placer.p_customer', \$q\$$by_customer\$q\$, refresh_mode => 'differential', schedule => '1h', output_distribution_column => 'customer_id')" \
        "CALL pgtrickle.create_stream_table('placer.p_rows', \$q\$$rows\$q\$, refresh_mode => 'differential', schedule => '1h', output_distribution_column => '__pgt_row_id')"
    [ "$(citus_kind placer.p_region)" = reference ]
    [ "$(citus_kind placer.p_customer)" = distributed:customer_id ]
    [ "$(citus_kind placer.p_rows)" = distributed:__pgt_row_id ]
    local r st q
    for r in 21 22; do
        shape_writes "$r"
        for st in p_region p_customer p_rows; do
            case $st in p_region) q=$by_region ;; p_customer) q=$by_customer ;; *) q=$rows ;; esac
            as_placer "CALL pgtrickle.refresh_stream_table('placer.$st')"
            [ "$(differs "placer.$st" "$q")" = 0 ]
            [ "$(on coordinator "SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables WHERE pgt_name = '$st'")" = differential ]
        done
    done
    # A refresh in a transaction that rolls back leaves the storage as it was on every node;
    # the next refresh applies the changes.
    shape_writes 23
    local before
    before=$(on coordinator "SELECT count(*) || '/' || sum(n) || '/' || sum(total) FROM placer.p_customer")
    as_placer "BEGIN" "CALL pgtrickle.refresh_stream_table('placer.p_customer')" "ROLLBACK"
    [ "$(on coordinator "SELECT count(*) || '/' || sum(n) || '/' || sum(total) FROM placer.p_customer")" = "$before" ]
    as_placer "CALL pgtrickle.refresh_stream_table('placer.p_customer')"
    [ "$(differs placer.p_customer "$by_customer")" = 0 ]
    [ "$(on coordinator "SELECT rolsuper FROM pg_roles WHERE rolname = 'placer'")" = f ]
    as_placer "CALL pgtrickle.drop_stream_table('placer.p_region')" "CALL pgtrickle.drop_stream_table('placer.p_customer')" "CALL pgtrickle.drop_stream_table('placer.p_rows')"
}

@test "alter_stream_table keeps the placement; drop removes the shards on every node" {
    on coordinator "CALL pgtrickle.alter_stream_table('by_customer', query => 'SELECT customer_id, count(*) AS n, sum(amount) AS total, max(qty) AS top, min(qty) AS low FROM orders GROUP BY customer_id')"
    [ "$(placement by_customer)" = distributed:customer_id ]
    [ "$(citus_kind by_customer)" = distributed:customer_id ]
    refreshed_matches by_customer "SELECT customer_id, count(*) AS n, sum(amount) AS total, max(qty) AS top, min(qty) AS low FROM orders GROUP BY customer_id"
    on coordinator "CALL pgtrickle.alter_stream_table('r_d_global', query => 'SELECT count(*) AS n FROM orders')"
    [ "$(placement r_d_global)" = reference ]
    local shards
    shards=$(on coordinator "SELECT count(*) FROM citus_shards WHERE table_name = 'by_customer'::regclass")
    [ "$shards" -gt 0 ]
    on coordinator "CALL pgtrickle.drop_stream_table('by_customer')"
    run on coordinator "SELECT count(*) FROM pg_dist_shard WHERE logicalrelid::text = 'by_customer'"
    [ "$output" = 0 ]
    local w
    for w in worker1 worker2; do
        run on "$w" "SET citus.show_shards_for_app_name_prefixes = '*'; SELECT count(*) FROM pg_class WHERE relname LIKE 'by\_customer%'"
        [ "$output" = 0 ]
    done
}

@test "pgtrickle status and dump show the placements; the dump recreates them" {
    unset PGTRICKLE_DSN PGSERVICE PGHOSTADDR
    export PGHOST=127.0.0.1 PGPORT=$(port_of coordinator) PGUSER=postgres PGDATABASE=postgres
    run -0 --separate-stderr pgt --format json status
    json_is '[.stream_tables[] | select(.pgt_name == "x_d_region")][0] | .st_placement == "distributed" and .distribution_column == "__pgt_row_id"'
    json_is '[.stream_tables[] | select(.pgt_name == "r_d_region")][0] | .st_placement == "reference"'
    run --separate-stderr pgt status
    [[ "$output" == *"distributed (__pgt_row_id)"* ]]
    [[ "$output" == *"reference"* ]]
    # explain says where create would put a query's storage with the session's settings.
    local q="SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id"
    run -0 --separate-stderr pgt explain --query "$q"
    [[ "$output" == *"placement: local (on the coordinator)"* ]]
    run -0 --separate-stderr env PGOPTIONS="-c pg_trickle.citus_st_placement=auto -c pg_trickle.citus_reference_max_rows=500" "$PGTRICKLE_BIN" --format json explain --query "$q"
    json_is '.explain.placement == "auto" and .explain.reference_max_rows == 500'
    run -0 --separate-stderr pgt dump
    [[ "$output" == *"citus_st_placement', 'local', true"* ]]
    [[ "$output" == *"output_distribution_column => 'id'"* ]]
    [[ "$output" == *"create_reference_table('\"public\".\"r_d_region\"')"* ]]
    # Recreated from the script (its stream tables dropped first): the same placements.
    local script="$BATS_TEST_TMPDIR/dump.sql" before
    printf '%s\n' "$output" >"$script"
    before=$(on coordinator "SELECT string_agg(pgt_name || '=' || st_placement || coalesce(':' || output_distribution_column, ''), ',' ORDER BY pgt_name) FROM pgtrickle.pgt_stream_tables")
    local st
    for st in $(on coordinator "SELECT pgt_schema || '.' || pgt_name FROM pgtrickle.pgt_stream_tables"); do
        on coordinator "CALL pgtrickle.drop_stream_table('$st', cascade => true)" >/dev/null 2>&1 || true
    done
    [ "$(on coordinator "SELECT count(*) FROM pgtrickle.pgt_stream_tables")" = 0 ]
    PGOPTIONS="-c client_min_messages=warning" bash "$CLUSTER" psql coordinator -v ON_ERROR_STOP=1 -qAt -f "$script" >/dev/null
    run on coordinator "SELECT string_agg(pgt_name || '=' || st_placement || coalesce(':' || output_distribution_column, ''), ',' ORDER BY pgt_name) FROM pgtrickle.pgt_stream_tables"
    echo "before: $before"
    echo "after:  $output"
    [ "$output" = "$before" ]
}
