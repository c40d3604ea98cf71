#!/usr/bin/env bats
# Faults heal by themselves (docs/citus.md, "Failure modes and recovery"): a coordinator
# killed in the middle of a drain, a worker down for a while, a node that joins unable to
# capture changes. Nothing is lost or doubled, no stream table is suspended for what is not
# its query's fault, and nothing recomputes unless changes were really lost.

load helpers

setup_file() {
    cluster_up
    [ -n "${E2E_SKIP:-}" ] && return 0
    distributed_orders 2000 20
    on coordinator "CALL pgtrickle.create_stream_table(name => 'totals', query => \$\$$TOTALS_Q\$\$, refresh_mode => 'differential')"
    on coordinator "CALL pgtrickle.create_stream_table(name => 'big', query => \$\$$BIG_Q\$\$, refresh_mode => 'differential')"
}

setup() {
    skip_without_cluster
}

teardown() {
    if [ -f "$BATS_FILE_TMPDIR/worker2.frozen" ]; then
        bash "$CLUSTER" thaw worker2 || true
        rm -f "$BATS_FILE_TMPDIR/worker2.frozen"
    fi
}

teardown_file() {
    stop_worker3
    cluster_down
}

TOTALS_Q="SELECT customer_id, count(*) AS n, sum(qty) AS qty FROM orders GROUP BY customer_id"
BIG_Q="SELECT id, customer_id, qty FROM orders WHERE qty > 3"

# both_match: refresh both stream tables; each equals its query.
both_match() {
    refreshed_matches totals "$TOTALS_Q" || return 1
    refreshed_matches big "$BIG_Q"
}

@test "kill -9 of the coordinator in the middle of a drain, before its commit: nothing lost or doubled" {
    on coordinator "INSERT INTO orders SELECT g, g % 20, 5 FROM generate_series(100001, 300000) g"
    on coordinator "UPDATE orders SET qty = qty + 1 WHERE id BETWEEN 100001 AND 150000"
    # A manual poll drains the whole backlog in one transaction; kill the coordinator while
    # it runs (its backend shows in pg_stat_activity), before it commits.
    ( on coordinator "SELECT sum(changes) FROM pgtrickle.poll_worker_slots('orders')" >/dev/null 2>&1 || true ) &
    local poller=$! i busy=0
    for i in $(seq 1 100); do
        busy=$(on coordinator "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%poll_worker_slots(''orders'')%' AND state = 'active' AND pid <> pg_backend_pid()")
        [ "$busy" != 0 ] && break
        sleep 0.02
    done
    [ "$busy" != 0 ]
    sleep 0.2
    bash "$CLUSTER" kill coordinator
    wait "$poller" || true
    bash "$CLUSTER" resume coordinator
    # No slot was advanced past the frontier the coordinator committed: what the killed
    # transaction read is read again.
    # (Confirmed position first: the scheduler's poller may go on advancing both meanwhile,
    # the frontier first.)
    local node confirmed
    for node in worker1 worker2; do
        confirmed=$(on "$node" "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name LIKE 'pgtrickle\\_%'")
        run on coordinator "SELECT '$confirmed'::pg_lsn <= worker_frontier FROM pgtrickle.pgt_worker_slots WHERE worker_port = $(port_of $node)"
        [ "$output" = t ]
    done
    both_match
    run on coordinator "SELECT string_agg(DISTINCT last_refresh_mode, ',') FROM pgtrickle.pgt_stream_tables"
    [ "$output" = differential ]
}

