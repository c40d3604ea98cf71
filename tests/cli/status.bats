#!/usr/bin/env bats
# `pgtrickle status`: the scheduler, staleness rules, --watch, and the Prometheus format
# on stdout, over HTTP (--listen) and into a file (--output).

load helpers

setup_file() {
    require_installed_extension
    start_server STATUS
    use_server STATUS postgres
    sql postgres "CREATE DATABASE cli_status"
    sql cli_status "CREATE EXTENSION pg_trickle"
    sql cli_status "CREATE TABLE items (id int PRIMARY KEY, grp int NOT NULL)"
    sql cli_status "INSERT INTO items SELECT g, g % 4 FROM generate_series(1, 20) g"
    # A server whose scheduler runs but does not refresh (later restarted without it).
    start_server NOSCHED --set pg_trickle.enabled=off
    use_server NOSCHED postgres
    sql postgres "CREATE EXTENSION pg_trickle"
    sql postgres "CREATE TABLE items (id int PRIMARY KEY, grp int NOT NULL)"
}

teardown_file() {
    stop_server STATUS
    stop_server NOSCHED
}

setup() {
    use_server STATUS cli_status
}

teardown() {
    if [ -n "${LISTEN_PID:-}" ]; then
        kill -TERM "$LISTEN_PID" 2>/dev/null || true
        wait "$LISTEN_PID" 2>/dev/null || true
    fi
}

# wait_for_scheduler: the launcher starts this database's scheduler shortly after
# CREATE EXTENSION; wait until status reports it.
wait_for_scheduler() {
    local i
    for i in $(seq 1 50); do
        if [ "$(pgt --format json status 2>/dev/null | jq -r .scheduler.running)" = true ]; then
            return 0
        fi
        sleep 0.2
    done
    echo "the scheduler did not start" >&2
    return 1
}

# http_get PATH: GET http://127.0.0.1:$LISTEN_PORT/PATH, prints the response with headers
# (curl when present, else bash's /dev/tcp).
http_get() {
    if command -v curl >/dev/null; then
        curl -s -i --max-time 10 "http://127.0.0.1:$LISTEN_PORT$1"
    else
        exec 5<>"/dev/tcp/127.0.0.1/$LISTEN_PORT"
        printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$1" >&5
        cat <&5
        exec 5<&-
    fi
}

# start_listen [ARGS]: serves metrics on a free port in the background, sets LISTEN_PID
# and LISTEN_PORT (read from the address the CLI reports on stderr).
start_listen() {
    local err="$BATS_TEST_TMPDIR/listen.err" i
    "$PGTRICKLE_BIN" status --listen 127.0.0.1:0 "$@" 2>"$err" 3>&- &
    LISTEN_PID=$!
    for i in $(seq 1 50); do
        LISTEN_PORT=$(sed -n 's|.*http://127\.0\.0\.1:\([0-9]*\)/metrics.*|\1|p' "$err")
        [ -n "$LISTEN_PORT" ] && return 0
        sleep 0.1
    done
    cat "$err" >&2
    return 1
}

@test "status reports the running scheduler and exits 0 when healthy" {
    run -0 --separate-stderr pgt create st_sched --query 'SELECT grp, count(*) AS n FROM items GROUP BY grp' --schedule 1s
    wait_for_scheduler
    run -0 --separate-stderr pgt --format json status
    json_is '.scheduler.running == true and (.scheduler.pid | type == "number")'
    json_is '.problems == [] and .status.code == "ok"'
    json_is '.stream_tables[] | select(.pgt_name == "st_sched") | .schedule == "1s" and .stale == false and .schedule_interval_seconds == 1'
    json_is '.stream_tables[] | select(.pgt_name == "st_sched") | .recent_refreshes | type == "object"'
    run -0 --separate-stderr pgt drop st_sched
}

@test "--max-staleness makes an old refresh unhealthy (exit 6) with the reason in JSON" {
    run -0 --separate-stderr pgt create st_manual --query 'SELECT id FROM items WHERE grp = 1'
    sleep 1.2
    run -6 --separate-stderr pgt --format json status --max-staleness 1s
    json_is '.status.code == "unhealthy"'
    json_is '.problems | length == 1 and .[0].subject == "public.st_manual" and .[0].reason == "max_staleness"'
    run -0 --separate-stderr pgt status st_manual --max-staleness 1h30m
    run -2 --separate-stderr pgt --format json status --max-staleness '5 * * * *'
    json_is '.status.code == "usage" and (.status.message | test("max-staleness"))'
    run -2 --separate-stderr pgt status --max-staleness soon
    run -0 --separate-stderr pgt drop st_manual
}

@test "a stream table goes stale without refreshes; a disabled or missing scheduler is unhealthy" {
    use_server NOSCHED postgres
    run -0 --separate-stderr pgt create st_orphan --query 'SELECT id FROM items' --schedule 1s
    run -0 --separate-stderr pgt create st_ondemand --query 'SELECT grp FROM items'
    sleep 2.5
    run -6 --separate-stderr pgt --format json status
    json_is '.scheduler.running == true and .scheduler.enabled == false'
    json_is '[.problems[].reason] == ["stale", "scheduler_disabled"]'
    json_is '.problems[0] == {"subject": "public.st_orphan", "reason": "stale", "message": .problems[0].message}'
    json_is '.stream_tables[] | select(.pgt_name == "st_orphan") | .stale == true'
    # Restart without pg_trickle preloaded: no scheduler, but a stream table has a schedule.
    echo "shared_preload_libraries = ''" >>"$NOSCHED_DIR/data/postgresql.conf"
    "$PGTMP" restart "$NOSCHED_DIR"
    run -6 --separate-stderr pgt --format json status
    json_is '.scheduler.running == false and .scheduler.pid == null'
    json_is '[.problems[].reason] == ["stale", "scheduler_not_running"]'
    json_is '.problems[1].subject == "scheduler" and (.status.message | test("scheduler is not running"))'
    # Without a schedule nothing needs the scheduler.
    run -0 --separate-stderr pgt --format json status st_ondemand
    json_is '.problems == [] and .scheduler.running == false'
}

