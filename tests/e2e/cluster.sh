#!/usr/bin/env bash
# A Citus cluster on loopback for the e2e suite: a coordinator and two workers, each a
# throwaway server (tests/support/pgtmp.sh: own data dir under a temp dir, 127.0.0.1 only,
# trust auth, run as the `postgres` user when we are root), with
#   shared_preload_libraries = 'citus,pg_trickle'   (citus first)
#   wal_level = logical, citus.enable_change_data_capture = on   (set before start)
# then CREATE EXTENSION citus on every node, citus_set_coordinator_host and citus_add_node
# for each worker, on the coordinator.
#
#   cluster.sh check          exit 0 when Citus can be had (installs it from
#                             ../shared/citus when that exists and we are root), else print
#                             a line starting with "SKIP:" and exit 77
#   cluster.sh start          check, then start the cluster (exit 77 with SKIP: as above)
#   cluster.sh stop           stop every node and remove the cluster's dir (idempotent)
#   cluster.sh worker-failures   print the nodes' logged pg_trickle worker failures (scheduler
#                             tick, launcher iteration, WAL poll); exit 1 when there are any
#   cluster.sh status         every node's state; the coordinator's pg_dist_node
#   cluster.sh port NODE      the port of NODE (coordinator, worker1, worker2)
#   cluster.sh psql NODE [psql args...]   psql to NODE's `postgres` database
#   cluster.sh kill NODE      kill -9 NODE's postmaster (a crash; its children die with it)
#   cluster.sh halt NODE      stop NODE at once (pg_ctl -m immediate), keeping its data
#   cluster.sh resume NODE    start NODE again after kill or halt (crash recovery runs)
#   cluster.sh freeze NODE    SIGSTOP NODE's postmaster and its processes (a hung machine:
#                             connections stay open, nothing answers); thaw NODE: SIGCONT
#
# Ports are fixed (Citus' own test ports; outside pgtmp.sh's random 20000-31999; .ci/run
# reserves them from the ephemeral range, where client connections could hold them) and can be
# overridden: PGTRICKLE_E2E_COORDINATOR_PORT (57636), PGTRICKLE_E2E_WORKER1_PORT (57637),
# PGTRICKLE_E2E_WORKER2_PORT (57638). The cluster lives in PGTRICKLE_E2E_DIR (default
# ${TMPDIR:-/tmp}/pgtrickle-e2e-<coordinator port>).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
pgtmp="$root/tests/support/pgtmp.sh"
SKIP_CODE=77

COORDINATOR_PORT=${PGTRICKLE_E2E_COORDINATOR_PORT:-57636}
WORKER1_PORT=${PGTRICKLE_E2E_WORKER1_PORT:-57637}
WORKER2_PORT=${PGTRICKLE_E2E_WORKER2_PORT:-57638}
CLUSTER_DIR=${PGTRICKLE_E2E_DIR:-${TMPDIR:-/tmp}/pgtrickle-e2e-$COORDINATOR_PORT}
NODES=(coordinator worker1 worker2)
PG_CONFIG=${PG_CONFIG:-$(command -v pg_config || echo /usr/lib/postgresql/15/bin/pg_config)}
PG_BINDIR=${PG_BINDIR:-$("$PG_CONFIG" --bindir)}
export PG_BINDIR

die() { echo "cluster: $*" >&2; exit 1; }
log() { echo "cluster: $*" >&2; }
skip() { echo "SKIP: e2e (Citus cluster) suite skipped: $*"; exit $SKIP_CODE; }

node_port() {
    case "$1" in
        coordinator) echo "$COORDINATOR_PORT" ;;
        worker1) echo "$WORKER1_PORT" ;;
        worker2) echo "$WORKER2_PORT" ;;
        *) die "unknown node '$1' (coordinator, worker1, worker2)" ;;
    esac
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

psql_node() {
    local node=$1
    shift
    PGCONNECT_TIMEOUT=10 "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 \
        -p "$(node_port "$node")" -U postgres -d postgres "$@"
}

citus_installed() {
    [ -f "$("$PG_CONFIG" --pkglibdir)/citus.so" ] &&
        [ -f "$("$PG_CONFIG" --sharedir)/extension/citus.control" ]
}

