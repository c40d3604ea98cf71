# Shared helpers for the e2e suite (bats >= 1.5). Every file starts the cluster in
# setup_file (cluster_up), calls skip_without_cluster in setup, and stops the cluster in
# teardown_file (cluster_down), which bats runs also when tests fail.

bats_require_minimum_version 1.5.0

E2E_DIR=$(cd "$BATS_TEST_DIRNAME" && pwd)
CLUSTER="$E2E_DIR/cluster.sh"

# cluster_up (in setup_file): start the cluster. When Citus cannot be had, every test of
# the file is skipped (bats 1.8 cannot skip from setup_file: setup() calls skip_without_cluster).
cluster_up() {
    cluster_or_skip start
}

# cluster_or_skip CMD: run `cluster.sh CMD` (start, or check); when Citus cannot be had,
# export E2E_SKIP (every test of the file then skips) and succeed.
cluster_or_skip() {
    local rc=0 out
    out=$(bash "$CLUSTER" "$1" 2>&1) || rc=$?
    if [ "$rc" = 77 ]; then
        E2E_SKIP=$(grep '^SKIP:' <<<"$out" || echo "SKIP: Citus not available")
        export E2E_SKIP
    elif [ "$rc" != 0 ]; then
        echo "$out" >&2
        return "$rc"
    fi
}

# skip_without_cluster (in setup): skip the test when cluster_up found no Citus.
skip_without_cluster() {
    if [ -n "${E2E_SKIP:-}" ]; then
        skip "$E2E_SKIP"
    fi
}

# cluster_down (in teardown_file): stop the cluster; fails (after stopping it) when a
# pg_trickle background worker logged a failed iteration during the file's tests.
cluster_down() {
    local failures rc=0
    failures=$(bash "$CLUSTER" worker-failures 2>&1) || rc=$?
    bash "$CLUSTER" stop >/dev/null 2>&1 || true
    if [ "$rc" != 0 ]; then
        echo "pg_trickle workers failed during these tests:" >&2
        echo "$failures" >&2
        return 1
    fi
}

# on NODE SQL: one statement on NODE (coordinator, worker1, worker2), unaligned output.
on() {
    local node=$1
    shift
    bash "$CLUSTER" psql "$node" -At -c "$*"
}

port_of() { bash "$CLUSTER" port "$1"; }
