#!/usr/bin/env bash
# Numeric groups (docs/benchmarks.md, "Numeric sum/avg without rescans"): what a differential
# refresh of sum/avg over an unconstrained numeric costs when groups lose rows, with the
# per-group counts (finite sum, NaN and infinity counts, display-scale multiset) against the
# storage of a stream table created before them, whose groups are rescanned from the source
# (the baseline, in the same run), and against re-running the query. One throwaway server
# (tests/support/pgtmp.sh):
#   t (id bigint, k int, v numeric), N rows in 100 groups (index on k), values of display
#   scale 0 to 4, a few NaN; Q = SELECT k, sum(v), avg(v), count(*) FROM t GROUP BY k;
#   st_counts: Q, differential; st_rescan: Q, differential, its counts' hidden columns
#   dropped (as storage created before 0.35.0 has them).
# Each round deletes 500 random rows and inserts 500 (every group loses rows), then refreshes
# st_counts and st_rescan (each checked equal to Q) and times Q itself.
#
#   tests/bench/numeric_groups.sh [--rows 1000000] [--rounds 5]
#
# Prints the median times and the ratios. Exit status: 0 when it ran, 1 on a failure.
set -euo pipefail
ROWS=1000000
ROUNDS=5
while [ $# -gt 0 ]; do
    case "$1" in
        --rows) ROWS=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "numeric_groups: unknown option $1" >&2; exit 1 ;;
    esac
done
HERE=$(cd "$(dirname "$0")" && pwd)
eval "$("$HERE/../support/pgtmp.sh" start)"
trap '"$HERE/../support/pgtmp.sh" stop "$PGTMP_DIR" >/dev/null 2>&1 || true' EXIT
export PGHOST PGPORT PGUSER PGDATABASE

q() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }
log() { echo "numeric_groups: $*" >&2; }
# Milliseconds of one statement, measured by the server's clock around it.
timed() {
    psql -X -qAt -v ON_ERROR_STOP=1 -c "\\timing on" -c "$1" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

QUERY="SELECT k, sum(v) AS s, avg(v) AS a, count(*) AS n FROM t GROUP BY k"
log "loading $ROWS rows"
q "CREATE EXTENSION pg_trickle"
q "ALTER SYSTEM SET pg_trickle.enabled = off" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
q "SELECT setseed(0.42)" >/dev/null
q "CREATE TABLE t (id bigint PRIMARY KEY, k int NOT NULL, v numeric)"
q "INSERT INTO t SELECT g, g % 100, CASE WHEN g % 100000 = 7 THEN 'NaN' ELSE round((random() * 1000)::numeric, (g % 5)::int) END FROM generate_series(1, $ROWS) g"
q "CREATE INDEX ON t (k)"
q "VACUUM ANALYZE t"
for st in st_counts st_rescan; do
    q "CALL pgtrickle.create_stream_table(name => '$st', query => \$q\$$QUERY\$q\$, refresh_mode => 'differential')"
done
# The storage of a stream table created before the counts: the same hidden columns but those.
q "ALTER EVENT TRIGGER pgtrickle_sql_drop DISABLE"
for c in sum_2 nan_2 pinf_2 ninf_2 scales_2 nan_3 pinf_3 ninf_3 scales_3; do
    q "ALTER TABLE st_rescan DROP COLUMN \"__pgt_$c\""
done
q "ALTER EVENT TRIGGER pgtrickle_sql_drop ENABLE"

check() {
    local d
    d=$(q "SELECT count(*) FROM ((SELECT k, s, a, n FROM $1 EXCEPT ALL $QUERY) UNION ALL ($QUERY EXCEPT ALL SELECT k, s, a, n FROM $1)) d")
    [ "$d" = 0 ] || { echo "numeric_groups: $1 differs from its query by $d rows" >&2; exit 1; }
    # Text equality too: the display scale is part of the result.
    d=$(q "SELECT count(*) FROM ((SELECT ROW(k, s, a, n)::text FROM $1 EXCEPT ALL SELECT ROW(k, s, a, n)::text FROM ($QUERY) x) UNION ALL (SELECT ROW(k, s, a, n)::text FROM ($QUERY) x EXCEPT ALL SELECT ROW(k, s, a, n)::text FROM $1)) d")
    [ "$d" = 0 ] || { echo "numeric_groups: $1 shows $d rows differently from its query" >&2; exit 1; }
}

counts=() rescan=() rerun=()
next=$((ROWS + 1))
for r in $(seq 1 "$ROUNDS"); do
    q "DELETE FROM t WHERE id IN (SELECT id FROM t TABLESAMPLE SYSTEM (1) ORDER BY random() LIMIT 500)"
    q "INSERT INTO t SELECT g, g % 100, round((random() * 1000)::numeric, (g % 5)::int) FROM generate_series($next, $((next + 499))) g"
    next=$((next + 500))
    counts+=("$(timed "CALL pgtrickle.refresh_stream_table('st_counts')")")
    rescan+=("$(timed "CALL pgtrickle.refresh_stream_table('st_rescan')")")
    rerun+=("$(timed "SELECT count(*) FROM ($QUERY) x")")
    for st in st_counts st_rescan; do
        mode=$(q "SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables WHERE pgt_name = '$st'")
        [ "$mode" = differential ] || { echo "numeric_groups: $st refreshed as $mode" >&2; exit 1; }
        check "$st"
    done
    log "round $r: counts ${counts[-1]} ms, rescan ${rescan[-1]} ms, query ${rerun[-1]} ms (verified)"
done
mc=$(echo "${counts[*]}" | median)
mr=$(echo "${rescan[*]}" | median)
mq=$(echo "${rerun[*]}" | median)
echo "numeric groups: $ROWS rows in 100 groups, 500 deleted + 500 inserted per round, median of $ROUNDS"
echo "  refresh with counts:          $mc ms"
echo "  refresh rescanning (before):  $mr ms"
echo "  re-running the query:         $mq ms"
awk -v c="$mc" -v r="$mr" -v q="$mq" 'BEGIN { printf "  counts / rescan: %.3f   counts / query: %.3f\n", c / r, c / q }'
