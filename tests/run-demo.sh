#!/usr/bin/env bash
# The main job: install what is needed, build and install pg_trickle and the pgtrickle CLI,
# start a local sandbox PostgreSQL 15 server with pg_trickle preloaded (127.0.0.1, a free
# port, a temp dir), and walk through a short demo. Then, when Citus is available (installed,
# or installable from ../shared/citus/install.sh as root, as tests/e2e/cluster.sh check
# does), a stream table over a distributed table on a Citus sandbox (`pgtrickle sandbox up`:
# a coordinator and two workers on 127.0.0.1); without Citus that part is skipped with a
# line saying why. Run as root on Debian 12.
# Every server started is stopped on exit, also on failure, unless KEEP=1 (then the commands
# that stop them are printed). CITUS_PORT=P puts the Citus sandbox on ports P..P+2.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target pg_trickle pgtrickle >/dev/null
cmake --install build >/dev/null
PGTRICKLE=$(command -v pgtrickle || echo build/cli/pgtrickle)
PG_CONFIG=$(command -v pg_config || echo /usr/lib/postgresql/15/bin/pg_config)

PGTMP_DIR="" CITUS_DIR=""
cleanup() {
    if [ "${KEEP:-0}" = 1 ]; then
        [ -z "$PGTMP_DIR" ] || echo "KEEP=1: stop the server with: bash tests/support/pgtmp.sh stop $PGTMP_DIR"
        [ -z "$CITUS_DIR" ] || echo "KEEP=1: stop the Citus sandbox with: $PGTRICKLE sandbox down --dir $CITUS_DIR"
        return 0
    fi
    [ -z "$CITUS_DIR" ] || "$PGTRICKLE" sandbox down --dir "$CITUS_DIR" >/dev/null 2>&1 || true
    [ -z "$PGTMP_DIR" ] || bash tests/support/pgtmp.sh stop "$PGTMP_DIR"
}
trap cleanup EXIT
eval "$(bash tests/support/pgtmp.sh start)"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
sql() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

step "Sandbox server on 127.0.0.1:$PGPORT (data in $PGTMP_DIR), checked by pgtrickle preflight"
sql -c "CREATE EXTENSION pg_trickle"
"$PGTRICKLE" preflight || true   # wal_level warnings are fine for trigger capture

step "Sources: customers and 100,000 orders"
sql <<'SQL'
CREATE TABLE customers (id int PRIMARY KEY, name text, region text);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int REFERENCES customers, amount numeric(10,2));
INSERT INTO customers SELECT g, 'customer ' || g, (ARRAY['north','south','east','west'])[1 + g % 4]
  FROM generate_series(1, 1000) g;
INSERT INTO orders SELECT g, 1 + g % 1000, (g % 97) * 1.25 FROM generate_series(1, 100000) g;
SQL

step "A stream table: revenue per region, maintained differentially, refreshed every second"
"$PGTRICKLE" explain --query "SELECT c.region, count(*) AS orders, sum(o.amount) AS revenue
    FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY c.region"
"$PGTRICKLE" create region_revenue --schedule 1s --query "SELECT c.region, count(*) AS orders, sum(o.amount) AS revenue
    FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY c.region"
sql -c "SELECT region, orders, revenue FROM region_revenue ORDER BY region"

step "Writes: new orders, a customer moving region, a cancelled order"
sql <<'SQL'
INSERT INTO orders SELECT 100000 + g, 1 + g % 10, 1000 FROM generate_series(1, 50) g;
UPDATE customers SET region = 'north' WHERE id = 2;
DELETE FROM orders WHERE id = 7;
SQL

step "No refresh call: the scheduler (woken by the commits) applies only the delta"
sleep 1.5
sql -c "SELECT region, orders, revenue FROM region_revenue ORDER BY region"
sql -c "SELECT started_at::time(3), mode, rows_changed, trigger FROM pgtrickle.pgt_refresh_history ORDER BY history_id"
"$PGTRICKLE" status region_revenue || true

step "Check: the stream table equals its query re-run"
sql -c "SELECT count(*) AS rows_differing FROM (
  (SELECT region, orders, revenue FROM region_revenue
   EXCEPT ALL SELECT c.region, count(*), sum(o.amount) FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY 1)
  UNION ALL
  (SELECT c.region, count(*), sum(o.amount) FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY 1
   EXCEPT ALL SELECT region, orders, revenue FROM region_revenue)) d"
"$PGTRICKLE" status --format json | head -c 600; echo

