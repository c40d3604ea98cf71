#!/usr/bin/env bash
# State copy cost (docs/benchmarks.md, "State copies"; the design in docs/architecture.md):
# what keeping a coordinator-local copy of a distributed source costs, against re-running the
# query over the cluster. Starts its own Citus cluster (tests/e2e/cluster.sh on ports
# 57846-57848). For each size N (fact rows; a baseline size first):
#   fact (id bigint, dim_id int, amount numeric(12,2), note text), distributed by id, N rows;
#   dim (id int, region text), a reference table of 1,000 rows;
#   Q = SELECT d.region, count(*), sum(f.amount) FROM fact f JOIN dim d ON d.id = f.dim_id
#       GROUP BY d.region.
# It measures, in one session on the coordinator:
#   rerun   Q through Citus (what a full refresh reads), best of 3;
#   copy    the state copy of fact: the columns Q uses and the row's binary image id, one
#           row per source row, indexed on the image (to delete one copy of a row) and on
#           the join column with the other columns included (what a delta term reads by
#           key, from the index alone); its size against fact's size on the workers;
#   apply   1,000 changes of fact (500 updates: a deleted and an inserted row each) applied to
#           the copy, as a drain would: the new rows inserted, one copy of each deleted row
#           removed;
#   delta   Q's delta from those changes over the copies, as a differential refresh would
#           compute it (dF join dim: dim has no changes, so no term reads fact's copy);
#   +dim    the same delta when 5 dimension rows changed too (dF join dim + fact join dD - dF
#           join dD): fact join dD reads the copy's rows of the 5 changed keys, which a
#           dimension change really touches (5/1,000 of fact), from its covering index.
# Prints the times, apply+delta against rerun, and delta against the baseline size: it must
# stay flat (it grows with the changes, not the table); +dim grows with the fact rows of the
# changed keys.
#
#   tests/bench/state_copy.sh [--sizes "1000000 4000000"]
#
# Exit status: 0 when it ran, 1 on a failure, 77 when Citus is not available.
set -euo pipefail
# shellcheck source=tests/bench/own_cluster.bash
. "$(dirname "$0")/own_cluster.bash"
own_cluster state_copy 57846 /tmp/pgtrickle-bench-state

SIZES="1000000 4000000"
while [ $# -gt 0 ]; do
    case "$1" in
        --sizes) SIZES=$2; shift 2 ;;
        -h | --help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "state_copy: unknown option $1" >&2; exit 1 ;;
    esac
done

# ms SQL: the server-side time of SQL in milliseconds (clock_timestamp around it, in one
# statement so that no round trip counts).
ms() {
    on "DO \$b\$ DECLARE t0 timestamptz := clock_timestamp(); BEGIN $1; RAISE NOTICE 'ms=%', round(extract(epoch FROM clock_timestamp() - t0) * 1000, 1); END \$b\$" 2>&1 |
        sed -n 's/.*ms=//p'
}
best_of_3() {
    local a b c
    a=$(ms "$1"); b=$(ms "$1"); c=$(ms "$1")
    printf '%s\n%s\n%s\n' "$a" "$b" "$c" | sort -g | head -1
}

own_cluster_up

Q="SELECT d.region, count(*), sum(f.amount) FROM fact f JOIN dim d ON d.id = f.dim_id GROUP BY d.region"
# delta_sql [DD]: Q's delta from fact's changes (dfact) and, given DD, dim's, over the copies.
# Only sources with changes produce terms (as in the engine).
delta_sql() {
    local terms="SELECT d.region, sum(f.w) AS n, sum(f.w * f.amount) AS s FROM dfact f JOIN dim_state d ON d.id = f.dim_id GROUP BY 1"
    if [ -n "${1:-}" ]; then
        terms="$terms
  UNION ALL SELECT d.region, sum(d.w), sum(d.w * f.amount) FROM fact_state f JOIN $1 d ON d.id = f.dim_id GROUP BY 1
  UNION ALL SELECT d.region, -sum(f.w * d.w), -sum(f.w * d.w * f.amount) FROM dfact f JOIN $1 d ON d.id = f.dim_id GROUP BY 1"
    fi
    echo "SELECT region, sum(n), sum(s) FROM ($terms) t GROUP BY region"
}
# apply_sql T DELTA COLS: the changes in DELTA (COLS and w = +1/-1) applied to copy T.
apply_sql() {
    local t=$1 d=$2 cols=$3
    echo "INSERT INTO $t ($cols, __pgt_image) SELECT $cols, pgtrickle.row_image_id($cols) FROM $d WHERE w > 0;
      DELETE FROM $t c USING (SELECT x.ctid AS tid FROM (SELECT c.ctid, row_number() OVER (PARTITION BY c.__pgt_image) AS rn, k.n
        FROM (SELECT pgtrickle.row_image_id($cols) AS image, count(*) AS n FROM $d WHERE w < 0 GROUP BY 1) k
        JOIN $t c ON c.__pgt_image = k.image) x WHERE x.rn <= x.n) del WHERE c.ctid = del.tid"
}
APPLY=$(apply_sql fact_state dfact 'dim_id, amount')
# The same changes the other way round: the copy as it was.
UNDO=$(apply_sql fact_state "(SELECT dim_id, amount, -w AS w FROM dfact) u" 'dim_id, amount')