# Citus is not a Debian package: install it from ../shared/citus (beside the repository)
# when that exists, else use an installed one, else SKIP.
cmd_check() {
    local installer="$root/../shared/citus/install.sh"
    if [ -f "$installer" ]; then
        if [ "$(id -u)" = 0 ]; then
            bash "$installer" >&2 || skip "$installer failed (exit $?)"
        elif ! citus_installed; then
            skip "Citus is not installed and $installer must run as root"
        fi
    fi
    if ! citus_installed; then
        skip "Citus is not installed for $("$PG_CONFIG" --version) (no citus.so in $("$PG_CONFIG" --pkglibdir)) and ../shared/citus/install.sh does not exist beside the repository"
    fi
    [ -f "$("$PG_CONFIG" --pkglibdir)/pg_trickle.so" ] ||
        die "pg_trickle is not installed into $("$PG_CONFIG" --pkglibdir) (run cmake --install build)"
}

cmd_start() {
    cmd_check
    if [ -f "$CLUSTER_DIR/cluster.env" ]; then
        die "a cluster is already running in $CLUSTER_DIR (cluster.sh stop first)"
    fi
    # A start that fails half-way stops what it started.
    (do_start) || {
        local rc=$?
        log "start failed (exit $rc); stopping what was started"
        cmd_stop
        exit "$rc"
    }
}

do_start() {
    local node port
    for node in "${NODES[@]}"; do
        port=$(node_port "$node")
        ! port_in_use "$port" || die "port $port ($node) is in use on 127.0.0.1 (set PGTRICKLE_E2E_${node^^}_PORT)"
    done
    mkdir -p "$CLUSTER_DIR"
    chmod 755 "$CLUSTER_DIR"
    {
        echo "COORDINATOR_PORT=$COORDINATOR_PORT"
        echo "WORKER1_PORT=$WORKER1_PORT"
        echo "WORKER2_PORT=$WORKER2_PORT"
    } >"$CLUSTER_DIR/cluster.env"
    for node in "${NODES[@]}"; do
        port=$(node_port "$node")
        bash "$pgtmp" start --dir "$CLUSTER_DIR/$node" --port "$port" --no-preload \
            --set shared_preload_libraries=citus,pg_trickle \
            --set citus.enable_change_data_capture=on \
            --set synchronous_commit=on >/dev/null ||
            die "could not start $node on port $port (log: $CLUSTER_DIR/$node/server.log)"
        log "$node up on 127.0.0.1:$port ($CLUSTER_DIR/$node)"
    done
    for node in "${NODES[@]}"; do
        psql_node "$node" -c "CREATE EXTENSION citus" >/dev/null
    done
    psql_node coordinator -c "SELECT citus_set_coordinator_host('127.0.0.1', $COORDINATOR_PORT)" >/dev/null
    psql_node coordinator -c "SELECT citus_add_node('127.0.0.1', $WORKER1_PORT)" >/dev/null
    psql_node coordinator -c "SELECT citus_add_node('127.0.0.1', $WORKER2_PORT)" >/dev/null
    log "cluster ready: coordinator 127.0.0.1:$COORDINATOR_PORT, workers :$WORKER1_PORT :$WORKER2_PORT"
}

# Lines of the nodes' logs where a pg_trickle background worker's iteration failed (a
# failure no test sees otherwise); exit 1 when there are any.
cmd_worker_failures() {
    local node found=1
    for node in "${NODES[@]}"; do
        if grep -E "pg_trickle: (scheduler tick|launcher iteration|WAL poll) failed" \
            "$CLUSTER_DIR/$node/server.log" 2>/dev/null | sed "s/^/$node: /" | head -n 5 | grep .; then
            found=0
        fi
    done
    [ "$found" = 1 ]
}

