#!/usr/bin/env bats
# The CLI's own SQL is search_path-proof (CVE-2018-1058): an unprivileged role `evil` plants
# shadow operators, functions, aggregates and domains named like pg_catalog's in its schema
# (tests/support/search_path_traps.sql), and the database's search_path is set to
# `evil, pg_catalog`.
# Every command run by a superuser must not run any of it: evil.log (and the server log) get
# no entry whose current_user is not `evil`, and `evil` does not become a superuser.
# Each command is tagged with its own application_name, so a failure names the command and
# what it ran. The user's own SQL (`create --query`) is parsed with the user's search_path,
# as psql would: evil running it with its own path runs its own code, as itself only.

load helpers

DB=cli_search_path

setup_file() {
    require_installed_extension
    # No scheduler (nothing preloaded): only the commands under test run SQL as a superuser.
    start_server SP --no-preload
    use_server SP postgres
    safe postgres "CREATE DATABASE $DB"
    safe "$DB" "CREATE EXTENSION pg_trickle"
    safe "$DB" "CREATE TABLE public.items (id int PRIMARY KEY, grp int NOT NULL)"
    safe "$DB" "INSERT INTO public.items SELECT g, g % 4 FROM generate_series(1, 20) g"
    safe "$DB" "CALL pgtrickle.create_stream_table('public.st_a', 'SELECT id, grp FROM public.items')"
    safe "$DB" "CALL pgtrickle.create_stream_table('public.st_b', 'SELECT id FROM public.st_a')"
    safe "$DB" "CALL pgtrickle.create_stream_table('public.st_drop', 'SELECT grp FROM public.items')"
    safe "$DB" "CREATE ROLE evil LOGIN"
    safe "$DB" "CREATE SCHEMA evil AUTHORIZATION evil"
    safe "$DB" "GRANT USAGE ON SCHEMA pgtrickle TO evil"
    safe "$DB" "GRANT SELECT ON public.items TO evil"
    # dblink lets the payload log from read-only transactions too (the server log has it anyway).
    if safe "$DB" "CREATE SCHEMA pwnlink; GRANT USAGE ON SCHEMA pwnlink TO PUBLIC; CREATE EXTENSION dblink SCHEMA pwnlink" 2>/dev/null; then
        export HAVE_DBLINK=1
    fi
    sed -e 's/__SCHEMA__/evil/g; s/__ROLE__/evil/g' \
        "$BATS_TEST_DIRNAME/../support/search_path_traps.sql" |
        PGOPTIONS="-c search_path=pg_catalog,pg_temp -c client_min_messages=warning" \
            "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -U evil -d "$DB" -f -
    safe "$DB" "ALTER DATABASE $DB SET search_path = evil, pg_catalog"
    # The trap works: a superuser's unqualified name runs the planted code, which makes evil
    # a superuser (undone here, so that the tests start clean).
    PGAPPNAME=trap-check "$PG_BINDIR/psql" -X -q -At -d "$DB" -c "SELECT 1 = 1" >/dev/null
    [ "$(safe "$DB" "SELECT count(*) FROM evil.log WHERE app = 'trap-check' AND who = 'postgres'")" -gt 0 ]
    [ "$(safe "$DB" "SELECT rolsuper FROM pg_roles WHERE rolname = 'evil'")" = t ]
    safe "$DB" "ALTER ROLE evil NOSUPERUSER"
}

teardown_file() {
    stop_server SP
}

setup() {
    use_server SP "$DB"
    unset PGOPTIONS PGAPPNAME
}

# safe DB SQL: psql as the superuser with a pinned search_path (the test's own SQL must not
# run the planted code).
safe() {
    PGOPTIONS="-c search_path=pg_catalog,pg_temp" sql "$@"
}

# as_cli TAG ARGS...: pgtrickle ARGS as the superuser, tagged TAG (application_name); runs
# under `run` so $status, $output and $stderr are set.
as_cli() {
    local tag=$1
    shift
    PGAPPNAME="pgtrickle-test:$tag" pgt "$@"
}

# no_planted_code_ran_as_others TAG...: fails, listing what ran, when planted code ran during
# the command tagged TAG as a role other than evil (evil.log, or the server log for
# statements whose transaction could not write), or when evil became a superuser (which is
# then undone, so that the next tests start clean).
no_planted_code_ran_as_others() {
    local t failed=0
    for t in "$@"; do
        planted_code_check "$t" || failed=1
    done
    return $failed
}

planted_code_check() {
    local tag="pgtrickle-test:$1" rows log_rows super
    rows=$(safe "$DB" "SELECT DISTINCT who || ' ran ' || what FROM evil.log WHERE app = '$tag' AND who <> 'evil' ORDER BY 1")
    log_rows=$(grep -F "app=$tag" "$SP_DIR/server.log" | grep -F 'planted code ran: ' |
        sed -e 's/.*planted code ran: who=\([^ ]*\) what=\(.*\) app=.*/\1 ran \2/' |
        grep -v '^evil ran ' | sort -u || true)
    super=$(safe "$DB" "SELECT rolsuper FROM pg_roles WHERE rolname = 'evil'")
    if [ -n "$rows" ] || [ -n "$log_rows" ] || [ "$super" != f ]; then
        echo "planted code ran as another role than evil during '$1':" >&2
        [ -z "$rows" ] || echo "$rows" | sed 's/^/  evil.log: /' >&2
        [ -z "$log_rows" ] || echo "$log_rows" | sed 's/^/  server log: /' >&2
        if [ "$super" != f ]; then
            echo "  evil became a superuser" >&2
            safe "$DB" "ALTER ROLE evil NOSUPERUSER"
        fi
        return 1
    fi
}

