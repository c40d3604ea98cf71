#!/usr/bin/env bats
# Stream tables over Citus distributed and reference tables (docs/citus.md): WAL capture
# through one pgoutput slot per node, drained by the coordinator, exactly once. Every check
# compares a stream table with its query re-run (as multisets).

load helpers

setup_file() {
    cluster_up
    [ -n "${E2E_SKIP:-}" ] && return 0
    sample_tables
}

setup() {
    skip_without_cluster
}

teardown_file() {
    stop_worker3
    cluster_down
}

SUMMARY_Q="SELECT customer_id, count(*) AS n, sum(qty) AS qty, avg(qty) AS avg_qty FROM orders GROUP BY customer_id"

ROWS_Q="SELECT id, customer_id, qty, amount, note FROM orders WHERE customer_id % 3 = 1"

# oracles_match: refresh the oracle test's two stream tables; each equals its query.
oracles_match() {
    refreshed_matches oracle_agg "$SUMMARY_Q" || return 1
    refreshed_matches oracle_rows "$ROWS_Q"
}

@test "a source without REPLICA IDENTITY FULL is refused with the fix" {
    on coordinator "CREATE TABLE plain_dist (id int PRIMARY KEY, v int)"
    on coordinator "SELECT create_distributed_table('plain_dist', 'id')"
    run on coordinator "CALL pgtrickle.create_stream_table('bad', 'SELECT v, count(*) FROM plain_dist GROUP BY v')"
    [ "$status" -ne 0 ]
    [[ "$output" == *"needs REPLICA IDENTITY FULL"* ]]
    [[ "$output" == *"ALTER TABLE public.plain_dist REPLICA IDENTITY FULL"* ]]
    run on coordinator "SELECT count(*) FROM pgtrickle.pgt_worker_slots"
    [ "$output" = 0 ]
}

@test "a distributed source gets one slot per worker and a differential stream table" {
    on coordinator "CALL pgtrickle.create_stream_table('summary', '$SUMMARY_Q', refresh_mode => 'differential')"
    run on coordinator "SELECT effective_mode, cdc_mode FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'summary'"
    [ "$output" = "differential|auto" ]
    run on coordinator "SELECT source_placement, cdc_mode FROM pgtrickle.pgt_change_tracking WHERE source_relid = 'orders'::regclass"
    [ "$output" = "distributed|wal" ]
    run on coordinator "SELECT string_agg(worker_port::text, ',' ORDER BY worker_port) FROM pgtrickle.pgt_worker_slots"
    [ "$output" = "$(port_of worker1),$(port_of worker2)" ]
    local slot
    slot=$(on coordinator "SELECT DISTINCT slot_name FROM pgtrickle.pgt_worker_slots")
    [[ "$slot" =~ ^pgtrickle_[0-9a-f]{16}$ ]]
    run on worker1 "SELECT plugin FROM pg_replication_slots WHERE slot_name = '$slot'"
    [ "$output" = pgoutput ]
    run on worker2 "SELECT plugin FROM pg_replication_slots WHERE slot_name = '$slot'"
    [ "$output" = pgoutput ]
    run differs summary "$SUMMARY_Q"
    [ "$output" = 0 ]
}

@test "inserts, updates and deletes on both workers reach the stream table exactly once" {
    on coordinator "INSERT INTO orders SELECT g, g % 20, 3, 7, 'x' FROM generate_series(2001, 2500) g"
    on coordinator "UPDATE orders SET qty = qty + 1, amount = amount + 1, customer_id = (customer_id + 3) % 20 WHERE id % 7 = 0"
    on coordinator "DELETE FROM orders WHERE id % 11 = 0"
    refresh summary
    run differs summary "$SUMMARY_Q"
    [ "$output" = 0 ]
    run on coordinator "SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'summary'"
    [ "$output" = differential ]
    # Nothing new: a second refresh changes nothing and the frontiers stay put.
    local before
    before=$(on coordinator "SELECT string_agg(worker_frontier::text, ',' ORDER BY worker_port) FROM pgtrickle.pgt_worker_slots")
    refresh summary
    run differs summary "$SUMMARY_Q"
    [ "$output" = 0 ]
    run on coordinator "SELECT sum(pending) FROM (SELECT pgtrickle.pending_changes(pgt_id) AS pending FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'summary') p"
    [ "$output" = 0 ]
    [ -n "$before" ]
}