# Citus: installed, or installed now from ../shared/citus when that exists and we are root
# (as tests/e2e/cluster.sh check does). Prints why not on stdout and returns 1 otherwise.
citus_installed() {
    [ -f "$("$PG_CONFIG" --pkglibdir)/citus.so" ] &&
        [ -f "$("$PG_CONFIG" --sharedir)/extension/citus.control" ]
}
citus_available() {
    local installer=../shared/citus/install.sh
    if [ -f "$installer" ] && [ "$(id -u)" = 0 ]; then
        bash "$installer" >&2 || { echo "$installer failed (exit $?)"; return 1; }
    fi
    citus_installed && return 0
    if [ -f "$installer" ]; then
        echo "Citus is not installed and $installer must run as root"
    else
        echo "Citus is not installed (no citus.so in $("$PG_CONFIG" --pkglibdir); it is not a Debian package) and ../shared/citus/install.sh does not exist beside the repository"
    fi
    return 1
}

if ! why=$(citus_available); then
    step "Citus part skipped: $why"
    exit 0
fi

CITUS_DIR=$(mktemp -u "${TMPDIR:-/tmp}/pgtrickle-demo-citus.XXXXXX")
step "Citus: pgtrickle sandbox up starts a coordinator and two workers (change data capture on)"
CITUS_DSN=$("$PGTRICKLE" sandbox up --dir "$CITUS_DIR" ${CITUS_PORT:+--port "$CITUS_PORT"})
"$PGTRICKLE" sandbox status --dir "$CITUS_DIR"
csql() { psql -X -q -v ON_ERROR_STOP=1 -d "$CITUS_DSN" "$@"; }
csql -c "SELECT nodeid, nodename, nodeport, noderole, shouldhaveshards FROM pg_dist_node ORDER BY nodeid"

step "A distributed source: orders, sharded by id over both workers, REPLICA IDENTITY FULL"
# One statement per psql call: Citus propagates DDL (CREATE EXTENSION too) only when it is
# the only statement of its query string.
csql -c "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL, qty int NOT NULL)"
csql -c "SELECT create_distributed_table('orders', 'id')"
csql -c "ALTER TABLE orders REPLICA IDENTITY FULL"
csql -c "INSERT INTO orders SELECT g, 1 + g % 100, 1 + g % 5 FROM generate_series(1, 20000) g"
csql -c "SELECT nodeport, count(*) AS shards FROM citus_shards WHERE table_name = 'orders'::regclass GROUP BY 1 ORDER BY 1"
# pg_trickle: the sandbox ran CREATE EXTENSION pg_trickle on the coordinator (after citus on
# every node and the workers' registration, as a statement of its own), and Citus created
# it on the workers too.
csql -c "SELECT nodeid, result AS pg_trickle_version FROM run_command_on_all_nodes(\$\$SELECT extversion FROM pg_extension WHERE extname = 'pg_trickle'\$\$) ORDER BY nodeid"

ORDERS_Q="SELECT customer_id, count(*) AS orders, sum(qty) AS qty FROM orders GROUP BY customer_id"
step "A stream table over it, differential: its changes come from a pgoutput slot on each worker"
"$PGTRICKLE" --dsn "$CITUS_DSN" create customer_orders --mode differential --query "$ORDERS_Q"
csql -c "SELECT customer_id, orders, qty FROM customer_orders ORDER BY customer_id LIMIT 3"

step "Writes through the coordinator (they land on both workers), then pgtrickle refresh"
csql -c "INSERT INTO orders SELECT g, 1 + g % 7, 2 FROM generate_series(20001, 21000) g"
csql -c "UPDATE orders SET qty = qty + 10 WHERE customer_id = 3"
csql -c "DELETE FROM orders WHERE id % 50 = 0"
"$PGTRICKLE" --dsn "$CITUS_DSN" refresh customer_orders
csql -c "SELECT customer_id, orders, qty FROM customer_orders ORDER BY customer_id LIMIT 3"
csql -c "SELECT started_at::time(3), mode, rows_changed, trigger FROM pgtrickle.pgt_refresh_history ORDER BY history_id"

step "Check: the stream table equals its query re-run"
differing=$(csql -At -c "SELECT count(*) FROM (
  (SELECT customer_id, orders, qty FROM customer_orders EXCEPT ALL $ORDERS_Q)
  UNION ALL
  ($ORDERS_Q EXCEPT ALL SELECT customer_id, orders, qty FROM customer_orders)) d")
echo "rows_differing: $differing"
[ "$differing" = 0 ] || { echo "the stream table differs from its query" >&2; exit 1; }

step "Per-node capture: pgtrickle.citus_status, pgtrickle slots list, pgtrickle status"
csql -x -c "SELECT * FROM pgtrickle.citus_status ORDER BY worker_port"
"$PGTRICKLE" --dsn "$CITUS_DSN" slots list
"$PGTRICKLE" --dsn "$CITUS_DSN" status || true
