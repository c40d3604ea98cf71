#!/usr/bin/env bats
# pgtrickle preflight, slots and status on a real Citus cluster: every node checked through
# the coordinator (run_command_on_workers), a stopped worker reported as unreachable (exit
# 7, after asking again with jittered backoff), REPLICA IDENTITY FULL required on
# distributed sources (exit 6), and worker slots in `slots list` and `status` (a slot with
# failed polls makes status exit 6).

load helpers

PGTRICKLE_SOURCE_DIR=${PGTRICKLE_SOURCE_DIR:-$(cd "$BATS_TEST_DIRNAME/../.." && pwd)}
PGTRICKLE_BIN=${PGTRICKLE_BIN:-$PGTRICKLE_SOURCE_DIR/build/cli/pgtrickle}

setup_file() {
    cluster_up
    if [ -z "${E2E_SKIP:-}" ]; then
        # Distributed before CREATE EXTENSION pg_trickle (as cluster_basics.bats does).
        on coordinator "CREATE TABLE orders (id bigint PRIMARY KEY, amount int)"
        on coordinator "SELECT create_distributed_table('orders', 'id')"
        on coordinator "CREATE TABLE payments (id bigint PRIMARY KEY, amount int)"
        on coordinator "SELECT create_distributed_table('payments', 'id')"
        on coordinator "ALTER TABLE payments REPLICA IDENTITY FULL"
        # The catalog rows faked below are not real sources: keep the scheduler from
        # polling them (the assertions also tolerate a poller that does).
        on coordinator "ALTER SYSTEM SET pg_trickle.enabled = off"
        on coordinator "SELECT pg_reload_conf()" >/dev/null
    fi
}

setup() {
    skip_without_cluster
    unset PGTRICKLE_DSN PGSERVICE PGHOSTADDR
    export PGHOST=127.0.0.1 PGPORT=$(port_of coordinator) PGUSER=postgres PGDATABASE=postgres
}

teardown() {
    # A test that stopped worker2 starts it again, also when it failed.
    if [ -n "${WORKER2_STOPPED:-}" ]; then
        start_worker2
    fi
}

teardown_file() {
    cluster_down
}

worker2_dir() {
    echo "${PGTRICKLE_E2E_DIR:-${TMPDIR:-/tmp}/pgtrickle-e2e-$(port_of coordinator)}/worker2"
}

as_postgres() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

stop_worker2() {
    WORKER2_STOPPED=1
    as_postgres "$(pg_config --bindir)/pg_ctl" -D "$(worker2_dir)/data" -m fast -w stop >/dev/null
}

start_worker2() {
    as_postgres "$(pg_config --bindir)/pg_ctl" -D "$(worker2_dir)/data" -l "$(worker2_dir)/server.log" \
        -w -t 60 -o "-p $(port_of worker2)" start >/dev/null
    WORKER2_STOPPED=
}

# fake_source TABLE: registers TABLE as a distributed pg_trickle source in the catalog
# (capturing distributed tables is the extension's, not yet ready: the rules only read
# pgt_change_tracking).
fake_source() {
    on coordinator "INSERT INTO pgtrickle.pgt_change_tracking (source_relid, cdc_mode, source_stable_name, source_placement) VALUES ('$1', 'wal', pgtrickle.source_stable_name('$1'::regclass), 'distributed')"
}

@test "preflight passes on the prepared cluster (exit 0) with the coordinator and both workers" {
    run -0 --separate-stderr pgt --format json preflight
    json_is '.status.code == "ok" and .summary.fail == 0'
    json_is '[.nodes[].role] == ["coordinator", "worker", "worker"]'
    json_is "[.nodes[].node] == [\"127.0.0.1:$(port_of coordinator)\", \"127.0.0.1:$(port_of worker1)\", \"127.0.0.1:$(port_of worker2)\"]"
    json_is 'all(.nodes[]; .reachable)'
    for check in server_version citus_version shared_preload_libraries extension wal_level \
        replication_slots wal_senders output_plugins citus_cdc; do
        json_is "all(.nodes[]; any(.checks[]; .name == \"$check\"))"
    done
    json_is '.nodes[1:] | all(.[]; .checks[0].name == "reachable" and .checks[0].status == "pass")'
    # pg_trickle is not created yet: replica identity cannot be checked, said as a skip.
    json_is '.nodes[0].checks[] | select(.name == "replica_identity") | .status == "skip"'
    run -0 --separate-stderr pgt preflight
    [[ "$output" == *"127.0.0.1:$(port_of worker2)"* ]]
}

@test "slots list without pg_trickle in the database exits 3 with a hint" {
    run -3 --separate-stderr pgt --format json slots list
    json_is '.status.code == "configuration" and (.status.hint | test("CREATE EXTENSION"))'
}

@test "a stopped worker makes preflight exit 7 naming it; the other nodes are still checked" {
    stop_worker2
    run -7 --separate-stderr pgt --format json preflight
    json_is '.status.code == "partial_failure"'
    json_is ".status.message | test(\"127.0.0.1:$(port_of worker2)\")"
    json_is ".nodes[] | select(.node == \"127.0.0.1:$(port_of worker2)\") | .reachable == false and .checks[0].name == \"reachable\" and .checks[0].status == \"fail\" and (.checks[0].hint | length > 0)"
    json_is ".nodes[] | select(.node == \"127.0.0.1:$(port_of worker1)\") | .reachable and (.checks | length > 5)"
    # A worker is not declared unreachable on one failed connection: asked three times.
    run -7 --separate-stderr pgt -v --format json preflight
    [ "$(grep -c 'sql: SELECT w.nodename, w.nodeport, w.success, w.result FROM pg_catalog.run_command_on_workers' <<<"$stderr")" = 3 ]
    start_worker2
    run -0 --separate-stderr pgt --format json preflight
}