@test "citus_status shows every worker slot with its frontier and lag" {
    on coordinator "SELECT * FROM pgtrickle.poll_worker_slots()"
    run on coordinator "SELECT count(*), count(worker_frontier), count(last_polled_at), bool_and(lag_bytes >= 0), sum(consecutive_failures) FROM pgtrickle.citus_status WHERE pgt_name = 'summary'"
    [ "$output" = "2|2|2|t|0" ]
}

@test "a reference source is captured through the coordinator's slot" {
    on coordinator "CALL pgtrickle.create_stream_table('by_region', 'SELECT region, count(*) AS n FROM regions GROUP BY region', refresh_mode => 'differential')"
    run on coordinator "SELECT worker_port FROM pgtrickle.pgt_worker_slots ws JOIN pgtrickle.pgt_change_tracking ct USING (source_stable_name) WHERE ct.source_relid = 'regions'::regclass"
    [ "$output" = "$(port_of coordinator)" ]
    on coordinator "INSERT INTO regions VALUES (100, 'north'), (101, 'north')"
    on coordinator "UPDATE regions SET region = 'south' WHERE customer_id < 5"
    on coordinator "DELETE FROM regions WHERE customer_id = 19"
    refresh by_region
    run differs by_region "SELECT region, count(*) AS n FROM regions GROUP BY region"
    [ "$output" = 0 ]
}

@test "shapes whose delta reads a distributed table are differential, reading its state copy" {
    local q="SELECT p.plan, count(*) AS n, sum(o.qty) AS qty FROM orders o JOIN plans p ON p.customer_id = o.customer_id GROUP BY p.plan"
    on coordinator "CALL pgtrickle.create_stream_table('by_plan', '$q', refresh_mode => 'differential')"
    local mq="SELECT customer_id, max(amount) AS top, sum(amount) AS total FROM orders GROUP BY customer_id"
    on coordinator "CALL pgtrickle.create_stream_table('money', '$mq')"
    run on coordinator "SELECT string_agg(effective_mode, ',' ORDER BY pgt_name) FROM pgtrickle.pgt_stream_tables WHERE pgt_name IN ('by_plan', 'money')"
    [ "$output" = differential,differential ]
    on coordinator "INSERT INTO orders VALUES (90001, 4, 1, 1, 'j'), (90002, 5, 1, 1, 'j')"
    on coordinator "UPDATE orders SET amount = amount * 2 WHERE customer_id = 6"
    on coordinator "UPDATE plans SET plan = 'team' WHERE customer_id = 4"
    refresh by_plan
    refresh money
    run differs by_plan "$q"
    [ "$output" = 0 ]
    run differs money "$mq"
    [ "$output" = 0 ]
    run on coordinator "SELECT string_agg(last_refresh_mode, ',' ORDER BY pgt_name) FROM pgtrickle.pgt_stream_tables WHERE pgt_name IN ('by_plan', 'money')"
    [ "$output" = differential,differential ]
    on coordinator "CALL pgtrickle.drop_stream_table('money')"
}

@test "two stream tables share a source's slots; the last drop removes them on every node" {
    on coordinator "CALL pgtrickle.create_stream_table('notes', 'SELECT id, note, amount FROM orders WHERE amount > 100', refresh_mode => 'differential')"
    run on coordinator "SELECT count(*) FROM pgtrickle.pgt_worker_slots ws JOIN pgtrickle.pgt_change_tracking ct USING (source_stable_name) WHERE ct.source_relid = 'orders'::regclass"
    [ "$output" = 2 ]
    on coordinator "UPDATE orders SET note = 'upd' WHERE id BETWEEN 100 AND 300"
    refresh notes
    refresh summary
    run differs notes "SELECT id, note, amount FROM orders WHERE amount > 100"
    [ "$output" = 0 ]
    run differs summary "$SUMMARY_Q"
    [ "$output" = 0 ]
    local slot
    slot=$(on coordinator "SELECT DISTINCT ws.slot_name FROM pgtrickle.pgt_worker_slots ws JOIN pgtrickle.pgt_change_tracking ct USING (source_stable_name) WHERE ct.source_relid = 'orders'::regclass")
    on coordinator "CALL pgtrickle.drop_stream_table('notes')"
    run on worker1 "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$slot'"
    [ "$output" = 1 ]
    on coordinator "CALL pgtrickle.drop_stream_table('summary')"
    on coordinator "CALL pgtrickle.drop_stream_table('by_plan')"
    run on worker1 "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$slot'"
    [ "$output" = 0 ]
    run on worker2 "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$slot'"
    [ "$output" = 0 ]
    run on coordinator "SELECT count(*) FROM pg_publication WHERE pubname = '$slot'"
    [ "$output" = 0 ]
    run on worker1 "SELECT count(*) FROM pg_publication WHERE pubname = '$slot'"
    [ "$output" = 0 ]
    run on coordinator "SELECT count(*) FROM pgtrickle.pgt_worker_slots WHERE slot_name = '$slot'"
    [ "$output" = 0 ]
}

