#!/usr/bin/env bats
# Refresh leases on a Citus cluster (issue 15, docs/citus.md "Refresh leases"): every refresh
# holds a row of pgtrickle.pgt_st_locks while it runs, committed at once and visible to every
# session (citus_status); a holder killed in the middle is taken over only after its lease
# expired, never before; two refreshes of one stream table never overlap. Each test checks
# timestamps recorded by both sides, not only a final state.

load helpers

LEASE_MS=4000

setup_file() {
    cluster_up
    [ -n "${E2E_SKIP:-}" ] && return 0
    distributed_orders 2000 20
    on coordinator "ALTER SYSTEM SET pg_trickle.citus_st_lock_lease_ms = $LEASE_MS"
    on coordinator "SELECT pg_reload_conf()" >/dev/null
    on coordinator "CALL pgtrickle.create_stream_table('leased', 'SELECT customer_id, count(*) AS n, sum(qty) AS q FROM orders GROUP BY customer_id', refresh_mode => 'differential', schedule => NULL)"
}

setup() {
    skip_without_cluster
}

teardown_file() {
    cluster_down
}

QUERY="SELECT customer_id, count(*) AS n, sum(qty) AS q FROM orders GROUP BY customer_id"
ID_SQL="(SELECT pgt_id FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'leased')"

# hold_storage SECONDS: a session that holds the stream table's storage (ACCESS EXCLUSIVE)
# for SECONDS in the background: a refresh with changes to apply started meanwhile takes its
# locks and lease, then waits there. Sets HOLDER to the holder's shell pid.
hold_storage() {
    on coordinator "BEGIN; LOCK TABLE leased IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep($1); COMMIT" >/dev/null 2>&1 &
    HOLDER=$!
    wait_for "SELECT count(*) FROM pg_locks WHERE relation = 'leased'::regclass AND mode = 'AccessExclusiveLock' AND granted" 1 >/dev/null
}

# last_refresh FIELD: started_at or finished_at of the latest refresh of `leased`, as epoch
# seconds (microsecond precision).
last_refresh() {
    on coordinator "SELECT extract(epoch FROM $1) FROM pgtrickle.pgt_refresh_history WHERE pgt_id = $ID_SQL ORDER BY history_id DESC LIMIT 1"
}