@test "--watch prints one JSON document per line per round and exits with the last round's code" {
    run -0 --separate-stderr pgt create st_watch --query 'SELECT id FROM items'
    run -0 --separate-stderr timeout --preserve-status -s INT 2.5 "$PGTRICKLE_BIN" --format json status --watch 1
    [ "$(jq -s 'length' <<<"$output")" -ge 2 ]
    [ "$(wc -l <<<"$output")" = "$(jq -s 'length' <<<"$output")" ]
    jq -e -s 'all(.[]; .command == "status" and .status.code == "ok")' <<<"$output"
    run -0 --separate-stderr pgt alter st_watch --status suspended
    run -6 --separate-stderr timeout --preserve-status -s TERM 1.5 "$PGTRICKLE_BIN" status --watch 0.5
    [[ "$output" == *"st_watch"* ]]
    run -0 --separate-stderr pgt drop st_watch
}

@test "--format prometheus prints metrics and exits like status" {
    run -0 --separate-stderr pgt create '"st prom ""q"""' --query 'SELECT id FROM items'
    run -0 --separate-stderr pgt --format prometheus status
    [[ "$output" == *'# TYPE pgtrickle_up gauge'* ]]
    [[ "$output" == *$'\npgtrickle_up 1\n'* ]]
    [[ "$output" == *'pgtrickle_stream_table_up{schema="public",name="st prom \"q\""} 1'* ]]
    [[ "$output" == *'pgtrickle_stream_table_status{schema="public",name="st prom \"q\"",status="active"} 1'* ]]
    [[ "$output" == *'pgtrickle_stream_table_recent_refreshes{schema="public",name="st prom \"q\"",mode='* ]]
    # every non-comment line is NAME[{labels}] VALUE
    ! grep -v -E '^(# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .*|[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? [-+0-9.eEInfNa]+)$' <<<"$output"
    run -0 --separate-stderr pgt alter '"st prom ""q"""' --status suspended
    run -6 --separate-stderr pgt status --format prometheus
    [[ "$output" == *'pgtrickle_healthy 0'* ]]
    run -0 --separate-stderr pgt drop '"st prom ""q"""'
}

@test "--listen serves fresh metrics at /metrics, 404 elsewhere, and stops on SIGINT" {
    run -0 --separate-stderr pgt create st_http_a --query 'SELECT id FROM items'
    start_listen
    run -0 http_get /metrics
    [[ "$output" == "HTTP/1.1 200 OK"* ]]
    [[ "$output" == *"Content-Type: text/plain; version=0.0.4"* ]]
    [[ "$output" == *'pgtrickle_stream_table_up{schema="public",name="st_http_a"} 1'* ]]
    [[ "$output" != *'name="st_http_b"'* ]]
    run -0 --separate-stderr pgt create st_http_b --query 'SELECT grp FROM items'
    run -0 http_get /metrics
    [[ "$output" == *'pgtrickle_stream_table_up{schema="public",name="st_http_b"} 1'* ]]
    run -0 http_get /
    [[ "$output" == "HTTP/1.1 404 Not Found"* ]]
    kill -INT "$LISTEN_PID"
    local rc=0
    wait "$LISTEN_PID" || rc=$?
    LISTEN_PID=
    [ "$rc" = 0 ]
    grep -q 'stopped serving metrics' "$BATS_TEST_TMPDIR/listen.err"
    run -0 --separate-stderr pgt drop st_http_a
    run -0 --separate-stderr pgt drop st_http_b
}

@test "--listen reports pgtrickle_up 0 while the database cannot be read" {
    use_server STATUS cli_status_missing_db
    start_listen
    run -0 http_get /metrics
    [[ "$output" == "HTTP/1.1 200 OK"* ]]
    [[ "$output" == *$'\npgtrickle_up 0'* ]]
    grep -q 'cli_status_missing_db' "$BATS_TEST_TMPDIR/listen.err"
}

@test "--output writes the metrics file atomically, and pgtrickle_up 0 when unreachable" {
    local file="$BATS_TEST_TMPDIR/pgtrickle.prom"
    run -0 --separate-stderr pgt status --output "$file"
    [ -z "$output" ]
    grep -q '^pgtrickle_up 1$' "$file"
    [ "$(ls "$BATS_TEST_TMPDIR" | grep -c 'pgtrickle.prom')" = 1 ]
    run -4 --separate-stderr pgt --dsn "host=127.0.0.1 port=$(closed_port)" status --output "$file"
    grep -q '^pgtrickle_up 0$' "$file"
    run -1 --separate-stderr pgt status --output /nonexistent/dir/x.prom
    [[ "$stderr" == *"/nonexistent/dir/x.prom"* ]]
}

@test "prometheus options are refused where they make no sense (exit 2)" {
    run -2 --separate-stderr pgt --format json --format prometheus version
    run -2 --separate-stderr pgt --format prometheus refresh --all
    run -2 --separate-stderr pgt --format json status --listen 127.0.0.1:0
    json_is '.status.code == "usage"'
    run -2 --separate-stderr pgt status --listen 127.0.0.1:0 --watch 1
    run -2 --separate-stderr pgt status --output x.prom --listen 127.0.0.1:0
    run -2 --separate-stderr pgt status --format prometheus --watch 1
    run -2 --separate-stderr pgt status --listen nonsense
    run -2 --separate-stderr pgt status --watch 0
}
