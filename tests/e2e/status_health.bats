#!/usr/bin/env bats
# `pgtrickle status` on a real Citus cluster: every active primary node (the coordinator
# included) must be reachable from the coordinator and every worker slot healthy, else
# status exits 6 naming them (JSON: nodes[] and worker_slots[] with {code, message} status
# objects; Prometheus: pgtrickle_node_up, pgtrickle_worker_slot_up). A worker is stopped
# (cluster.sh halt) and started again (cluster.sh resume).

load helpers

PGTRICKLE_SOURCE_DIR=${PGTRICKLE_SOURCE_DIR:-$(cd "$BATS_TEST_DIRNAME/../.." && pwd)}
PGTRICKLE_BIN=${PGTRICKLE_BIN:-$PGTRICKLE_SOURCE_DIR/build/cli/pgtrickle}

setup_file() {
    cluster_up
    [ -n "${E2E_SKIP:-}" ] && return 0
    distributed_orders 500 10
    on coordinator "CREATE TABLE notes (id int PRIMARY KEY, body text)"
    on coordinator "INSERT INTO notes SELECT g, 'n' || g FROM generate_series(1, 10) g"
}

setup() {
    skip_without_cluster
    unset PGTRICKLE_DSN PGSERVICE PGHOSTADDR PGOPTIONS
    export PGHOST=127.0.0.1 PGPORT=$(port_of coordinator) PGUSER=postgres PGDATABASE=postgres
}

teardown() {
    # A test that stopped worker2 starts it again, also when it failed.
    if [ -n "${WORKER2_HALTED:-}" ]; then
        bash "$CLUSTER" resume worker2
        WORKER2_HALTED=
    fi
}

teardown_file() {
    cluster_down
}

# wait_for_status CODE [ARGS]: until `pgtrickle --format json status ARGS` exits CODE (30 s).
wait_for_status() {
    local want=$1 i rc
    shift
    for i in $(seq 1 60); do
        rc=0
        pgt --format json status "$@" >/dev/null 2>&1 || rc=$?
        [ "$rc" = "$want" ] && return 0
        sleep 0.5
    done
    echo "status $* did not exit $want within 30 s (last: $rc)" >&2
    pgt --format json status "$@" >&2 || true
    return 1
}

@test "a healthy cluster: every node reached, every worker slot ok, exit 0" {
    # No schedule: refreshes failing while a worker is down would end up suspending it. The
    # scheduler's poller reads the slots every tick all the same.
    run -0 --separate-stderr pgt create orders_by_customer \
        --query 'SELECT customer_id, count(*) AS n, sum(qty) AS qty FROM orders GROUP BY customer_id'
    run -0 --separate-stderr pgt create notes_copy --query 'SELECT id, body FROM notes'
    wait_for_status 0
    run -0 --separate-stderr pgt --format json status
    json_is '.status.code == "ok" and .problems == []'
    json_is "[.nodes[].node] == [\"127.0.0.1:$(port_of coordinator)\", \"127.0.0.1:$(port_of worker1)\", \"127.0.0.1:$(port_of worker2)\"]"
    json_is '[.nodes[].role] == ["coordinator", "worker", "worker"]'
    json_is 'all(.nodes[]; .reachable == true and .status.code == "ok" and (.nodeid | type == "number"))'
    json_is '(.worker_slots | length) == 2 and all(.worker_slots[]; .status.code == "ok")'
    json_is '.status.message | test("2 worker slots, 3 nodes, all healthy")'
    run -0 --separate-stderr pgt --format prometheus status
    [[ "$output" == *"pgtrickle_node_up{node=\"127.0.0.1:$(port_of worker2)\",role=\"worker\"} 1"* ]]
    [[ "$output" == *"pgtrickle_node_up{node=\"127.0.0.1:$(port_of coordinator)\",role=\"coordinator\"} 1"* ]]
    [[ "$output" == *"pgtrickle_worker_slot_up{source=\"public.orders\",worker=\"127.0.0.1:$(port_of worker1)\"} 1"* ]]
}

@test "a stopped worker: status exits 6 naming it, in bounded time; 0 again once it is back" {
    local w2="127.0.0.1:$(port_of worker2)" start took
    bash "$CLUSTER" halt worker2
    WORKER2_HALTED=1
    start=$SECONDS
    run -6 --separate-stderr pgt --format json status
    took=$((SECONDS - start))
    [ "$took" -le 15 ] || { echo "status took $took s with a worker down" >&2; return 1; }
    json_is '.status.code == "unhealthy"'
    json_is ".nodes[] | select(.node == \"$w2\") | .reachable == false and .status.code == \"unreachable\" and (.status.message | length > 0)"
    json_is ".nodes[] | select(.node != \"$w2\") | .reachable == true"
    json_is ".problems[] | select(.reason == \"node_unreachable\") | .subject == \"$w2\""
    json_is ".status.message | test(\"1 of 3 nodes not reachable: $w2\")"
    run -6 --separate-stderr pgt --format prometheus status
    [[ "$output" == *"pgtrickle_node_up{node=\"$w2\",role=\"worker\"} 0"* ]]
    [[ "$output" == *$'\npgtrickle_healthy 0\n'* ]]
    run -6 --separate-stderr pgt status
    [[ "$stderr" != *"internal error"* ]]
    # The scheduler's poller fails on that worker's slot too: the slot turns failing.
    local i failing=
    for i in $(seq 1 40); do
        run --separate-stderr pgt --format json status
        if jq -e ".worker_slots[] | select(.worker == \"$w2\") | .status.code == \"failing\"" >/dev/null <<<"$output"; then
            failing=1
            break
        fi
        sleep 0.5
    done
    [ -n "$failing" ] || { echo "the slot on $w2 did not turn failing: $output" >&2; return 1; }
    json_is ".problems[] | select(.reason == \"worker_slot_failing\") | .subject == \"public.orders@$w2\""
    # A stream table that reads only local tables does not depend on the workers.
    run -0 --separate-stderr pgt --format json status notes_copy
    json_is '(has("nodes") | not) and .problems == []'
    # One reading the distributed table depends on the nodes its slots are on.
    run -6 --separate-stderr pgt --format json status orders_by_customer
    json_is "[.nodes[].node] == [\"127.0.0.1:$(port_of worker1)\", \"$w2\"]"
    bash "$CLUSTER" resume worker2
    WORKER2_HALTED=
    wait_for_status 0
    run -0 --separate-stderr pgt --format json status
    json_is 'all(.nodes[]; .reachable == true) and all(.worker_slots[]; .status.code == "ok")'
}