@test "a refresh holds its lease while it runs (citus_status shows it) and gives it back when it ends" {
    on coordinator "INSERT INTO orders VALUES (50001, 3, 4)"
    hold_storage 3
    on coordinator "CALL pgtrickle.refresh_stream_table('leased')" >/dev/null 2>&1 &
    local refresh=$!
    wait_for "SELECT count(*) FROM pgtrickle.pgt_st_locks WHERE pgt_id = $ID_SQL" 1
    # The holder is the refreshing backend (node:pid:start), for lease_ms from now.
    local pid
    pid=$(on coordinator "SELECT pid FROM pg_stat_activity WHERE query LIKE 'CALL pgtrickle.refresh_stream_table%' AND pid <> pg_backend_pid()")
    run on coordinator "SELECT split_part(locked_by, ':', 3), expires_at - acquired_at FROM pgtrickle.pgt_st_locks WHERE pgt_id = $ID_SQL"
    [ "$output" = "$pid|00:00:04" ]
    run on coordinator "SELECT DISTINCT lease_health || ':' || split_part(lease_holder, ':', 3) FROM pgtrickle.citus_status WHERE pgt_name = 'leased'"
    [ "$output" = "locked:$pid" ]
    wait "$refresh"
    wait "$HOLDER" || true
    run on coordinator "SELECT count(*) FROM pgtrickle.pgt_st_locks"
    [ "$output" = 0 ]
    run on coordinator "SELECT DISTINCT lease_health FROM pgtrickle.citus_status WHERE pgt_name = 'leased'"
    [ "$output" = unlocked ]
    [ "$(differs leased "$QUERY")" = 0 ]
    # A refresh in a savepoint rolled back gives its lease back with it, before the
    # transaction ends; one in a committed savepoint keeps it until the commit.
    on coordinator "INSERT INTO orders VALUES (50021, 3, 4)"
    run bash "$CLUSTER" psql coordinator -v ON_ERROR_STOP=1 -qAt -c "BEGIN" -c "SAVEPOINT a" \
        -c "CALL pgtrickle.refresh_stream_table('leased')" -c "SELECT count(*) FROM pgtrickle.pgt_st_locks" \
        -c "ROLLBACK TO SAVEPOINT a" -c "SELECT count(*) FROM pgtrickle.pgt_st_locks" \
        -c "SAVEPOINT b" -c "CALL pgtrickle.refresh_stream_table('leased')" -c "RELEASE SAVEPOINT b" \
        -c "SELECT count(*) FROM pgtrickle.pgt_st_locks" -c "COMMIT"
    [ "$status" -eq 0 ]
    [ "$output" = "$(printf '1\n0\n1')" ]
    run on coordinator "SELECT count(*) FROM pgtrickle.pgt_st_locks"
    [ "$output" = 0 ]
    [ "$(differs leased "$QUERY")" = 0 ]
    # pg_ripple fences its merges for merge_fence_timeout_ms: a lease lasts at least that long.
    on coordinator "INSERT INTO orders VALUES (50011, 3, 4)"
    hold_storage 2
    bash "$CLUSTER" psql coordinator -qAt -c "SET pg_ripple.merge_fence_timeout_ms = 90000" -c "CALL pgtrickle.refresh_stream_table('leased')" >/dev/null 2>&1 &
    refresh=$!
    wait_for "SELECT count(*) FROM pgtrickle.pgt_st_locks WHERE pgt_id = $ID_SQL" 1
    run on coordinator "SELECT expires_at - acquired_at FROM pgtrickle.pgt_st_locks WHERE pgt_id = $ID_SQL"
    [ "$output" = "00:01:30" ]
    wait "$refresh"
    wait "$HOLDER" || true
}

@test "two sessions racing a refresh: the second starts after the first has finished" {
    on coordinator "INSERT INTO orders VALUES (50002, 4, 4)"
    local first second
    hold_storage 2
    on coordinator "CALL pgtrickle.refresh_stream_table('leased')" >/dev/null 2>&1 &
    first=$!
    wait_for "SELECT count(*) FROM pgtrickle.pgt_st_locks WHERE pgt_id = $ID_SQL" 1
    local first_pid
    first_pid=$(on coordinator "SELECT split_part(locked_by, ':', 3) FROM pgtrickle.pgt_st_locks WHERE pgt_id = $ID_SQL")
    on coordinator "INSERT INTO orders VALUES (50003, 5, 4)"
    on coordinator "CALL pgtrickle.refresh_stream_table('leased')" >/dev/null 2>&1 &
    second=$!
    wait "$first"
    wait "$second"
    wait "$HOLDER" || true
    # Both refreshed (the second had the later write to apply); their intervals are apart.
    run on coordinator "SELECT count(*) FROM (SELECT * FROM pgtrickle.pgt_refresh_history WHERE pgt_id = $ID_SQL ORDER BY history_id DESC LIMIT 2) h WHERE mode = 'differential'"
    [ "$output" = 2 ]
    run on coordinator "SELECT b.started_at >= a.finished_at FROM pgtrickle.pgt_refresh_history a, pgtrickle.pgt_refresh_history b WHERE a.pgt_id = $ID_SQL AND b.pgt_id = a.pgt_id AND b.history_id = (SELECT max(history_id) FROM pgtrickle.pgt_refresh_history WHERE pgt_id = $ID_SQL) AND a.history_id = b.history_id - 1"
    [ "$output" = t ]
    [ -n "$first_pid" ]
    [ "$(differs leased "$QUERY")" = 0 ]
}

