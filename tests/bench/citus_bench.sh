#!/usr/bin/env bash
# Citus benchmark (docs/benchmarks.md, "Citus"): starts its own Citus cluster with
# tests/e2e/cluster.sh (a coordinator and two workers on loopback), measures pg_trickle over
# distributed tables against baselines taken in the same run, prints a table, and stops the
# cluster again (also on failure or Ctrl-C).
#
#   tests/bench/citus_bench.sh [--quick] [--rows N] [--drain-rows N] [--drain-rounds N]
#                              [--cycles N] [--changes-per-cycle 1000] [--pgbench-seconds N]
#                              [--pgbench-rounds N] [--clients N] [--perf]
#
# 1. Slot drain: N inserts and N single-column updates (REPLICA IDENTITY FULL: an update is
#    an old and a new buffer row) written through the coordinator with the scheduler off
#    (pg_trickle.enabled = off), then `SELECT sum(changes) FROM pgtrickle.poll_worker_slots()`
#    timed. Baselines: the raw decode of the same slots on the workers
#    (pg_logical_slot_peek_binary_changes, nothing consumed) and an INSERT ... SELECT of the
#    same buffer rows into a local table shaped like the change buffer. The coordinator
#    backend's CPU time over the drain comes from /proc/<pid>/stat; --perf also records it
#    with perf and prints where it went.
# 2. Refresh after 1,000 mixed changes of a ~1M-row distributed table: CALL
#    pgtrickle.refresh_stream_table (drain + apply) vs REFRESH MATERIALIZED VIEW of the same
#    query on the coordinator; every refresh is checked equal to its query.
# 3. Write overhead: pgbench single-row UPDATEs (a) on a distributed table with default
#    replica identity and no slot, (b) on the same table with REPLICA IDENTITY FULL and a
#    stream table's slots, the scheduler draining them, (c) on a local table read by a stream
#    table (trigger capture) vs a plain local table. Rounds alternate the order.
#
# Ports and the cluster directory: PGTRICKLE_E2E_COORDINATOR_PORT / _WORKER1_PORT /
# _WORKER2_PORT / PGTRICKLE_E2E_DIR (defaults below: 57836-57838, /tmp/pgtrickle-bench-cluster,
# away from the e2e suite's 57636-57638). Report on stdout, progress on stderr.
# Exit status: 0 when it ran (missed targets are reported, not failures), 2 when a stream
# table differed from its query, 1 on any other failure, 77 when Citus is not available.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
CLUSTER="$root/tests/e2e/cluster.sh"

export PGTRICKLE_E2E_COORDINATOR_PORT=${PGTRICKLE_E2E_COORDINATOR_PORT:-57836}
export PGTRICKLE_E2E_WORKER1_PORT=${PGTRICKLE_E2E_WORKER1_PORT:-57837}
export PGTRICKLE_E2E_WORKER2_PORT=${PGTRICKLE_E2E_WORKER2_PORT:-57838}
export PGTRICKLE_E2E_DIR=${PGTRICKLE_E2E_DIR:-/tmp/pgtrickle-bench-cluster}

ROWS=1000000          # rows of orders once the drain part has written its rows
DRAIN_ROWS=200000     # inserts, and then updates, per drain round
DRAIN_ROUNDS=2
CYCLES=5
CHANGES=1000          # per refresh cycle: 40% qty updates, 20% customer updates, 20% inserts, 20% deletes
PB_ROWS=100000        # rows of the pgbench tables
PB_SECONDS=15
PB_ROUNDS=3
CLIENTS=4
PERF=0

usage() { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) ROWS=200000; DRAIN_ROWS=50000; DRAIN_ROUNDS=1; CYCLES=3; PB_SECONDS=5; PB_ROUNDS=1; shift ;;
        --rows) ROWS=$2; shift 2 ;;
        --drain-rows) DRAIN_ROWS=$2; shift 2 ;;
        --drain-rounds) DRAIN_ROUNDS=$2; shift 2 ;;
        --cycles) CYCLES=$2; shift 2 ;;
        --changes-per-cycle) CHANGES=$2; shift 2 ;;
        --pgbench-seconds) PB_SECONDS=$2; shift 2 ;;
        --pgbench-rounds) PB_ROUNDS=$2; shift 2 ;;
        --clients) CLIENTS=$2; shift 2 ;;
        --perf) PERF=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "citus_bench: unknown option $1" >&2; usage >&2; exit 1 ;;
    esac