@test "the scheduler keeps a distributed stream table current" {
    on coordinator "CALL pgtrickle.create_stream_table('live', '$SUMMARY_Q', schedule => '1s', refresh_mode => 'differential')"
    on coordinator "INSERT INTO orders SELECT g, g % 20, 1, 3, 's' FROM generate_series(3001, 3200) g"
    on coordinator "DELETE FROM orders WHERE id BETWEEN 1 AND 50"
    local i d=1
    for i in $(seq 1 30); do
        d=$(differs live "$SUMMARY_Q")
        [ "$d" = 0 ] && break
        sleep 0.5
    done
    [ "$d" = 0 ]
    run on coordinator "SELECT count(*) FROM pgtrickle.pgt_refresh_history h JOIN pgtrickle.pgt_stream_tables s USING (pgt_id) WHERE s.pgt_name = 'live' AND h.trigger <> 'manual' AND h.mode = 'differential'"
    [ "$output" -ge 1 ]
    on coordinator "CALL pgtrickle.drop_stream_table('live')"
}

@test "oracle: random rounds of writes through the coordinator, compared after each refresh" {
    on coordinator "CALL pgtrickle.create_stream_table('oracle_agg', '$SUMMARY_Q', refresh_mode => 'differential')"
    local fq=$ROWS_Q
    on coordinator "CALL pgtrickle.create_stream_table('oracle_rows', '$fq', refresh_mode => 'differential')"
    local round seed
    for round in $(seq 1 12); do
        seed=$((round * 7919))
        on coordinator "SELECT setseed(0.$seed)"
        on coordinator "INSERT INTO orders SELECT 100000 + $round * 1000 + g, (random() * 25)::int, (random() * 10)::int, round((random() * 100)::numeric, 2), 'r$round' FROM generate_series(1, (random() * 200)::int) g"
        on coordinator "UPDATE orders SET qty = qty + 1, amount = amount + 1 WHERE id % 13 = $round % 13"
        on coordinator "UPDATE orders SET customer_id = (customer_id + $round) % 25 WHERE id % 17 = $round % 17"
        on coordinator "DELETE FROM orders WHERE id % 29 = $round % 29"
        if [ $((round % 4)) = 0 ]; then
            # A transaction spanning both workers, and a rolled-back one.
            on coordinator "BEGIN; UPDATE orders SET note = 'tx$round' WHERE id % 5 = 0; DELETE FROM orders WHERE id % 31 = 0; COMMIT;"
            on coordinator "BEGIN; DELETE FROM orders; ROLLBACK;"
        fi
        refresh oracle_agg
        refresh oracle_rows
        run differs oracle_agg "$SUMMARY_Q"
        [ "$output" = 0 ] || { echo "round $round: oracle_agg differs by $output rows"; false; }
        run differs oracle_rows "$fq"
        [ "$output" = 0 ] || { echo "round $round: oracle_rows differs by $output rows"; false; }
    done
}

@test "concurrent writers during refreshes: converges once writes stop" {
    local writer_pids=() w
    for w in 1 2; do
        (
            for i in $(seq 1 150); do
                bash "$CLUSTER" psql coordinator -At -c "INSERT INTO orders VALUES (200000 + $w * 10000 + $i, $i % 25, $i, $i, 'c') ON CONFLICT (id) DO UPDATE SET qty = orders.qty + 1; UPDATE orders SET qty = qty - 1 WHERE id = 200000 + $w * 10000 + ($i / 2); DELETE FROM orders WHERE id = 200000 + $w * 10000 + ($i / 3) AND $i % 4 = 0" >/dev/null 2>&1
            done
        ) &
        writer_pids+=($!)
    done
    local refreshes=0
    while kill -0 "${writer_pids[0]}" 2>/dev/null || kill -0 "${writer_pids[1]}" 2>/dev/null; do
        refresh oracle_agg
        refreshes=$((refreshes + 1))
    done
    wait "${writer_pids[@]}" || true
    [ "$refreshes" -ge 2 ]
    refresh oracle_agg
    run differs oracle_agg "$SUMMARY_Q"
    [ "$output" = 0 ]
}