@test "a lease held elsewhere: a scheduled refresh is busy, a manual one waits for its expiry, never sooner; lock_timeout bounds the wait" {
    on coordinator "INSERT INTO orders VALUES (50004, 6, 4)"
    on coordinator "INSERT INTO pgtrickle.pgt_st_locks VALUES ($ID_SQL, '10.9.9.9:5432:4242:1', now(), now() + interval '5 seconds')"
    local expires
    expires=$(on coordinator "SELECT extract(epoch FROM expires_at) FROM pgtrickle.pgt_st_locks")
    run on coordinator "SELECT DISTINCT lease_health || ':' || lease_holder FROM pgtrickle.citus_status WHERE pgt_name = 'leased'"
    [ "$output" = "locked:10.9.9.9:5432:4242:1" ]
    run bash "$CLUSTER" psql coordinator -qAt -c "SET lock_timeout = '300ms'" -c "CALL pgtrickle.refresh_stream_table('leased')"
    [ "$status" -ne 0 ]
    [[ "$output" == *"could not obtain the refresh lease of stream table"* ]]
    [[ "$output" == *"held by 10.9.9.9:5432:4242:1 until"* ]]
    # The scheduler finds it busy every tick until it expires.
    local last
    last=$(on coordinator "SELECT coalesce(max(history_id), 0) FROM pgtrickle.pgt_refresh_history")
    on coordinator "CALL pgtrickle.alter_stream_table('leased', schedule => '1s')"
    sleep 2
    on coordinator "CALL pgtrickle.alter_stream_table('leased', schedule => NULL)"
    on coordinator "CALL pgtrickle.refresh_stream_table('leased')"
    # Whoever refreshed after the foreign holder (scheduled ticks, the manual call) started
    # once its lease had expired, not before.
    run on coordinator "SELECT count(*) > 0 AND bool_and(started_at >= to_timestamp($expires)) FROM pgtrickle.pgt_refresh_history WHERE pgt_id = $ID_SQL AND history_id > $last"
    [ "$output" = t ]
    run on coordinator "SELECT count(*) FROM pgtrickle.pgt_st_locks"
    [ "$output" = 0 ]
    [ "$(differs leased "$QUERY")" = 0 ]
}

@test "kill -9 of a refresh holding the lease: the next refresh takes it over only after it expired" {
    on coordinator "INSERT INTO orders VALUES (50005, 7, 4)"
    hold_storage 60
    on coordinator "CALL pgtrickle.refresh_stream_table('leased')" >/dev/null 2>&1 &
    local refresh=$!
    wait_for "SELECT count(*) FROM pgtrickle.pgt_st_locks WHERE pgt_id = $ID_SQL" 1
    local pid expires
    pid=$(on coordinator "SELECT split_part(locked_by, ':', 3) FROM pgtrickle.pgt_st_locks WHERE pgt_id = $ID_SQL")
    expires=$(on coordinator "SELECT extract(epoch FROM expires_at) FROM pgtrickle.pgt_st_locks WHERE pgt_id = $ID_SQL")
    kill -9 "$pid"
    wait "$refresh" || true
    wait "$HOLDER" || true
    # The postmaster restarts every backend; the lease row was committed and outlives them.
    wait_for "SELECT 1" 1 60
    run on coordinator "SELECT split_part(locked_by, ':', 3), extract(epoch FROM now()) < $expires FROM pgtrickle.pgt_st_locks WHERE pgt_id = $ID_SQL"
    [ "$output" = "$pid|t" ]
    on coordinator "CALL pgtrickle.refresh_stream_table('leased')"
    local started
    started=$(last_refresh started_at)
    run awk -v s="$started" -v e="$expires" 'BEGIN { exit !(s >= e) }'
    [ "$status" -eq 0 ]
    run on coordinator "SELECT count(*) FROM pgtrickle.pgt_st_locks"
    [ "$output" = 0 ]
    [ "$(differs leased "$QUERY")" = 0 ]
}