cmd_stop() {
    local node pid
    for node in "${NODES[@]}"; do
        if [ -d "$CLUSTER_DIR/$node" ]; then
            # A node a failed test left frozen could not shut down.
            pid=$(head -1 "$CLUSTER_DIR/$node/data/postmaster.pid" 2>/dev/null || true)
            if [ -n "$pid" ]; then
                kill -CONT "$pid" $(pgrep -P "$pid" 2>/dev/null) 2>/dev/null || true
            fi
            bash "$pgtmp" stop "$CLUSTER_DIR/$node" || true
        fi
    done
    case "$CLUSTER_DIR" in
        /tmp/* | "${TMPDIR:-/tmp}"/*) rm -rf "$CLUSTER_DIR" ;;
        *) rm -f "$CLUSTER_DIR/cluster.env" ;;
    esac
    log "stopped (${CLUSTER_DIR})"
}

cmd_status() {
    local node port rc=0
    for node in "${NODES[@]}"; do
        port=$(node_port "$node")
        if "$PG_BINDIR/pg_isready" -q -h 127.0.0.1 -p "$port"; then
            echo "$node 127.0.0.1:$port up"
        else
            echo "$node 127.0.0.1:$port down"
            rc=1
        fi
    done
    if [ "$rc" = 0 ]; then
        psql_node coordinator -c "SELECT nodeid, groupid, nodename, nodeport, isactive, noderole FROM pg_dist_node ORDER BY nodeid"
    fi
    return $rc
}

as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

node_dir() {
    local dir="$CLUSTER_DIR/$1"
    [ -d "$dir/data" ] || die "$1 has no data directory in $CLUSTER_DIR (cluster.sh start first)"
    echo "$dir"
}

cmd_kill() {
    local dir pid
    dir=$(node_dir "$1")
    pid=$(head -1 "$dir/data/postmaster.pid" 2>/dev/null) || die "$1 is not running"
    kill -9 "$pid"
    # The postmaster's children notice its death and exit; wait for them (they hold the
    # shared memory a new postmaster checks).
    local i
    for i in $(seq 1 200); do
        [ -z "$(pgrep -P "$pid" 2>/dev/null)" ] && break
        sleep 0.1
    done
    log "$1 killed (postmaster $pid)"
}

cmd_halt() {
    local dir
    dir=$(node_dir "$1")
    as_owner "$PG_BINDIR/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null
    log "$1 halted"
}

# freeze NODE / thaw NODE: SIGSTOP (SIGCONT) the node's postmaster and every process it
# started: its sockets stay open and nothing answers (a hung machine).
node_processes() {
    local dir pid
    dir=$(node_dir "$1")
    pid=$(head -1 "$dir/data/postmaster.pid" 2>/dev/null) || die "$1 is not running"
    echo "$pid"
    pgrep -P "$pid" 2>/dev/null || true
}

cmd_freeze() {
    local p
    for p in $(node_processes "$1"); do
        kill -STOP "$p" 2>/dev/null || true
    done
    log "$1 frozen"
}

cmd_thaw() {
    local p
    for p in $(node_processes "$1"); do
        kill -CONT "$p" 2>/dev/null || true
    done
    log "$1 thawed"
}

cmd_resume() {
    local dir port pid state
    dir=$(node_dir "$1")
    port=$(node_port "$1")
    # A killed postmaster whose parent does not reap it (PID 1 in a container) lingers as a
    # zombie, which PostgreSQL takes for a running postmaster: its lock file goes.
    pid=$(head -1 "$dir/data/postmaster.pid" 2>/dev/null || true)
    if [ -n "$pid" ]; then
        state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo gone)
        if [ "$state" = Z ] || [ "$state" = gone ]; then
            rm -f "$dir/data/postmaster.pid" "$dir/.s.PGSQL.$port.lock"
        fi
    fi
    as_owner "$PG_BINDIR/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port" start >/dev/null || die "could not start $1 again (log: $dir/server.log)"
    log "$1 up again on 127.0.0.1:$port"
}

case "${1:-}" in
    check) cmd_check ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    worker-failures) cmd_worker_failures ;;
    status) cmd_status ;;
    port) node_port "${2:?usage: cluster.sh port NODE}" ;;
    psql)
        node=${2:?usage: cluster.sh psql NODE [psql args...]}
        shift 2
        psql_node "$node" "$@"
        ;;
    kill) cmd_kill "${2:?usage: cluster.sh kill NODE}" ;;
    halt) cmd_halt "${2:?usage: cluster.sh halt NODE}" ;;
    resume) cmd_resume "${2:?usage: cluster.sh resume NODE}" ;;
    freeze) cmd_freeze "${2:?usage: cluster.sh freeze NODE}" ;;
    thaw) cmd_thaw "${2:?usage: cluster.sh thaw NODE}" ;;
    *) die "usage: cluster.sh check|start|stop|status|worker-failures|port NODE|psql NODE [args...]|kill NODE|halt NODE|resume NODE|freeze NODE|thaw NODE" ;;
esac
