# Sourced by the benchmarks that run on a Citus cluster of their own (tests/e2e/cluster.sh: a
# coordinator and two workers on loopback).
#   own_cluster NAME PORT DIR   the coordinator on PORT and the workers on PORT+1 and PORT+2,
#                               in DIR, unless the environment says otherwise
#                               (PGTRICKLE_E2E_COORDINATOR_PORT, _WORKER1_PORT, _WORKER2_PORT,
#                               PGTRICKLE_E2E_DIR); defines `log` (progress, on stderr, as
#                               NAME), `on SQL` (psql on the coordinator, unaligned) and
#                               `ms SQL` (its server-side time in milliseconds).
#   own_cluster_up              starts it (exits 77 when Citus cannot be had), stops it on
#                               exit, and creates pg_trickle with its scheduler off.
CLUSTER="$(cd "$(dirname "${BASH_SOURCE[0]}")/../e2e" && pwd)/cluster.sh"

own_cluster() {
    OWN_CLUSTER_NAME=$1
    export PGTRICKLE_E2E_COORDINATOR_PORT=${PGTRICKLE_E2E_COORDINATOR_PORT:-$2}
    export PGTRICKLE_E2E_WORKER1_PORT=${PGTRICKLE_E2E_WORKER1_PORT:-$(($2 + 1))}
    export PGTRICKLE_E2E_WORKER2_PORT=${PGTRICKLE_E2E_WORKER2_PORT:-$(($2 + 2))}
    export PGTRICKLE_E2E_DIR=${PGTRICKLE_E2E_DIR:-$3}
}

log() { echo "$OWN_CLUSTER_NAME: $*" >&2; }
on() { bash "$CLUSTER" psql coordinator -At -c "$*"; }

# ms SQL: the server-side time of SQL (PL/pgSQL statements) in milliseconds.
ms() {
    local out
    if ! out=$(on "DO \$b\$ DECLARE t0 timestamptz := clock_timestamp(); BEGIN $1; RAISE NOTICE 'ms=%', round(extract(epoch FROM clock_timestamp() - t0) * 1000, 1); END \$b\$" 2>&1); then
        echo "$OWN_CLUSTER_NAME: failed: $1: $out" >&2
        return 1
    fi
    sed -n 's/.*ms=//p' <<<"$out"
}

own_cluster_up() {
    local rc=0
    bash "$CLUSTER" check >/dev/null || rc=$?
    [ "$rc" = 0 ] || exit "$rc"
    trap 'bash "$CLUSTER" stop >/dev/null 2>&1 || true' EXIT INT TERM
    bash "$CLUSTER" start >/dev/null
    on "CREATE EXTENSION pg_trickle"
    on "ALTER SYSTEM SET pg_trickle.enabled = off"
    on "SELECT pg_reload_conf()" >/dev/null
}