@test "a worker down for 15 s never suspends a scheduled stream table, which then catches up differentially" {
    on coordinator "ALTER SYSTEM SET pg_trickle.max_consecutive_errors = 3"
    on coordinator "SELECT pg_reload_conf()"
    on coordinator "CALL pgtrickle.alter_stream_table('totals', schedule => '1s')"
    wait_for "SELECT last_refresh_at > now() - interval '3 seconds' FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'totals'" t
    local since
    since=$(on coordinator "SELECT now()")
    bash "$CLUSTER" halt worker2
    local i
    for i in $(seq 1 15); do
        # Orders on worker1's shards are written; the others fail while worker2 is down.
        on coordinator "INSERT INTO orders VALUES ($i + 900000, $i % 20, 1)" >/dev/null 2>&1 || true
        sleep 1
    done
    run on coordinator "SELECT status FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'totals'"
    [ "$output" != suspended ]
    # The poller saw the worker fail (its slot's failures count), the scheduler went on.
    run on coordinator "SELECT consecutive_failures > 0 FROM pgtrickle.pgt_worker_slots WHERE worker_port = $(port_of worker2)"
    [ "$output" = t ]
    bash "$CLUSTER" resume worker2
    on coordinator "INSERT INTO orders SELECT g, g % 20, 2 FROM generate_series(910001, 910050) g"
    # The poller retries the worker (backoff of at most 30 s) and drains what it missed; the
    # scheduled refreshes then catch up.
    wait_for "SELECT count(*) FROM pgtrickle.pgt_worker_slots WHERE worker_port = $(port_of worker2) AND consecutive_failures = 0 AND last_polled_at > now() - interval '3 seconds'" 1 120
    converges totals "$TOTALS_Q" 60
    run on coordinator "SELECT status FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'totals'"
    [ "$output" = active ]
    # Caught up without recomputing.
    run on coordinator "SELECT count(*) FROM pgtrickle.pgt_refresh_history h JOIN pgtrickle.pgt_stream_tables s USING (pgt_id) WHERE s.pgt_name = 'totals' AND h.started_at > '$since' AND h.mode = 'full'"
    [ "$output" = 0 ]
    on coordinator "CALL pgtrickle.alter_stream_table('totals', schedule => '')"
    on coordinator "ALTER SYSTEM RESET pg_trickle.max_consecutive_errors"
    on coordinator "SELECT pg_reload_conf()"
}

@test "a node that joins unable to capture changes fails its readers loudly, and heals when fixed" {
    local port
    # Citus change data capture off: its logical decoding would report shard names.
    port=$(start_worker3 citus.enable_change_data_capture=off)
    on coordinator "SELECT citus_add_node('127.0.0.1', $port)"
    # The poller checks the new node as create would, and records why it cannot capture.
    wait_for "SELECT count(*) FROM pgtrickle.pgt_worker_slots WHERE worker_port = $port AND worker_frontier IS NULL AND last_error LIKE '%enable_change_data_capture%'" 1
    run on coordinator "CALL pgtrickle.refresh_stream_table('totals')"
    [ "$status" -ne 0 ]
    [[ "$output" == *"node 127.0.0.1:$port cannot capture changes"* ]]
    run on coordinator "SELECT count(*) FROM pgtrickle.citus_status WHERE worker_port = $port AND last_error IS NOT NULL"
    [ "$output" -ge 1 ]
    # Fixed (and restarted): its slot is made, its readers recompute once.
    PGCONNECT_TIMEOUT=10 psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "ALTER SYSTEM SET citus.enable_change_data_capture = on"
    restart_worker3
    wait_for "SELECT count(*) FROM pgtrickle.pgt_worker_slots WHERE worker_port = $port AND worker_frontier IS NOT NULL" 1
    on coordinator "INSERT INTO orders SELECT g, g % 20, 6 FROM generate_series(920001, 920100) g"
    both_match
    run on coordinator "SELECT count(*) FROM pgtrickle.pgt_refresh_history h JOIN pgtrickle.pgt_stream_tables s USING (pgt_id) WHERE s.pgt_name = 'totals' AND h.mode = 'full' AND h.reason LIKE '%127.0.0.1:$port could not capture the source until now%'"
    [ "$output" = 1 ]
    on coordinator "SELECT citus_remove_node('127.0.0.1', $port)"
    wait_for "SELECT count(*) FROM pgtrickle.pgt_worker_slots WHERE worker_port = $port" 0
    both_match
}

