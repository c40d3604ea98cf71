#!/usr/bin/env bash
# What the refresh lease costs (docs/benchmarks.md, "Refresh leases"): the same stream table
# refreshed after one change, N times, in a database with Citus (advisory lock + lease:
# claimed and released through the loopback connection) and in a database of the same
# server without Citus (the advisory lock only), in the same run. The difference bounds the
# lease's cost from above (it also holds what Citus's planner hooks cost every statement);
# the lease's own two statements (claim, release) are timed alone too, from a client. Starts its own Citus
# cluster (tests/e2e/cluster.sh on ports 57856-57858). Each refresh is its own transaction
# (psql autocommit, one session per database), so that the lease's release at commit is
# counted; times are wall-clock over the N refreshes, per refresh. The stream tables are
# checked against their queries at the end.
#
#   tests/bench/citus_lease.sh [--refreshes 300] [--rounds 3]
#
# Exit status: 0 when it ran, 2 when a stream table differed from its query, 1 on another
# failure, 77 when Citus is not available.
set -euo pipefail
# shellcheck source=tests/bench/own_cluster.bash
. "$(dirname "$0")/own_cluster.bash"
own_cluster citus_lease 57856 /tmp/pgtrickle-bench-lease

N=300
ROUNDS=3
while [ $# -gt 0 ]; do
    case "$1" in
        --refreshes) N=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "citus_lease: unknown option $1" >&2; exit 1 ;;
    esac
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
in_db() { local db=$1; shift; bash "$CLUSTER" psql coordinator -d "$db" -v ON_ERROR_STOP=1 -qAt "$@"; }

QUERY="SELECT k, count(*) AS n, sum(v) AS s FROM t GROUP BY k"
own_cluster_up
on "CREATE DATABASE plain" >/dev/null
for db in postgres plain; do
    [ "$db" = plain ] && in_db plain -c "CREATE EXTENSION pg_trickle"
    in_db "$db" -c "CREATE TABLE t (id bigint PRIMARY KEY, k int NOT NULL, v int NOT NULL)" \
        -c "INSERT INTO t SELECT g, g % 100, g FROM generate_series(1, 100000) g" \
        -c "CALL pgtrickle.create_stream_table('st', '$QUERY', refresh_mode => 'differential', schedule => NULL)"
done
[ "$(in_db postgres -c "SELECT count(*) FROM pg_extension WHERE extname = 'citus'")" = 1 ]
[ "$(in_db plain -c "SELECT count(*) FROM pg_extension WHERE extname = 'citus'")" = 0 ]

# run DB ROUND: N refreshes of st, each after one inserted row (ids above 10^6 * (ROUND + 1));
# prints ms per refresh.
run() {
    local db=$1 script="" i id t0 t1
    for i in $(seq 1 "$N"); do
        id=$((1000000 * ($2 + 1) + i))
        script+="INSERT INTO t VALUES ($id, $((id % 100)), 1);"$'\n'
        script+="CALL pgtrickle.refresh_stream_table('st');"$'\n'
    done
    t0=$(date +%s%N)
    in_db "$db" <<<"$script" >/dev/null
    t1=$(date +%s%N)
    awk -v a="$t0" -v b="$t1" -v n="$N" 'BEGIN { printf "%.3f", (b - a) / 1e6 / n }'
}

run postgres 0 >/dev/null  # warm-up (connections, caches)
run plain 0 >/dev/null
lease="" advisory=""
for r in $(seq 1 "$ROUNDS"); do
    lease+=" $(run postgres "$r")"
    advisory+=" $(run plain "$r")"
    log "round $r: lease ${lease##* } ms, advisory ${advisory##* } ms per (insert + refresh)"
done
# The lease's statements alone, as the refresh sends them, N claims and releases.
ID=$(in_db postgres -c "SELECT pgt_id FROM pgtrickle.pgt_st_locks RIGHT JOIN pgtrickle.pgt_stream_tables USING (pgt_id) LIMIT 1")
claims=""
for i in $(seq 1 "$N"); do
    claims+="INSERT INTO pgtrickle.pgt_st_locks AS l VALUES ($ID, 'bench:1:$i', now(), now() + interval '60 s') ON CONFLICT (pgt_id) DO UPDATE SET locked_by = EXCLUDED.locked_by WHERE l.expires_at <= now() RETURNING 1;"$'\n'
    claims+="DELETE FROM pgtrickle.pgt_st_locks WHERE pgt_id = $ID AND locked_by = 'bench:1:$i';"$'\n'
done
statements=""
for r in $(seq 1 "$ROUNDS"); do
    t0=$(date +%s%N)
    in_db postgres <<<"$claims" >/dev/null
    t1=$(date +%s%N)
    statements+=" $(awk -v a="$t0" -v b="$t1" -v n="$N" 'BEGIN { printf "%.3f", (b - a) / 1e6 / n }')"
done
for db in postgres plain; do
    d=$(in_db "$db" -c "SELECT count(*) FROM ((SELECT k, n, s FROM st EXCEPT ALL $QUERY) UNION ALL ($QUERY EXCEPT ALL SELECT k, n, s FROM st)) d")
    [ "$d" = 0 ] || { echo "citus_lease: st in $db differs from its query by $d rows" >&2; exit 2; }
done
[ "$(in_db postgres -c "SELECT count(*) FROM pgtrickle.pgt_st_locks")" = 0 ]
L=$(median <<<"$lease")
A=$(median <<<"$advisory")
S=$(median <<<"$statements")
echo "refreshes per round: $N (one inserted row each), median of $ROUNDS rounds"
echo "lease (Citus database):      $L ms per insert + refresh"
echo "advisory lock (no Citus):    $A ms per insert + refresh"
echo "lease claim + release alone: $S ms (from a client, Citus database)"
awk -v l="$L" -v a="$A" 'BEGIN { printf "lease - advisory: %.3f ms; lease/advisory: %.2f\n", l - a, l / a }'
