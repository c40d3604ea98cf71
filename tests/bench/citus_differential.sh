#!/usr/bin/env bash
# Differential refresh over Citus sources, in the engine (docs/benchmarks.md, "Differential
# over Citus"): a distributed fact table joined to a reference dimension, maintained through
# state copies (docs/architecture.md, "Citus sources: deltas at their buffers' frontier"),
# against re-running the query in the same run. Starts its own Citus cluster
# (tests/e2e/cluster.sh on ports 57846-57848). For each size N (fact rows):
#   fact (id bigint, dim_id int, amount numeric(12,2), note text), distributed by id, N rows;
#   dim (id int, region text), a reference table of 1,000 rows;
#   Q = SELECT d.region, count(*) AS n, sum(f.amount) AS total FROM fact f JOIN dim d
#       ON d.id = f.dim_id GROUP BY d.region, a stream table created with
#       refresh_mode => 'differential' (scheduler off).
# It measures, on the coordinator:
#   create  create_stream_table (the first full refresh fills the copies);
#   rerun   Q through Citus (what a full refresh reads), best of 3;
#   drain   pgtrickle.poll_worker_slots('fact') after 1,000 changes of fact (500 updates),
#           which writes the buffer and keeps fact's copy (median of 3 rounds);
#   refresh the refresh that follows (the delta ΔF ⋈ dim; median of 3 rounds);
#   +dim    drain and refresh after the same changes plus 5 dimension rows renamed (adds
#           fact ⋈ Δdim, read from fact's copy by dim_id: 5/1,000 of fact);
# every refresh checked equal to Q. Then, at the last size, the writers' throughput (pgbench,
# 2 clients, single-row UPDATEs of fact, --seconds each) with the scheduler refreshing the
# stream table every second, against the scheduler off; the stream table must then converge.
#
#   tests/bench/citus_differential.sh [--sizes "1000000 4000000"] [--seconds 20]
#
# Exit status: 0 when it ran, 2 when a stream table differed from Q, 1 on another failure,
# 77 when Citus is not available.
set -euo pipefail
# shellcheck source=tests/bench/own_cluster.bash
. "$(dirname "$0")/own_cluster.bash"
own_cluster citus_differential 57846 /tmp/pgtrickle-bench-citusdiff

SIZES="1000000 4000000"
SECONDS_EACH=20
while [ $# -gt 0 ]; do
    case "$1" in
        --sizes) SIZES=$2; shift 2 ;;
        --seconds) SECONDS_EACH=$2; shift 2 ;;
        -h | --help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "citus_differential: unknown option $1" >&2; exit 1 ;;
    esac
done

median3() { printf '%s\n%s\n%s\n' "$1" "$2" "$3" | sort -g | sed -n 2p; }
min3() { printf '%s\n%s\n%s\n' "$1" "$2" "$3" | sort -g | head -1; }

Q="SELECT d.region, count(*) AS n, sum(f.amount) AS total FROM fact f JOIN dim d ON d.id = f.dim_id GROUP BY d.region"
differs() {
    on "SELECT count(*) FROM ((SELECT region, n, total FROM st EXCEPT ALL $Q) UNION ALL ($Q EXCEPT ALL SELECT region, n, total FROM st)) d"
}
check() {
    local d
    d=$(differs)
    if [ "$d" != 0 ]; then
        echo "citus_differential: the stream table differs from its query by $d rows ($1)" >&2
        exit 2
    fi
}

own_cluster_up
# The stream table on the coordinator, as measured before storage placement existed
# (tests/bench/citus_placement.sh measures reference and distributed storage).
on "ALTER SYSTEM SET pg_trickle.citus_st_placement = 'local'" >/dev/null
on "SELECT pg_reload_conf()" >/dev/null

declare -A rerun drain refresh drain_dim refresh_dim create
base=""
last=""
printf '%10s %10s %10s %9s %9s %8s %10s %14s %11s %9s %12s\n' rows fact_kB copy_kB create_ms rerun_ms \
    drain_ms refresh_ms "(d+r)/rerun" refresh/base +dim_d_ms +dim_r_ms