@test "schema changes on a distributed source: a column added, written, dropped" {
    on coordinator "ALTER TABLE orders ADD COLUMN extra int DEFAULT 7"
    on coordinator "INSERT INTO orders (id, customer_id, qty, amount, note, extra) SELECT g, g % 20, 2, 2, 'e', g FROM generate_series(450001, 450100) g"
    on coordinator "UPDATE orders SET extra = extra + 1, qty = qty + 1 WHERE id % 9 = 0"
    refresh oracle_agg
    run differs oracle_agg "$SUMMARY_Q"
    [ "$output" = 0 ]
    on coordinator "ALTER TABLE orders DROP COLUMN extra"
    on coordinator "INSERT INTO orders SELECT g, g % 20, 4, 4, 'f' FROM generate_series(450101, 450200) g"
    on coordinator "DELETE FROM orders WHERE id BETWEEN 450001 AND 450050"
    oracles_match
}

@test "kill -9 of a worker in the middle of a poll: nothing lost, nothing doubled" {
    on coordinator "INSERT INTO orders SELECT g, g % 20, 1, 1, 'big' FROM generate_series(1000001, 1100000) g"
    ( bash "$CLUSTER" psql coordinator -At -c "SELECT sum(changes) FROM pgtrickle.poll_worker_slots('orders')" >/dev/null 2>&1 || true ) &
    local poller=$!
    sleep 0.3
    bash "$CLUSTER" kill worker1
    wait "$poller" || true
    bash "$CLUSTER" resume worker1
    oracles_match
}

@test "a worker that is down holds back refreshes with its address; they resume after" {
    on coordinator "INSERT INTO orders SELECT g, g % 20, 1, 1, 'w' FROM generate_series(400001, 400100) g"
    bash "$CLUSTER" halt worker2
    run on coordinator "CALL pgtrickle.refresh_stream_table('oracle_agg')"
    [ "$status" -ne 0 ]
    [[ "$output" == *"127.0.0.1:$(port_of worker2)"* ]]
    bash "$CLUSTER" resume worker2
    refresh oracle_agg
    run differs oracle_agg "$SUMMARY_Q"
    [ "$output" = 0 ]
}

@test "a slot dropped by hand is recreated and its readers fully refreshed" {
    local slot since
    slot=$(on coordinator "SELECT DISTINCT slot_name FROM pgtrickle.pgt_worker_slots ws JOIN pgtrickle.pgt_change_tracking ct USING (source_stable_name) WHERE ct.source_relid = 'orders'::regclass")
    since=$(on coordinator "SELECT now()")
    # The scheduler's poller may be reading the slot (then it is active for that backend):
    # end that backend, as an operator would, and drop it before the poller's next read.
    local tries=0
    until on worker1 "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '$slot' AND active_pid IS NOT NULL; SELECT pg_drop_replication_slot('$slot')" >/dev/null 2>&1; do
        tries=$((tries + 1))
        [ "$tries" -lt 100 ]
        sleep 0.05
    done
    on coordinator "INSERT INTO orders SELECT g, g % 20, 2, 2, 'd' FROM generate_series(500001, 500100) g"
    # The refresh fails naming the lost slot, or the poller recreating it, unless the
    # scheduler's poller found it first and recreated it (then this refresh is the full one).
    run on coordinator "CALL pgtrickle.refresh_stream_table('oracle_agg')"
    if [ "$status" -ne 0 ]; then
        [[ "$output" == *"$slot is missing on node 127.0.0.1:$(port_of worker1)"* ||
            "$output" == *"$slot on node 127.0.0.1:$(port_of worker1) is being recreated"* ]]
    fi
    # Recreated by the scheduler's poller or by hand, whichever comes first.
    run on coordinator "SELECT action FROM pgtrickle.provision_worker_slots('orders') WHERE worker_port = $(port_of worker1)"
    [[ "$output" = recreated || "$output" = present ]]
    run on worker1 "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$slot'"
    [ "$output" = 1 ]
    refresh oracle_agg
    run differs oracle_agg "$SUMMARY_Q"
    [ "$output" = 0 ]
    # The full refresh records why: the slot that was missing on worker1.
    run on coordinator "SELECT count(*) FROM pgtrickle.pgt_refresh_history h JOIN pgtrickle.pgt_stream_tables s USING (pgt_id) WHERE s.pgt_name = 'oracle_agg' AND h.mode = 'full' AND h.started_at > '$since' AND h.reason LIKE '%$slot was missing on node 127.0.0.1:$(port_of worker1)%'"
    [ "$output" -ge 1 ]
}

