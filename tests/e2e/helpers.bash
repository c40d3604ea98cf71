# Shared helpers for the e2e suite (bats >= 1.5). Every file starts the cluster in
# setup_file (cluster_up) and stops it in teardown_file (cluster_down), which bats runs
# also when tests fail.

bats_require_minimum_version 1.5.0

E2E_DIR=$(cd "$BATS_TEST_DIRNAME" && pwd)
CLUSTER="$E2E_DIR/cluster.sh"

# cluster_up: start the cluster; skip every test of the file when Citus cannot be had.
cluster_up() {
    local rc=0 out
    out=$(bash "$CLUSTER" start 2>&1) || rc=$?
    if [ "$rc" = 77 ]; then
        skip "$(grep '^SKIP:' <<<"$out" || echo "SKIP: Citus not available")"
    elif [ "$rc" != 0 ]; then
        echo "$out" >&2
        return "$rc"
    fi
}

cluster_down() {
    bash "$CLUSTER" stop >/dev/null 2>&1 || true
}

# on NODE SQL: one statement on NODE (coordinator, worker1, worker2), unaligned output.
on() {
    local node=$1
    shift
    bash "$CLUSTER" psql "$node" -At -c "$*"
}

port_of() { bash "$CLUSTER" port "$1"; }