done
BASE_ROWS=$((ROWS - DRAIN_ROWS * DRAIN_ROUNDS))
[ "$BASE_ROWS" -gt $((CHANGES * (CYCLES + 1))) ] || { echo "citus_bench: --rows too small for the drain rows" >&2; exit 1; }
CUSTOMERS=10000

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pgtrickle-citus-bench.XXXXXX")
export WORK
chmod 755 "$WORK"
STARTED=0
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ "$STARTED" = 1 ]; then
        if [ "$rc" != 0 ] && [ -f "$PGTRICKLE_E2E_DIR/coordinator/server.log" ]; then
            echo "citus_bench: failed (exit $rc); last lines of the coordinator's log:" >&2
            tail -n 20 "$PGTRICKLE_E2E_DIR/coordinator/server.log" >&2 || true
        fi
        bash "$CLUSTER" stop >&2 || true
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log() { echo "citus_bench: $*" >&2; }

# q NODE SQL...: each argument one statement (Citus propagates DDL statement by statement).
q() {
    local node=$1 s
    shift
    for s in "$@"; do
        bash "$CLUSTER" psql "$node" -At -c "$s"
    done
}
# ms NODE SQL: run SQL in one session with \timing; print the server round trip in ms.
ms() {
    bash "$CLUSTER" psql "$1" -At -c '\timing on' -c "$2" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1
}
# msw NODE SQL: as ms, in a session whose connections to the workers are open already
# (pg_trickle's, through provision_worker_slots(), and Citus', through a read of orders).
msw() {
    bash "$CLUSTER" psql "$1" -At -c "SELECT count(*) FROM pgtrickle.provision_worker_slots()" \
        -c "SELECT 1 FROM orders LIMIT 1" -c '\timing on' -c "$2" >"$WORK/msw.out"
    sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' "$WORK/msw.out" | tail -1
}
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) exit 1; if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
CLK_TCK=$(getconf CLK_TCK)