@test "kill -9 of the coordinator after a drain committed: nothing lost, nothing doubled" {
    on coordinator "INSERT INTO orders SELECT g, g % 20, 5, 5, 'k' FROM generate_series(600001, 600300) g"
    # The drain commits the rows and the frontier; the slots are advanced only by the next
    # drain: a crash now leaves slots behind the stored frontier.
    on coordinator "SELECT sum(changes) FROM pgtrickle.poll_worker_slots('orders')"
    run on worker1 "SELECT confirmed_flush_lsn < (SELECT pg_current_wal_flush_lsn()) FROM pg_replication_slots WHERE slot_name LIKE 'pgtrickle\\_%'"
    bash "$CLUSTER" kill coordinator
    bash "$CLUSTER" resume coordinator
    on coordinator "UPDATE orders SET qty = qty * 2 WHERE id BETWEEN 600001 AND 600100"
    oracles_match
}

# writes_in_background BASE N MOD TAG: N transactions through the coordinator, in the
# background ($! is its pid): each inserts order BASE + i (tagged TAG) and updates the
# orders whose id is i modulo MOD. Failures (a node busy moving shards) are ignored.
writes_in_background() {
    local base=$1 n=$2 mod=$3 tag=$4
    (
        for i in $(seq 1 "$n"); do
            bash "$CLUSTER" psql coordinator -At -c "INSERT INTO orders VALUES ($base + $i, $i % 20, 1, 1, '$tag'); UPDATE orders SET qty = qty + 1 WHERE id % $mod = $i % $mod" >/dev/null 2>&1
        done
    ) &
}

@test "a shard move under write load loses and doubles nothing" {
    local shard target
    shard=$(on coordinator "SELECT shardid FROM citus_shards WHERE table_name = 'orders'::regclass AND nodeport = $(port_of worker1) ORDER BY shardid LIMIT 1")
    writes_in_background 700000 200 50 m
    local writer=$!
    on coordinator "SELECT citus_move_shard_placement($shard, '127.0.0.1', $(port_of worker1), '127.0.0.1', $(port_of worker2), shard_transfer_mode => 'force_logical')"
    wait "$writer" || true
    target=$(on coordinator "SELECT nodeport FROM citus_shards WHERE shardid = $shard")
    [ "$target" = "$(port_of worker2)" ]
    oracles_match
}

@test "a node added, rebalanced onto and removed: slots follow, nothing missed or doubled" {
    local port
    port=$(start_worker3)
    on coordinator "SELECT citus_add_node('127.0.0.1', $port)"
    # The scheduler's poller notices the new node and gives it a slot.
    wait_for "SELECT count(*) FROM pgtrickle.pgt_worker_slots ws JOIN pgtrickle.pgt_change_tracking ct USING (source_stable_name) WHERE ct.source_relid = 'orders'::regclass AND ws.worker_port = $port" 1
    writes_in_background 800000 150 40 r
    local writer=$!
    on coordinator "SELECT citus_rebalance_start(shard_transfer_mode => 'force_logical')"
    on coordinator "SELECT citus_rebalance_wait()"
    wait "$writer" || true
    run on coordinator "SELECT count(*) > 0 FROM citus_shards WHERE table_name = 'orders'::regclass AND nodeport = $port"
    [ "$output" = t ]
    oracles_match
    # Shards moved away, node removed: its slot row goes, readers recompute once.
    on coordinator "SELECT citus_drain_node('127.0.0.1', $port, shard_transfer_mode => 'force_logical')"
    on coordinator "INSERT INTO orders VALUES (899999, 3, 3, 3, 'after drain')"
    on coordinator "SELECT citus_remove_node('127.0.0.1', $port)"
    wait_for "SELECT count(*) FROM pgtrickle.pgt_worker_slots WHERE worker_port = $port" 0
    refresh oracle_agg
    run differs oracle_agg "$SUMMARY_Q"
    [ "$output" = 0 ]
}

@test "TRUNCATE of a distributed source makes its readers recompute" {
    on coordinator "TRUNCATE orders"
    on coordinator "INSERT INTO orders VALUES (1, 1, 1, 1, 't'), (2, 2, 2, 2, 't')"
    refresh oracle_agg
    run differs oracle_agg "$SUMMARY_Q"
    [ "$output" = 0 ]
    run on coordinator "SELECT count(*) FROM oracle_agg"
    [ "$output" = 2 ]
}