for n in $SIZES; do
    [ -n "$base" ] || base=$n
    last=$n
    log "size $n: tables"
    on "CALL pgtrickle.drop_stream_table('st')" >/dev/null 2>&1 || true
    on "DROP TABLE IF EXISTS fact, dim CASCADE" >/dev/null
    on "CREATE TABLE dim (id int PRIMARY KEY, region text NOT NULL)"
    on "SELECT create_reference_table('dim')" >/dev/null
    on "ALTER TABLE dim REPLICA IDENTITY FULL"
    on "INSERT INTO dim SELECT g, 'region ' || (g % 50) FROM generate_series(1, 1000) g"
    on "CREATE TABLE fact (id bigint PRIMARY KEY, dim_id int NOT NULL, amount numeric(12,2) NOT NULL, note text)"
    on "SELECT create_distributed_table('fact', 'id')" >/dev/null
    on "ALTER TABLE fact REPLICA IDENTITY FULL"
    on "INSERT INTO fact SELECT g, 1 + g % 1000, (g % 10007) / 100.0, repeat('x', 40) FROM generate_series(1, $n) g"
    on "VACUUM ANALYZE fact" >/dev/null
    on "VACUUM ANALYZE dim" >/dev/null
    log "size $n: create"
    create[$n]=$(ms "CALL pgtrickle.create_stream_table('st', \$q\$$Q\$q\$, refresh_mode => 'differential')")
    check "after create"
    key=$(on "SELECT source_stable_name FROM pgtrickle.pgt_change_tracking WHERE source_relid = 'fact'::regclass")
    on "VACUUM ANALYZE pgtrickle_changes.state_$key" >/dev/null
    fact_kb=$(on "SELECT citus_total_relation_size('fact') / 1024")
    copy_kb=$(on "SELECT pg_total_relation_size('pgtrickle_changes.state_$key') / 1024")
    log "size $n: rerun"
    rerun[$n]=$(min3 "$(ms "PERFORM count(*) FROM ($Q) q")" "$(ms "PERFORM count(*) FROM ($Q) q")" \
        "$(ms "PERFORM count(*) FROM ($Q) q")")
    d=(); r=(); dd=(); rd=()
    for round in 1 2 3; do
        log "size $n: round $round"
        on "UPDATE fact SET amount = amount + 1, dim_id = 1 + (dim_id + 7) % 1000 WHERE id % ($n / 500) = $round" >/dev/null
        d+=("$(ms "PERFORM sum(changes) FROM pgtrickle.poll_worker_slots('fact')")")
        r+=("$(ms "CALL pgtrickle.refresh_stream_table('st')")")
        check "round $round"
        on "UPDATE fact SET amount = amount + 1 WHERE id % ($n / 500) = $((round + 3))" >/dev/null
        on "UPDATE dim SET region = 'renamed ' || id || ' $round' WHERE id % 200 = $round" >/dev/null
        dd+=("$(ms "PERFORM sum(changes) FROM pgtrickle.poll_worker_slots()")")
        rd+=("$(ms "CALL pgtrickle.refresh_stream_table('st')")")
        check "round $round with dimension changes"
    done
    mode=$(on "SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'st'")
    [ "$mode" = differential ] || { echo "citus_differential: refreshed $mode" >&2; exit 1; }
    drain[$n]=$(median3 "${d[@]}")
    refresh[$n]=$(median3 "${r[@]}")
    drain_dim[$n]=$(median3 "${dd[@]}")
    refresh_dim[$n]=$(median3 "${rd[@]}")
    ratio=$(awk -v a="${drain[$n]}" -v d="${refresh[$n]}" -v r="${rerun[$n]}" 'BEGIN { printf "%.3f", (a + d) / r }')
    growth=$(awk -v d="${refresh[$n]}" -v b="${refresh[$base]}" 'BEGIN { printf "%.2fx", d / b }')
    printf '%10s %10s %10s %9s %9s %8s %10s %14s %11s %9s %12s\n' "$n" "$fact_kb" "$copy_kb" "${create[$n]}" \
        "${rerun[$n]}" "${drain[$n]}" "${refresh[$n]}" "$ratio" "$growth" "${drain_dim[$n]}" "${refresh_dim[$n]}"
done

# Writers' throughput at the last size: the scheduler off, then refreshing every second.
PGBENCH="${PG_BINDIR:-/usr/lib/postgresql/15/bin}/pgbench"
script=$(mktemp)
trap 'rm -f "$script"; bash "$CLUSTER" stop >/dev/null 2>&1 || true' EXIT
printf '\\set id random(1, %s)\nUPDATE fact SET amount = amount + 0.01 WHERE id = :id;\n' "$last" >"$script"
port=$(bash "$CLUSTER" port coordinator)
tps() {
    "$PGBENCH" -n -h 127.0.0.1 -p "$port" -U postgres -c 2 -j 2 -T "$SECONDS_EACH" -f "$script" postgres 2>/dev/null |
        sed -n 's/^tps = \([0-9.]*\).*/\1/p'
}
on "CALL pgtrickle.alter_stream_table('st', schedule => '1s')" >/dev/null
log "writers: scheduler off"
on "SELECT sum(changes) FROM pgtrickle.poll_worker_slots()" >/dev/null
off=$(tps)
on "SELECT sum(changes) FROM pgtrickle.poll_worker_slots()" >/dev/null
on "CALL pgtrickle.refresh_stream_table('st')"
log "writers: scheduler refreshing every second"
on "ALTER SYSTEM SET pg_trickle.enabled = on" >/dev/null
on "SELECT pg_reload_conf()" >/dev/null
sleep 2
before=$(on "SELECT count(*) FROM pgtrickle.pgt_refresh_history WHERE mode = 'differential'")
with=$(tps)
after=$(on "SELECT count(*) FROM pgtrickle.pgt_refresh_history WHERE mode = 'differential'")
# The scheduler catches up once the writers stop.
for _ in $(seq 1 120); do
    [ "$(differs)" = 0 ] && break
    sleep 0.5
done
check "after the writers stopped"
on "ALTER SYSTEM SET pg_trickle.enabled = off" >/dev/null
on "SELECT pg_reload_conf()" >/dev/null
echo
printf '%10s %14s %22s %8s %22s\n' rows tps_no_refresh tps_refreshing_every_1s ratio differential_refreshes
printf '%10s %14s %22s %8s %22s\n' "$last" "$off" "$with" \
    "$(awk -v a="$with" -v b="$off" 'BEGIN { printf "%.2f", a / b }')" "$((after - before))"