@test "a frozen worker holds back only what reads it; a refresh that reads it fails within the deadline naming it" {
    on coordinator "ALTER SYSTEM SET pg_trickle.remote_command_timeout = '3s'"
    on coordinator "ALTER SYSTEM SET pg_trickle.remote_connect_timeout = '3s'"
    on coordinator "SELECT pg_reload_conf()"
    on coordinator "CREATE TABLE local_t (id int PRIMARY KEY, v int NOT NULL)"
    on coordinator "CALL pgtrickle.create_stream_table(name => 'local_st', query => 'SELECT v, count(*) AS n FROM local_t GROUP BY v', schedule => '1s')"
    # The same query stored as a reference table (converted by hand: a placement on worker2
    # too): its scheduled refreshes write worker2, and must give up within the deadline
    # rather than hold the scheduler, and every other stream table, forever.
    on coordinator "CALL pgtrickle.create_stream_table(name => 'local_ref', query => 'SELECT v, count(*) AS n FROM local_t GROUP BY v', schedule => '1s')"
    on coordinator "SELECT create_reference_table('local_ref')" >/dev/null 2>&1
    on coordinator "INSERT INTO local_t VALUES (0, 0)"
    wait_for "SELECT st_placement FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'local_ref'" reference
    on coordinator "CALL pgtrickle.alter_stream_table('totals', schedule => '1s')"
    # The poller's connections to worker2 are open (it drained since).
    on coordinator "INSERT INTO orders SELECT g, g % 20, 1 FROM generate_series(930001, 930020) g"
    wait_for "SELECT count(*) FROM pgtrickle.pgt_status WHERE pgt_name = 'totals' AND pending_changes = 0 AND last_refresh_at > now() - interval '2 seconds'" 1 30
    touch "$BATS_FILE_TMPDIR/worker2.frozen"
    bash "$CLUSTER" freeze worker2
    local i start elapsed
    for i in $(seq 1 8); do
        on coordinator "INSERT INTO local_t VALUES ($i, $i % 3)"
        # Refreshed by the scheduler within a few seconds, every time.
        wait_for "SELECT count(*) FROM ((SELECT v, n FROM local_st EXCEPT SELECT v, count(*) FROM local_t GROUP BY v) UNION ALL (SELECT v, count(*) FROM local_t GROUP BY v EXCEPT SELECT v, n FROM local_st)) d" 0 5
    done
    # A new session: it connects to worker2 (3 s at most) and drains (3 s at most).
    start=$(date +%s%N)
    run on coordinator "CALL pgtrickle.refresh_stream_table('totals')"
    elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
    echo "refresh failed after $elapsed ms: $output"
    [ "$status" -ne 0 ]
    [[ "$output" == *"127.0.0.1:$(port_of worker2)"* ]]
    [ "$elapsed" -lt 9000 ]
    run on coordinator "SELECT status FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'totals'"
    [ "$output" != suspended ]
    # While worker2 was frozen, the reference storage's scheduled refreshes failed within
    # the deadline naming it (while local_st went on refreshing above), and were not
    # counted toward suspension.
    run on coordinator "SELECT last_error FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'local_ref'"
    echo "local_ref: $output"
    [[ "$output" == *"127.0.0.1:$(port_of worker2)"* ]]
    run on coordinator "SELECT status || ':' || needs_full_refresh FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'local_ref'"
    [ "$output" = error:false ]
    bash "$CLUSTER" thaw worker2
    rm -f "$BATS_FILE_TMPDIR/worker2.frozen"
    on coordinator "INSERT INTO orders SELECT g, g % 20, 1 FROM generate_series(930101, 930120) g"
    converges totals "$TOTALS_Q" 120
    converges local_ref "SELECT v, count(*) AS n FROM local_t GROUP BY v" 120
    run on coordinator "SELECT string_agg(status, ',' ORDER BY pgt_name) FROM pgtrickle.pgt_stream_tables WHERE pgt_name IN ('totals', 'local_ref')"
    [ "$output" = active,active ]
    on coordinator "CALL pgtrickle.drop_stream_table('local_ref')"
    on coordinator "CALL pgtrickle.alter_stream_table('totals', schedule => '')"
    on coordinator "CALL pgtrickle.drop_stream_table('local_st')"
    on coordinator "ALTER SYSTEM RESET pg_trickle.remote_command_timeout"
    on coordinator "ALTER SYSTEM RESET pg_trickle.remote_connect_timeout"
    on coordinator "SELECT pg_reload_conf()"
}