@test "a distributed source without REPLICA IDENTITY FULL fails preflight (exit 6) with the ALTER TABLE" {
    on coordinator "CREATE EXTENSION pg_trickle"
    fake_source payments
    run -0 --separate-stderr pgt --format json preflight
    json_is '.nodes[0].checks[] | select(.name == "replica_identity") | .status == "pass" and (.detail | test("1 distributed source"))'
    json_is '.nodes[1:] | all(.[]; .checks[] | select(.name == "extension") | .status == "pass")'
    fake_source orders
    run -6 --separate-stderr pgt --format json preflight
    json_is '.status.code == "unhealthy" and (.status.message | test("replica_identity"))'
    json_is '.nodes[0].checks[] | select(.name == "replica_identity") | .status == "fail" and (.detail | test("public.orders")) and (.hint | test("ALTER TABLE public.orders REPLICA IDENTITY FULL"))'
}

@test "slots list shows one row per source and worker with lag; status adds them to json and prometheus" {
    local sn w1 w2 lsn_cols
    sn=$(on coordinator "SELECT source_stable_name FROM pgtrickle.pgt_change_tracking WHERE source_relid = 'payments'::regclass")
    w1=$(port_of worker1)
    w2=$(port_of worker2)
    on coordinator "INSERT INTO pgtrickle.pgt_worker_slots (source_stable_name, worker_name, worker_port, slot_name, publication_name, worker_frontier, last_polled_at, consecutive_failures, last_error) VALUES ('$sn', '127.0.0.1', $w1, 'pgtrickle_$sn', 'pgtrickle_$sn', '0/1000', now(), 0, NULL), ('$sn', '127.0.0.1', $w2, 'pgtrickle_$sn', 'pgtrickle_$sn', '0/2000', now(), 3, 'connection refused')"
    # worker_lsn arrives with the 0.35.0 catalog: lag is known only where it exists.
    lsn_cols=$(on coordinator "SELECT count(*) FROM pg_attribute WHERE attrelid = 'pgtrickle.pgt_worker_slots'::regclass AND attname = 'worker_lsn' AND NOT attisdropped")
    if [ "$lsn_cols" = 1 ]; then
        on coordinator "UPDATE pgtrickle.pgt_worker_slots SET worker_lsn = '0/3000'"
    fi
    run -0 --separate-stderr pgt --format json slots list
    json_is '.command == "slots" and .action == "list" and (.slots | length == 2)'
    json_is "[.slots[].worker] == [\"127.0.0.1:$w1\", \"127.0.0.1:$w2\"]"
    json_is 'all(.slots[]; .source == "public.payments")'
    json_is '.slots[0].consecutive_failures == 0 and .slots[0].last_error == null'
    json_is '.slots[1].consecutive_failures >= 3 and (.slots[1].last_error | type == "string")'
    if [ "$lsn_cols" = 1 ]; then
        # lag_bytes is worker_lsn - worker_frontier of the same row.
        local i lsn frontier lag
        for i in 0 1; do
            lsn=$(jq -r ".slots[$i].worker_lsn" <<<"$output")
            frontier=$(jq -r ".slots[$i].worker_frontier" <<<"$output")
            lag=$(jq -r ".slots[$i].lag_bytes" <<<"$output")
            [ "$lag" = "$(on coordinator "SELECT ('$lsn'::pg_lsn - '$frontier'::pg_lsn)::bigint")" ]
        done
    else
        json_is 'all(.slots[]; .lag_bytes == null and .worker_lsn == null)'
    fi
    run -0 --separate-stderr pgt --format json slots list --source orders
    json_is '.slots == []'
    run -1 --separate-stderr pgt --format json slots list --source no_such_table
    # The slot with failed polls makes status unhealthy (and both slots carry their health).
    run -6 --separate-stderr pgt --format json status
    json_is '.worker_slots | length == 2'
    json_is '[.worker_slots[].status.code] == ["ok", "failing"]'
    json_is "[.problems[] | select(.reason == \"worker_slot_failing\") | .subject] == [\"public.payments@127.0.0.1:$w2\"]"
    run -6 --separate-stderr pgt --format prometheus status
    [[ "$output" == *"pgtrickle_worker_slot_consecutive_failures{source=\"public.payments\",worker=\"127.0.0.1:$w1\"} 0"* ]]
    [[ "$output" == *"pgtrickle_worker_slot_consecutive_failures{source=\"public.payments\",worker=\"127.0.0.1:$w2\"}"* ]]
    [[ "$output" == *"pgtrickle_worker_slot_last_poll_age_seconds{source=\"public.payments\",worker=\"127.0.0.1:$w1\"}"* ]]
}

@test "slots provision and drop call the extension's functions, or say they are missing (exit 3)" {
    local has
    has=$(on coordinator "SELECT to_regprocedure('pgtrickle.provision_worker_slots(regclass)') IS NOT NULL")
    if [ "$has" = t ]; then
        run --separate-stderr pgt --format json slots provision payments
        json_is '.command == "slots" and .action == "provision"'
    else
        run -3 --separate-stderr pgt --format json slots provision payments
        json_is '.status.code == "configuration" and (.status.message | test("provision_worker_slots"))'
    fi
    has=$(on coordinator "SELECT to_regprocedure('pgtrickle.drop_orphan_worker_slots()') IS NOT NULL")
    if [ "$has" = t ]; then
        run --separate-stderr pgt --format json slots drop
        json_is '.command == "slots" and .action == "drop"'
    else
        run -3 --separate-stderr pgt --format json slots drop
        json_is '.status.code == "configuration"'
    fi
}