declare -A rerun apply delta with_dim
base=""
printf '%10s %10s %10s %9s %9s %9s %12s %11s %12s\n' rows fact_kB copy_kB rerun_ms apply_ms delta_ms "(a+d)/rerun" delta/base +dim_ms
for n in $SIZES; do
    [ -n "$base" ] || base=$n
    log "size $n: tables and copies"
    on "DROP TABLE IF EXISTS fact, dim, fact_state, dim_state, dfact, ddim CASCADE" >/dev/null 2>&1 || true
    on "CREATE TABLE dim (id int PRIMARY KEY, region text NOT NULL)"
    on "SELECT create_reference_table('dim')" >/dev/null
    on "INSERT INTO dim SELECT g, 'region ' || (g % 50) FROM generate_series(1, 1000) g"
    on "CREATE TABLE fact (id bigint PRIMARY KEY, dim_id int NOT NULL, amount numeric(12,2) NOT NULL, note text)"
    on "SELECT create_distributed_table('fact', 'id')" >/dev/null
    on "INSERT INTO fact SELECT g, 1 + g % 1000, (g % 10007) / 100.0, repeat('x', 40) FROM generate_series(1, $n) g"
    on "VACUUM ANALYZE fact" >/dev/null
    on "VACUUM ANALYZE dim" >/dev/null
    on "CREATE TABLE fact_state (dim_id int, amount numeric(12,2), __pgt_image bigint NOT NULL)"
    on "INSERT INTO fact_state SELECT dim_id, amount, pgtrickle.row_image_id(dim_id, amount) FROM fact"
    on "CREATE INDEX ON fact_state (__pgt_image)"
    on "CREATE INDEX ON fact_state (dim_id) INCLUDE (amount)"
    on "CREATE TABLE dim_state (id int, region text, __pgt_image bigint NOT NULL)"
    on "INSERT INTO dim_state SELECT id, region, pgtrickle.row_image_id(id, region) FROM dim"
    on "CREATE INDEX ON dim_state (__pgt_image)"
    on "CREATE INDEX ON dim_state (id) INCLUDE (region)"
    on "VACUUM ANALYZE fact_state" >/dev/null
    on "VACUUM ANALYZE dim_state" >/dev/null
    fact_kb=$(on "SELECT citus_total_relation_size('fact') / 1024")
    copy_kb=$(on "SELECT pg_total_relation_size('fact_state') / 1024")
    # 1,000 changes of fact (500 rows updated: old and new images); 10 of dim (5 rows).
    on "CREATE TABLE dfact AS SELECT dim_id, amount, -1 AS w FROM fact WHERE id % ($n / 500) = 0 LIMIT 500" >/dev/null
    on "INSERT INTO dfact SELECT 1 + (dim_id + 7) % 1000, amount + 1, 1 FROM dfact"
    on "CREATE TABLE ddim AS SELECT id, region, -1 AS w FROM dim WHERE id % 200 = 0" >/dev/null
    on "INSERT INTO ddim SELECT id, 'renamed ' || id, 1 FROM ddim"
    on "ANALYZE dfact" >/dev/null
    on "ANALYZE ddim" >/dev/null
    log "size $n: rerun, apply, delta"
    rerun[$n]=$(best_of_3 "PERFORM count(*) FROM ($Q) q")
    # Applied, measured, and undone (the same changes the other way round) before the delta.
    apply[$n]=$(ms "$APPLY")
    on "$UNDO" >/dev/null
    on "VACUUM ANALYZE fact_state" >/dev/null
    delta[$n]=$(best_of_3 "PERFORM count(*) FROM ($(delta_sql)) q")
    with_dim[$n]=$(best_of_3 "PERFORM count(*) FROM ($(delta_sql ddim)) q")
    ratio=$(awk -v a="${apply[$n]}" -v d="${delta[$n]}" -v r="${rerun[$n]}" 'BEGIN { printf "%.3f", (a + d) / r }')
    growth=$(awk -v d="${delta[$n]}" -v b="${delta[$base]}" 'BEGIN { printf "%.2fx", d / b }')
    printf '%10s %10s %10s %9s %9s %9s %12s %11s %12s\n' "$n" "$fact_kb" "$copy_kb" "${rerun[$n]}" \
        "${apply[$n]}" "${delta[$n]}" "$ratio" "$growth" "${with_dim[$n]}"
done
