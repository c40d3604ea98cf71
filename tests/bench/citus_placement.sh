#!/usr/bin/env bash
# Stream tables stored as Citus distributed and reference tables (docs/benchmarks.md,
# "Distributed stream-table storage"): the differential refresh after 1,000 changes against
# a full recompute of the same stream table, in the same run. Starts its own Citus cluster
# (tests/e2e/cluster.sh on ports 57846-57848). fact (id bigint, dim_id int, amount
# numeric(12,2)), distributed by id, N rows. Stream tables (refresh_mode 'differential'):
#   rows_dist  SELECT id, dim_id, amount FROM fact WHERE amount > 10 (about 0.9 N rows),
#              distributed by id (co-located with fact);
#   grp_dist   SELECT dim_id, count(*), sum(amount) FROM fact GROUP BY dim_id (10,000
#              groups), distributed by dim_id;
#   grp_ref    the same query as a reference table;
#   grp_local  the same query on the coordinator (the baseline placement).
# Per round: 1,000 changes of fact (500 updates), drained once (poll_worker_slots), then each
# stream table's differential refresh; after the rounds, forced full refreshes of each.
# Every refresh is checked against its query.
#
#   tests/bench/citus_placement.sh [--rows 1000000] [--rounds 3]
#
# Exit status: 0 when it ran, 2 when a stream table differed from its query, 1 on another
# failure, 77 when Citus is not available.
set -euo pipefail
# shellcheck source=tests/bench/own_cluster.bash
. "$(dirname "$0")/own_cluster.bash"
own_cluster citus_placement 57846 /tmp/pgtrickle-bench-placement

ROWS=1000000
ROUNDS=3
while [ $# -gt 0 ]; do
    case "$1" in
        --rows) ROWS=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "citus_placement: unknown option $1" >&2; exit 1 ;;
    esac
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

ROWS_Q="SELECT id, dim_id, amount FROM fact WHERE amount > 10"
GRP_Q="SELECT dim_id, count(*) AS n, sum(amount) AS total FROM fact GROUP BY dim_id"
check() {
    local st=$1 q=$2 cols=$3 d
    d=$(on "SELECT count(*) FROM ((SELECT $cols FROM $st EXCEPT ALL $q) UNION ALL ($q EXCEPT ALL SELECT $cols FROM $st)) d")
    [ "$d" = 0 ] || { echo "citus_placement: $st differs from its query by $d rows" >&2; exit 2; }
}
check_all() {
    check rows_dist "$ROWS_Q" "id, dim_id, amount"
    for st in grp_dist grp_ref grp_local; do
        check "$st" "$GRP_Q" "dim_id, n, total"
    done
}

own_cluster_up
log "loading $ROWS rows"
on "CREATE TABLE fact (id bigint PRIMARY KEY, dim_id int NOT NULL, amount numeric(12,2) NOT NULL)"
on "SELECT create_distributed_table('fact', 'id')" >/dev/null
on "ALTER TABLE fact REPLICA IDENTITY FULL"
on "INSERT INTO fact SELECT g, 1 + g % 10000, (g % 10007) / 100.0 FROM generate_series(1, $ROWS) g"
on "VACUUM ANALYZE fact" >/dev/null
log "creating the stream tables"
on "CALL pgtrickle.create_stream_table('rows_dist', \$q\$$ROWS_Q\$q\$, refresh_mode => 'differential', output_distribution_column => 'id')"
on "CALL pgtrickle.create_stream_table('grp_dist', \$q\$$GRP_Q\$q\$, refresh_mode => 'differential', output_distribution_column => 'dim_id')"
bash "$CLUSTER" psql coordinator -v ON_ERROR_STOP=1 -qAt -c "SET pg_trickle.citus_st_placement = 'auto'" \
    -c "SET pg_trickle.citus_reference_max_rows = 1000000000" \
    -c "CALL pgtrickle.create_stream_table('grp_ref', \$q\$$GRP_Q\$q\$, refresh_mode => 'differential')"
bash "$CLUSTER" psql coordinator -v ON_ERROR_STOP=1 -qAt -c "SET pg_trickle.citus_st_placement = 'local'" \
    -c "CALL pgtrickle.create_stream_table('grp_local', \$q\$$GRP_Q\$q\$, refresh_mode => 'differential')"
on "SELECT pgt_name || ' ' || st_placement || coalesce(' by ' || output_distribution_column, '') FROM pgtrickle.pgt_stream_tables ORDER BY pgt_id" >&2
check_all

declare -A diff full
for st in rows_dist grp_dist grp_ref grp_local; do diff[$st]=""; full[$st]=""; done
drains=""
for r in $(seq 1 "$ROUNDS"); do
    on "UPDATE fact SET amount = amount + 1, dim_id = 1 + (dim_id + 7) % 10000 WHERE id % ($ROWS / 500) = $r" >/dev/null
    drains+=" $(ms "PERFORM sum(changes) FROM pgtrickle.poll_worker_slots('fact')")"
    for st in rows_dist grp_dist grp_ref grp_local; do
        diff[$st]+=" $(ms "CALL pgtrickle.refresh_stream_table('$st')")"
        mode=$(on "SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables WHERE pgt_name = '$st'")
        [ "$mode" = differential ] || { echo "citus_placement: $st refreshed $mode" >&2; exit 1; }
    done
    check_all
    log "round $r: drain $(echo "$drains" | awk '{print $NF}') ms; refresh rows_dist $(echo "${diff[rows_dist]}" | awk '{print $NF}'), grp_dist $(echo "${diff[grp_dist]}" | awk '{print $NF}'), grp_ref $(echo "${diff[grp_ref]}" | awk '{print $NF}'), grp_local $(echo "${diff[grp_local]}" | awk '{print $NF}') ms"
done
for r in $(seq 1 "$ROUNDS"); do
    for st in rows_dist grp_dist grp_ref grp_local; do
        full[$st]+=" $(ms "CALL pgtrickle.refresh_stream_table('$st', true)")"
    done
done
check_all

echo "$ROWS fact rows; 1,000 changes (500 updates) per round; median of $ROUNDS; drain $(echo "$drains" | median) ms per round (shared)"
printf '%-10s %-22s %10s %14s %10s\n' table placement diff_ms full_ms diff/full
for st in rows_dist grp_dist grp_ref grp_local; do
    p=$(on "SELECT st_placement || coalesce(' by ' || output_distribution_column, '') FROM pgtrickle.pgt_stream_tables WHERE pgt_name = '$st'")
    d=$(echo "${diff[$st]}" | median)
    f=$(echo "${full[$st]}" | median)
    printf '%-10s %-22s %10s %14s %10s\n' "$st" "$p" "$d" "$f" "$(awk -v a="$d" -v b="$f" 'BEGIN { printf "%.3f", a / b }')"
done
