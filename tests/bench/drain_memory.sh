#!/usr/bin/env bash
# Drain memory benchmark (docs/benchmarks.md, "Drain memory"): does a drain's memory on the
# coordinator grow with the backlog it drains? Starts its own Citus cluster (tests/e2e/
# cluster.sh on ports 57846-57848), and for each size N (a baseline size first):
#   a distributed table of N rows (REPLICA IDENTITY FULL) read by a stream table, the
#   scheduler off (pg_trickle.enabled = off), one UPDATE of all N rows through the coordinator
#   (2N changes in the slots: an old and a new row each), then one
#   `SELECT sum(changes) FROM pgtrickle.poll_worker_slots()` in a session of its own, whose
#   backend's private memory (RssAnon of /proc/<pid>/status; not the shared buffers it
#   touches, which VmHWM would count) is read before the drain and sampled every 20 ms
#   during it.
# Prints the growth of the peak per size and its ratio to the baseline size's growth; the
# drain streams the slot's changes (one message at a time), so the ratio should stay near 1.
#
#   tests/bench/drain_memory.sh [--sizes "500000 5000000"]
#
# Exit status: 0 when it ran, 1 on a failure, 77 when Citus is not available.
set -euo pipefail
# shellcheck source=tests/bench/own_cluster.bash
. "$(dirname "$0")/own_cluster.bash"
own_cluster drain_memory 57846 /tmp/pgtrickle-bench-memory

SIZES="500000 5000000"
while [ $# -gt 0 ]; do
    case "$1" in
        --sizes) SIZES=$2; shift 2 ;;
        -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "drain_memory: unknown option $1" >&2; exit 1 ;;
    esac
done

own_cluster_up
# The backlog is allowed to be large here: the point is to drain it.
on "ALTER SYSTEM SET pg_trickle.citus_slot_max_lag_bytes = 0"
on "SELECT pg_reload_conf()" >/dev/null

declare -A growth
base=""
for n in $SIZES; do
    [ -n "$base" ] || base=$n
    log "size $n: table, stream table, one UPDATE of every row"
    on "DROP TABLE IF EXISTS big CASCADE" >/dev/null 2>&1 || true
    on "CREATE TABLE big (id bigint PRIMARY KEY, k int NOT NULL, v int NOT NULL)"
    on "SELECT create_distributed_table('big', 'id')" >/dev/null
    on "ALTER TABLE big REPLICA IDENTITY FULL"
    on "INSERT INTO big SELECT g, g % 100, 0 FROM generate_series(1, $n) g"
    on "CALL pgtrickle.create_stream_table(name => 'big_st', query => 'SELECT k, count(*) AS n, sum(v) AS s FROM big GROUP BY k', refresh_mode => 'differential')"
    on "UPDATE big SET v = v + 1"
    # One session of its own, which sleeps before and after the drain.
    bash "$CLUSTER" psql coordinator -At -c "SET application_name = 'drain_memory'" \
        -c "SELECT pg_sleep(2)" -c "SELECT sum(changes) FROM pgtrickle.poll_worker_slots()" \
        -c "SELECT pg_sleep(5)" >"$PGTRICKLE_E2E_DIR.out" &
    drainer=$!
    pid=""
    for _ in $(seq 1 100); do
        pid=$(on "SELECT pid FROM pg_stat_activity WHERE application_name = 'drain_memory' AND query LIKE '%pg_sleep(2)%'")
        [ -n "$pid" ] && break
        sleep 0.05
    done
    [ -n "$pid" ] || { echo "drain_memory: the draining session did not show up" >&2; exit 1; }
    # Private memory (RssAnon: the backend's own heap, not the shared buffers it touches,
    # which VmHWM would count), sampled every 20 ms while the drain runs; the peak is kept.
    before=$(awk '/RssAnon/ {print $2}' "/proc/$pid/status")
    after=$before
    for _ in $(seq 1 60000); do
        state=$(on "SELECT query FROM pg_stat_activity WHERE pid = $pid")
        [[ "$state" == *"pg_sleep(5)"* ]] && break
        for _ in 1 2 3 4 5; do
            now=$(awk '/RssAnon/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
            [ "${now:-0}" -gt "$after" ] && after=$now
            sleep 0.02
        done
    done
    wait "$drainer"
    changes=$(grep -E '^[0-9]+$' "$PGTRICKLE_E2E_DIR.out" | tail -1)
    growth[$n]=$((after - before))
    log "size $n: $changes changes drained; RssAnon $before kB before, peak $after kB during the drain"
    on "CALL pgtrickle.refresh_stream_table('big_st')"
    d=$(on "SELECT count(*) FROM ((SELECT k, n, s FROM big_st EXCEPT SELECT k, count(*), sum(v) FROM big GROUP BY k) UNION ALL (SELECT k, count(*), sum(v) FROM big GROUP BY k EXCEPT SELECT k, n, s FROM big_st)) d")
    [ "$d" = 0 ] || { echo "drain_memory: big_st differs from its query by $d rows" >&2; exit 1; }
    on "CALL pgtrickle.drop_stream_table('big_st')"
done

echo "| rows updated | changes drained | growth of the draining backend's private memory (peak RssAnon) | vs $base rows |"
echo "|---|---|---|---|"
for n in $SIZES; do
    awk -v n="$n" -v g="${growth[$n]}" -v b="${growth[$base]}" 'BEGIN {
        r = (b > 0) ? sprintf("%.2fx", g / b) : "n/a";
        printf "| %d | %d | %d kB | %s |\n", n, 2 * n, g, r }'
done
