#!/usr/bin/env bash
# The main job: install what is needed, build and install pg_trickle and the pgtrickle CLI,
# start a local sandbox PostgreSQL 15 server with pg_trickle preloaded (127.0.0.1, a free
# port, a temp dir), and walk through a short demo. Run as root on Debian 12.
# KEEP=1 leaves the sandbox running afterwards (stop it with: tests/support/pgtmp.sh stop DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target pg_trickle pgtrickle >/dev/null
cmake --install build >/dev/null
PGTRICKLE=$(command -v pgtrickle || echo build/cli/pgtrickle)

eval "$(bash tests/support/pgtmp.sh start)"
if [ "${KEEP:-0}" != 1 ]; then trap 'bash tests/support/pgtmp.sh stop "$PGTMP_DIR"' EXIT; fi
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