@test "search_path: version" {
    run -0 --separate-stderr as_cli version --format json version
    json_is '.server.extension_version != null'
    no_planted_code_ran_as_others version
}

@test "search_path: status in every format" {
    run -0 --separate-stderr as_cli status-table status
    run -0 --separate-stderr as_cli status-json --format json status
    json_is '.status.code == "ok" and (.stream_tables | length) == 3'
    json_is '[.stream_tables[].pgt_name] == ["st_a", "st_b", "st_drop"]'
    run -0 --separate-stderr as_cli status-prometheus --format prometheus status
    [[ "$output" == *'pgtrickle_stream_tables 3'* ]]
    local file="$BATS_TEST_TMPDIR/m.prom"
    run -0 --separate-stderr as_cli status-output status --output "$file"
    grep -q '^pgtrickle_up 1$' "$file"
    no_planted_code_ran_as_others status-table status-json status-prometheus status-output
}

@test "search_path: status NAME" {
    run -0 --separate-stderr as_cli status-name --format json status public.st_a
    json_is '[.stream_tables[].pgt_name] == ["st_a"] and (.sources | length) == 1'
    run -1 --separate-stderr as_cli status-name-missing --format json status public.nope
    no_planted_code_ran_as_others status-name status-name-missing
}

@test "search_path: explain" {
    run -0 --separate-stderr as_cli explain --format json explain --query 'SELECT id, grp FROM public.items'
    json_is '.explain.mode | type == "string"'
    no_planted_code_ran_as_others explain
}

@test "search_path: dump" {
    run -0 --separate-stderr as_cli dump-sql dump
    [[ "$output" == *st_drop* ]]
    run -0 --separate-stderr as_cli dump-json --format json dump
    json_is '[.stream_tables[].name] == ["st_a", "st_b", "st_drop"] or [.stream_tables[].name] == ["st_a", "st_drop", "st_b"]'
    no_planted_code_ran_as_others dump-sql dump-json
}

@test "search_path: refresh NAME" {
    safe "$DB" "INSERT INTO public.items VALUES (21, 1)"
    run -0 --separate-stderr as_cli refresh refresh public.st_a
    [ "$(safe "$DB" "SELECT count(*) FROM public.st_a")" = 21 ]
    no_planted_code_ran_as_others refresh
}

@test "search_path: refresh --all" {
    safe "$DB" "INSERT INTO public.items VALUES (22, 2)"
    run -0 --separate-stderr as_cli refresh-all --format json refresh --all
    json_is '.summary.failed == 0 and .summary.refreshed == 3'
    [ "$(safe "$DB" "SELECT count(*) FROM public.st_b")" = 22 ]
    no_planted_code_ran_as_others refresh-all
}

@test "search_path: alter without a query" {
    run -0 --separate-stderr as_cli alter alter public.st_b --mode full
    [ "$(safe "$DB" "SELECT refresh_mode FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'st_b'")" = full ]
    no_planted_code_ran_as_others alter
}

@test "search_path: drop" {
    run -0 --separate-stderr as_cli drop drop public.st_drop
    [ "$(safe "$DB" "SELECT count(*) FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'st_drop'")" = 0 ]
    no_planted_code_ran_as_others drop
}

@test "search_path: preflight" {
    # Without pg_trickle preloaded, preflight fails a check (exit 6): it still runs everything.
    run -6 --separate-stderr as_cli preflight --format json preflight
    json_is '.command == "preflight" and (.nodes | length) == 1'
    no_planted_code_ran_as_others preflight
}

@test "search_path: slots list" {
    run -0 --separate-stderr as_cli slots-list --format json slots list
    json_is '.slots == []'
    no_planted_code_ran_as_others slots-list
}

@test "search_path: migrate --dry-run" {
    run -0 --separate-stderr as_cli migrate --format json migrate --dry-run
    json_is '.status.code == "ok"'
    no_planted_code_ran_as_others migrate
}

@test "search_path: create and alter --query (a query that names no function, operator or type)" {
    # The query is parsed with the user's search_path, as psql would; it names nothing that
    # could resolve to a planted object, so anything logged here comes from elsewhere.
    run -0 --separate-stderr as_cli create create --query 'SELECT id, grp FROM public.items' public.st_c
    [ "$(safe "$DB" "SELECT count(*) FROM public.st_c")" -gt 0 ]
    run -0 --separate-stderr as_cli alter-query alter public.st_c --query 'SELECT id FROM public.items'
    run -0 --separate-stderr as_cli drop-c drop public.st_c
    no_planted_code_ran_as_others create alter-query drop-c
}

@test "search_path: create --query by evil runs evil's own code as evil only" {
    run -0 --separate-stderr env PGUSER=evil PGAPPNAME=pgtrickle-test:create-evil \
        "$PGTRICKLE_BIN" create evil_st --query 'SELECT id, grp FROM public.items'
    [ "$(safe "$DB" "SELECT pgt_schema FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'evil_st'")" = evil ]
    run -0 --separate-stderr env PGUSER=evil PGAPPNAME=pgtrickle-test:create-evil-drop \
        "$PGTRICKLE_BIN" drop evil_st
    no_planted_code_ran_as_others create-evil create-evil-drop
}