REPORT="$WORK/report"
: >"$REPORT"
# row MEASUREMENT VALUE BASELINE BASELINE_VALUE RATIO TARGET RESULT
row() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$REPORT"; }
print_report() {
    awk -F'\t' '
        { for (i = 1; i <= NF; i++) { c[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } n = NR }
        END {
            split("measurement|pg_trickle|baseline|baseline value|ratio|target|result", h, "|")
            for (i = 1; i <= 7; i++) if (length(h[i]) > w[i]) w[i] = length(h[i])
            line = "|"; sep = "|"
            for (i = 1; i <= 7; i++) { line = line sprintf(" %-" w[i] "s |", h[i]); s = ""; for (k = 0; k < w[i] + 2; k++) s = s "-"; sep = sep s "|" }
            print line; print sep
            for (r = 1; r <= n; r++) { line = "|"; for (i = 1; i <= 7; i++) line = line sprintf(" %-" w[i] "s |", c[r, i]); print line }
        }' "$REPORT"
}

scheduler() { # on|off
    if [ "$1" = on ]; then
        q coordinator "ALTER SYSTEM RESET pg_trickle.enabled" "SELECT pg_reload_conf()" >/dev/null
    else
        q coordinator "ALTER SYSTEM SET pg_trickle.enabled = off" "SELECT pg_reload_conf()" >/dev/null
    fi
    sleep 1
}

# differs ST QUERY COLS: rows of the stream table and of the query that the other lacks.
differs() {
    q coordinator "WITH q AS MATERIALIZED ($2) SELECT count(*) FROM ((SELECT $3 FROM $1 EXCEPT ALL SELECT * FROM q) UNION ALL (SELECT * FROM q EXCEPT ALL SELECT $3 FROM $1)) d"
}
check_equal() {
    local n
    n=$(differs "$@")
    if [ "$n" != 0 ]; then
        log "MISMATCH: stream table $1 differs from its query by $n rows"
        exit 2
    fi
}

bash "$CLUSTER" check >&2 || exit $?
log "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
STARTED=1
bash "$CLUSTER" start >&2
COORD_PORT=$(bash "$CLUSTER" port coordinator)
T_START=$(date +%s)
PG_VERSION=$(q coordinator "SHOW server_version")
CITUS_VERSION=$(q coordinator "SELECT extversion FROM pg_extension WHERE extname = 'citus'")

# ---- setup ---------------------------------------------------------------------------------
log "setup: orders with $BASE_ROWS rows, distributed by id"
AGG_Q="SELECT customer_id, count(*) AS n, sum(qty) AS qty FROM orders GROUP BY customer_id"
q coordinator \
    "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int, qty int, amount numeric(12,2), note text)" \
    "SELECT create_distributed_table('orders', 'id')" \
    "ALTER TABLE orders REPLICA IDENTITY FULL" \
    "INSERT INTO orders SELECT g, g % $CUSTOMERS, g % 7, g * 1.5, 'note ' || g FROM generate_series(1, $BASE_ROWS) g" \
    "CREATE EXTENSION pg_trickle" \
    "ALTER SYSTEM SET pg_trickle.enabled = off" \
    "SELECT pg_reload_conf()" >/dev/null
PGT_VERSION=$(q coordinator "SELECT extversion FROM pg_extension WHERE extname = 'pg_trickle'")
q coordinator "CALL pgtrickle.create_stream_table('agg', '$AGG_Q', refresh_mode => 'differential')"
mode=$(q coordinator "SELECT effective_mode FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'agg'")
[ "$mode" = differential ] || { log "agg is maintained as '$mode', not differential"; exit 1; }
KEY=$(q coordinator "SELECT DISTINCT source_stable_name FROM pgtrickle.pgt_worker_slots")
SLOT=$(q coordinator "SELECT DISTINCT slot_name FROM pgtrickle.pgt_worker_slots")
BUFFER="pgtrickle_changes.changes_$KEY"
q coordinator "CREATE TABLE local_copy (LIKE $BUFFER INCLUDING ALL)"
for n in coordinator worker1 worker2; do q "$n" "VACUUM ANALYZE" "CHECKPOINT"; done

# ---- 1. slot drain -------------------------------------------------------------------------
PEEK="SELECT count(*) FROM pg_logical_slot_peek_binary_changes('$SLOT', NULL, NULL, 'proto_version', '1', 'publication_names', '$SLOT')"
next_id=$BASE_ROWS
for r in $(seq 1 "$DRAIN_ROUNDS"); do
    log "drain round $r: $DRAIN_ROWS inserts and $DRAIN_ROWS updates through the coordinator"
    # A drain advances a slot to the stored frontier at its start: so that the peeks below
    # read this round's changes only, advance past the previous round's now (no changes).
    q coordinator "SELECT sum(changes) FROM pgtrickle.poll_worker_slots()" >/dev/null
    q coordinator \
        "INSERT INTO orders SELECT g, g % $CUSTOMERS, g % 7, g * 1.5, 'note ' || g FROM generate_series($((next_id + 1)), $((next_id + DRAIN_ROWS))) g" \
        "UPDATE orders SET qty = qty + 1 WHERE id > $((DRAIN_ROWS * (r - 1))) AND id <= $((DRAIN_ROWS * r))" >/dev/null
    next_id=$((next_id + DRAIN_ROWS))
    for n in coordinator worker1 worker2; do q "$n" "CHECKPOINT"; done
    # Raw decode on each worker, 3 times each (peek consumes nothing).
    peek_total=0
    msgs=0
    for w in worker1 worker2; do
        t=$(for _ in 1 2 3; do ms "$w" "$PEEK"; done | median)
        msgs=$((msgs + $(q "$w" "$PEEK")))
        peek_total=$(awk -v a="$peek_total" -v b="$t" 'BEGIN {print a + b}')
        echo "$w $t" >>"$WORK/peek_$r"
    done
    # The drain, in a session whose backend pid we know (CPU time from /proc).
    perf_on=""
    perf_off=""
    if [ "$PERF" = 1 ] && [ "$r" = 1 ]; then
        perf_on="\\! perf record -F 999 -g -p \$BPID -o \$WORK/perf.data >\$WORK/perf.log 2>&1 & echo \$! > \$WORK/perf.pid; sleep 1"
        perf_off="\\! kill -INT \$(cat \$WORK/perf.pid); sleep 2"
    fi
    bash "$CLUSTER" psql coordinator -At >"$WORK/drain_$r" <<EOF
SELECT pg_backend_pid() AS bpid \gset
\setenv BPID :bpid
$perf_on
\! echo \$BPID > \$WORK/bpid; awk '{print \$14 + \$15}' /proc/\$BPID/stat > \$WORK/cpu0; awk '{print \$2}' /proc/\$BPID/schedstat > \$WORK/rq0
\timing on
SELECT 'changes', sum(changes) FROM pgtrickle.poll_worker_slots();
\timing off
\! awk '{print \$14 + \$15}' /proc/\$BPID/stat > \$WORK/cpu1; awk '{print \$2}' /proc/\$BPID/schedstat > \$WORK/rq1
$perf_off
EOF
    drained=$(sed -n 's/^changes|//p' "$WORK/drain_$r")
    drain_ms=$(sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' "$WORK/drain_$r")
    cpu_ms=$(( ($(cat "$WORK/cpu1") - $(cat "$WORK/cpu0")) * 1000 / CLK_TCK ))
    # Time the backend was runnable but waited for a CPU (other processes on the machine).
    rq_ms=$(( ($(cat "$WORK/rq1") - $(cat "$WORK/rq0")) / 1000000 ))
    expected=$((DRAIN_ROWS * 3))
    [ "$drained" = "$expected" ] || { log "drain wrote $drained buffer rows, expected $expected"; exit 1; }
    # The same rows written by a plain INSERT ... SELECT into a table shaped like the buffer
    # (read from a staging copy of this round's rows).
    q coordinator "DROP TABLE IF EXISTS stage" \
        "CREATE TABLE stage AS SELECT * FROM $BUFFER WHERE __pgt_xid = (SELECT max(__pgt_xid) FROM $BUFFER)" \
        "VACUUM ANALYZE stage" >/dev/null
    ins=$(for _ in 1 2 3; do
        q coordinator "TRUNCATE local_copy" "CHECKPOINT" >/dev/null
        ms coordinator "INSERT INTO local_copy SELECT * FROM stage"
    done | median)
    copied=$(q coordinator "SELECT count(*) FROM local_copy")
    [ "$copied" = "$drained" ] || { log "local copy has $copied rows, the drain wrote $drained"; exit 1; }
    echo "$drained $drain_ms $cpu_ms $peek_total $msgs $ins $rq_ms" >>"$WORK/drain_results"
    log "  drained $drained rows in $drain_ms ms (backend CPU $cpu_ms ms, waiting for a CPU $rq_ms ms); peek $peek_total ms for $msgs messages; local insert $ins ms"
done
# Medians over the rounds.
d_rows=$(awk '{print $1}' "$WORK/drain_results" | median)
d_ms=$(awk '{print $2}' "$WORK/drain_results" | median)
d_cpu=$(awk '{print $3}' "$WORK/drain_results" | median)
p_ms=$(awk '{print $4}' "$WORK/drain_results" | median)
p_msgs=$(awk '{print $5}' "$WORK/drain_results" | median)
i_ms=$(awk '{print $6}' "$WORK/drain_results" | median)
d_rq=$(awk '{print $7}' "$WORK/drain_results" | median)
rate() { awk -v n="$1" -v t="$2" 'BEGIN {printf "%.0f", n / (t / 1000)}'; }
d_rate=$(rate "$d_rows" "$d_ms")
p_rate=$(rate "$d_rows" "$p_ms")
i_rate=$(rate "$d_rows" "$i_ms")
rounds_note="median of $DRAIN_ROUNDS"
row "slot drain, $d_rows buffer rows ($p_msgs WAL messages, 2 workers; $rounds_note)" \
    "$d_rate rows/s ($(printf '%.0f' "$d_ms") ms)" "raw decode: peek on both workers" \
    "$p_rate rows/s ($(printf '%.0f' "$p_ms") ms)" \
    "$(awk -v a="$d_ms" -v b="$p_ms" 'BEGIN {printf "%.2fx the time", a / b}')" ">= 200k rows/s" \
    "$(awk -v r="$d_rate" 'BEGIN {print (r >= 200000) ? "PASS" : "MISS"}')"
row "slot drain (same)" "$d_rate rows/s" "INSERT ... SELECT of the same rows into a buffer-shaped local table" \
    "$i_rate rows/s ($(printf '%.0f' "$i_ms") ms)" \
    "$(awk -v a="$d_ms" -v b="$i_ms" 'BEGIN {printf "%.2fx the time", a / b}')" "(context)" "-"
row "  coordinator backend CPU during the drain" "$d_cpu ms" "drain wall time" "$(printf '%.0f' "$d_ms") ms" \
    "$(awk -v a="$d_cpu" -v b="$d_ms" 'BEGIN {printf "%.0f%%", 100 * a / b}')" "(context)" "-"
row "  coordinator backend runnable, waiting for a CPU (schedstat)" "$d_rq ms" "drain wall time" "$(printf '%.0f' "$d_ms") ms" \
    "$(awk -v a="$d_rq" -v b="$d_ms" 'BEGIN {printf "%.0f%%", 100 * a / b}')" "(context)" "-"

if [ "$PERF" = 1 ] && [ -s "$WORK/perf.data" ]; then
    perf report -i "$WORK/perf.data" --stdio --children -g none --percentage relative --sort sym 2>/dev/null |
        grep '%' | awk '{ $2 = ""; print }' | cut -c1-140 |
        grep -E 'poll_worker_slots|drain_slot|wait_for|PQgetResult|pqParseInput|pqReadData|pgoutput|RowBatch|pg_plan_query|array_unnest_support|array_in|InputFunctionCall|numeric_in|tuplestore_putvalues|heap_insert|ExecInsertIndexTuples|ExecutePlan|standard_ExecutorRun|XLogInsert' |
        head -25 >"$WORK/perf.txt" || true
fi

# ---- 2. refresh after 1,000 changes ---------------------------------------------------------
log "refreshing agg (applies the drained rows), creating the materialized view"
q coordinator "CALL pgtrickle.refresh_stream_table('agg')"
check_equal agg "$AGG_Q" "customer_id, n, qty"
q coordinator "CREATE MATERIALIZED VIEW agg_mv AS $AGG_Q" >/dev/null
for n in coordinator worker1 worker2; do q "$n" "VACUUM ANALYZE" "CHECKPOINT"; done
UPD=$((CHANGES * 2 / 5)); CUST=$((CHANGES / 5)); INS=$((CHANGES / 5)); DEL=$((CHANGES - UPD - CUST - INS))
changes() { # cycle number: one transaction per kind, ids distinct and live
    local c=$1 ids
    ids=$(shuf -i "1-$((BASE_ROWS - DEL * (CYCLES + 3)))" -n $((UPD + CUST)))
    q coordinator \
        "UPDATE orders SET qty = qty + 1 WHERE id IN ($(head -n "$UPD" <<<"$ids" | paste -sd,))" \
        "UPDATE orders SET customer_id = (customer_id + 1) % $CUSTOMERS WHERE id IN ($(tail -n "$CUST" <<<"$ids" | paste -sd,))" \
        "INSERT INTO orders SELECT g, g % $CUSTOMERS, 3, 9.99, 'new' FROM generate_series($((next_id + 1)), $((next_id + INS))) g" \
        "DELETE FROM orders WHERE id > $((BASE_ROWS - DEL * c)) AND id <= $((BASE_ROWS - DEL * (c - 1)))" >/dev/null
    next_id=$((next_id + INS))
}
for c in $(seq 1 "$CYCLES"); do
    changes "$c"
    st=$(msw coordinator "CALL pgtrickle.refresh_stream_table('agg')")
    m=$(q coordinator "SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'agg'")
    [ "$m" = differential ] || { log "refresh of agg ran as '$m', not differential"; exit 1; }
    check_equal agg "$AGG_Q" "customer_id, n, qty"
    mv=$(msw coordinator "REFRESH MATERIALIZED VIEW agg_mv")
    echo "$st $mv" >>"$WORK/refresh"
    log "  cycle $c: refresh_stream_table $st ms, REFRESH MATERIALIZED VIEW $mv ms"
done
# Where a refresh's time goes: the same cycle with the drain timed first.
for c in $(seq $((CYCLES + 1)) $((CYCLES + 2))); do
    changes "$c"
    pk=0
    for w in worker1 worker2; do
        pk=$(awk -v a="$pk" -v b="$(ms "$w" "$PEEK")" 'BEGIN {print a + b}')
    done
    dr=$(msw coordinator "SELECT sum(changes) FROM pgtrickle.poll_worker_slots()")
    ap=$(msw coordinator "CALL pgtrickle.refresh_stream_table('agg')")
    check_equal agg "$AGG_Q" "customer_id, n, qty"
    echo "$dr $ap $pk" >>"$WORK/split"
    log "  split cycle $c: peek on both workers $pk ms; poll_worker_slots $dr ms, then refresh_stream_table $ap ms"
done
zero=$(for _ in 1 2 3 4 5 6 7; do msw coordinator "CALL pgtrickle.refresh_stream_table('agg')"; done | median)
zero_cold=$(for _ in 1 2 3 4 5 6 7; do ms coordinator "CALL pgtrickle.refresh_stream_table('agg')"; done | median)
sel1=$(for _ in 1 2 3 4 5 6 7; do ms coordinator "SELECT 1"; done | median)
st_med=$(awk '{print $1}' "$WORK/refresh" | median)
mv_med=$(awk '{print $2}' "$WORK/refresh" | median)
dr_med=$(awk '{print $1}' "$WORK/split" | median)
ap_med=$(awk '{print $2}' "$WORK/split" | median)
pk_med=$(awk '{print $3}' "$WORK/split" | median)
ROWS_NOW=$(q coordinator "SELECT count(*) FROM orders")
row "agg over distributed orders ($ROWS_NOW rows): refresh after $CHANGES changes (median of $CYCLES)" \
    "$st_med ms" "REFRESH MATERIALIZED VIEW" "$mv_med ms" \
    "$(awk -v a="$st_med" -v b="$mv_med" 'BEGIN {printf "%.1fx faster", b / a}')" "(context)" "-"
row "  split: poll_worker_slots, then refresh_stream_table (median of 2)" "$dr_med ms" "then refresh_stream_table" "$ap_med ms" "-" "(context)" "-"
row "  raw decode of those changes: peek on both workers" "$pk_med ms" "poll_worker_slots" "$dr_med ms" \
    "$(awk -v a="$pk_med" -v b="$dr_med" 'BEGIN {printf "%.0f%% of the drain", 100 * a / b}')" "(context)" "-"
row "agg: zero-change refresh (median of 7)" "$zero ms" "SELECT 1 round trip" "$sel1 ms" \
    "$(awk -v a="$zero" -v b="$sel1" 'BEGIN {printf "%.0fx", a / b}')" "(context)" "-"
row "agg: zero-change refresh, first in a new session (median of 7)" "$zero_cold ms" "same, connections open" "$zero ms" \
    "$(awk -v a="$zero_cold" -v b="$zero" 'BEGIN {printf "+%.1f ms", a - b}')" "(context)" "-"

# ---- 3. write overhead -----------------------------------------------------------------------
log "write overhead: dropping agg (and its slots), creating the pgbench tables"
q coordinator "CALL pgtrickle.drop_stream_table('agg')"
[ "$(q coordinator "SELECT count(*) FROM pgtrickle.pgt_worker_slots")" = 0 ] || { log "slots left after dropping agg"; exit 1; }
PB_Q="SELECT customer_id, count(*) AS n, sum(qty) AS qty FROM pb GROUP BY customer_id"
LT_Q="SELECT customer_id, count(*) AS n, sum(qty) AS qty FROM lt_cap GROUP BY customer_id"
scheduler on
q coordinator \
    "DROP MATERIALIZED VIEW agg_mv" \
    "CREATE TABLE pb (id bigint PRIMARY KEY, customer_id int, qty int, amount numeric(12,2), note text)" \
    "SELECT create_distributed_table('pb', 'id')" \
    "INSERT INTO pb SELECT g, g % 1000, 0, g * 1.5, 'note ' || g FROM generate_series(1, $PB_ROWS) g" \
    "CREATE TABLE lt_plain (id bigint PRIMARY KEY, customer_id int, qty int, amount numeric(12,2), note text)" \
    "CREATE TABLE lt_cap (id bigint PRIMARY KEY, customer_id int, qty int, amount numeric(12,2), note text)" \
    "INSERT INTO lt_plain SELECT g, g % 1000, 0, g * 1.5, 'note ' || g FROM generate_series(1, $PB_ROWS) g" \
    "INSERT INTO lt_cap SELECT * FROM lt_plain" >/dev/null
q coordinator "CALL pgtrickle.create_stream_table('lt_agg', '$LT_Q')" 2>>"$WORK/notes"
[ "$(q coordinator "SELECT cdc_mode FROM pgtrickle.pgt_change_tracking WHERE source_relid = 'lt_cap'::regclass")" = trigger ] ||
    log "note: lt_cap is not captured by triggers: $(q coordinator "SELECT cdc_mode FROM pgtrickle.pgt_change_tracking WHERE source_relid = 'lt_cap'::regclass")"

pb_on() {
    q coordinator "ALTER TABLE pb REPLICA IDENTITY FULL" >/dev/null
    q coordinator "CALL pgtrickle.create_stream_table('pb_agg', '$PB_Q', refresh_mode => 'differential')"
}
pb_off() {
    q coordinator "CALL pgtrickle.refresh_stream_table('pb_agg')"
    check_equal pb_agg "$PB_Q" "customer_id, n, qty"
    # With the scheduler running, a drop races its poller: the slot it is peeking cannot be
    # dropped (WARNING ... is active for PID ...), and the poller can recreate a slot the
    # drop has just removed ("slot ... is missing on node ...; recreating it"), leaving a
    # slot no stream table reads. So the scheduler is off while the stream table goes.
    scheduler off
    q coordinator "CALL pgtrickle.drop_stream_table('pb_agg')" 2>>"$WORK/notes"
    # A slot the drop could not remove (see notes) keeps WAL and would stay for (a).
    q coordinator "SELECT count(*) FROM pgtrickle.drop_orphan_worker_slots()" >/dev/null
    local w left
    for w in worker1 worker2; do
        left=$(q "$w" "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'pgtrickle%'")
        [ "$left" = 0 ] || { log "$w still has $left pgtrickle slots after drop_orphan_worker_slots()"; exit 1; }
    done
    scheduler on
    q coordinator "ALTER TABLE pb REPLICA IDENTITY DEFAULT" >/dev/null
}
# worker-side CPU of the drains: backends the coordinator's scheduler opened (application
# pg_trickle) on both workers, and the scheduler itself.
drain_cpu_ticks() {
    local total=0 pid w found=0
    for w in worker1 worker2; do
        for pid in $(q "$w" "SELECT pid FROM pg_stat_activity WHERE application_name = 'pg_trickle'"); do
            total=$((total + $(cpu_ticks "$pid" 2>/dev/null || echo 0)))
            found=$((found + 1))
        done
    done
    log "    ($found pg_trickle backends on the workers)"
    pid=$(q coordinator "SELECT pgtrickle.scheduler_pid()")
    [ -n "$pid" ] && total=$((total + $(cpu_ticks "$pid" 2>/dev/null || echo 0)))
    echo "$total"
}
cat >"$WORK/pgbench.sql" <<EOF
\set id random(1, $PB_ROWS)
UPDATE :tbl SET qty = qty + 1 WHERE id = :id;
EOF
# pgbench_run TABLE: TPS of a -T PB_SECONDS run.
pgbench_run() {
    local n
    for n in coordinator worker1 worker2; do q "$n" "VACUUM" "CHECKPOINT" >/dev/null; done
    "$(pg_config --bindir)/pgbench" -h 127.0.0.1 -p "$COORD_PORT" -U postgres -n -T "$PB_SECONDS" \
        -c "$CLIENTS" -j "$(nproc)" -D tbl="$1" -f "$WORK/pgbench.sql" postgres 2>&1 |
        sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}
for r in $(seq 1 "$PB_ROUNDS"); do
    order="a b"
    [ $((r % 2)) = 0 ] && order="b a"
    for k in $order; do
        if [ "$k" = a ]; then
            tps=$(pgbench_run pb)
            echo "$tps" >>"$WORK/tps_a"
            log "  round $r (a) distributed, no capture: $tps tps"
        else
            pb_on
            sleep 2  # the scheduler has seen the new source
            c0=$(drain_cpu_ticks)
            tps=$(pgbench_run pb)
            c1=$(drain_cpu_ticks)
            echo "$tps $(( (c1 - c0) * 1000 / CLK_TCK ))" >>"$WORK/tps_b"
            log "  round $r (b) distributed, WAL capture: $tps tps (scheduler + worker drain backends $(( (c1 - c0) * 1000 / CLK_TCK )) ms CPU)"
            pb_off
        fi
    done
    order="plain cap"
    [ $((r % 2)) = 0 ] && order="cap plain"
    for k in $order; do
        tps=$(pgbench_run "lt_$k")
        echo "$tps" >>"$WORK/tps_$k"
        log "  round $r (c) local lt_$k: $tps tps"
        [ "$k" = cap ] && q coordinator "CALL pgtrickle.refresh_stream_table('lt_agg')"
    done
done
check_equal lt_agg "$LT_Q" "customer_id, n, qty"
ta=$(median <"$WORK/tps_a")
tb=$(awk '{print $1}' "$WORK/tps_b" | median)
cb=$(awk '{print $2}' "$WORK/tps_b" | median)
tp=$(median <"$WORK/tps_plain")
tc=$(median <"$WORK/tps_cap")
pct() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f%%", 100 * a / b}'; }
pb_note="-c $CLIENTS -T $PB_SECONDS, median of $PB_ROUNDS"
row "pgbench 1-row UPDATE, distributed, RI FULL + slots, scheduler draining ($pb_note)" \
    "$(printf '%.0f' "$tb") tps" "same table, default RI, no slot" "$(printf '%.0f' "$ta") tps" \
    "$(pct "$tb" "$ta") of plain" ">= 95%" \
    "$(awk -v a="$tb" -v b="$ta" 'BEGIN {print (a >= 0.95 * b) ? "PASS" : "MISS"}')"
row "  CPU of the scheduler + its drain backends on the workers during (b)" \
    "$cb ms" "run length" "$((PB_SECONDS * 1000)) ms" \
    "$(awk -v a="$cb" -v b="$PB_SECONDS" 'BEGIN {printf "%.1f%% of a core", a / b / 10}')" "(context)" "-"
row "pgbench 1-row UPDATE, local table, trigger capture ($pb_note)" \
    "$(printf '%.0f' "$tc") tps" "plain local table" "$(printf '%.0f' "$tp") tps" \
    "$(pct "$tc" "$tp") of plain" "~80% (context)" "-"

# ---- report --------------------------------------------------------------------------------
T_END=$(date +%s)
echo "pg_trickle Citus benchmark: PostgreSQL $PG_VERSION, Citus $CITUS_VERSION, pg_trickle $PGT_VERSION"
echo "coordinator + 2 workers on 127.0.0.1 ($(nproc) cores), $((T_END - T_START)) s, load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
print_report
if [ -s "$WORK/notes" ]; then
    echo
    echo "messages from the server during the run (sorted, counted):"
    sed -E 's/pgtrickle_[0-9a-f]{16}/pgtrickle_<key>/g; s/PID [0-9]+/PID <pid>/g; s/pgt_query_[0-9]+/pgt_query_<n>/g' "$WORK/notes" | sort | uniq -c
fi
if [ -s "$WORK/perf.txt" ]; then
    echo
    echo "perf, coordinator backend during drain round 1 (inclusive % of its samples):"
    cat "$WORK/perf.txt"
fi
