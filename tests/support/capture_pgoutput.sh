#!/usr/bin/env bash
# Captures real pgoutput messages for the decoder's unit tests (tests/unit/pgoutput_test.cpp).
#
#   tests/support/capture_pgoutput.sh [OUTDIR]      (default: tests/unit/data/pgoutput)
#
# Starts a throwaway server without pg_trickle (pgtmp.sh --no-preload; wal_level is logical
# there), runs a fixed workload against a publication, and writes what
# pg_logical_slot_peek_binary_changes returns, one message a line:
#     <lsn> TAB <xid> TAB <data as lower-case hex>
# Lines starting with '#' are comments. Each scenario is peeked on its own (so the RELATION
# and TYPE messages are sent again at the start of each file) and the slot is then advanced
# past it (synchronous_commit is on: a peek reads only up to the flushed WAL). LSNs, xids, OIDs and timestamps differ between captures: the tests compare them
# with each other, never with constants.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../unit/data/pgoutput}
mkdir -p "$out"
out=$(cd "$out" && pwd)

eval "$("$here/pgtmp.sh" start --no-preload --set logical_decoding_work_mem=64kB --set synchronous_commit=on)"
trap '"$here/pgtmp.sh" stop "$PGTMP_DIR"' EXIT

psql_q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }

psql_q <<'SQL'
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
-- Every old tuple is logged in full ('O'); "big" is stored out of line, uncompressed.
CREATE TABLE ri_full (
    id int,
    amount numeric(12,3),
    label text,
    doc jsonb,
    raw bytea,
    tags int[],
    feeling mood,
    at timestamptz,
    big text
);
ALTER TABLE ri_full REPLICA IDENTITY FULL;
ALTER TABLE ri_full ALTER COLUMN big SET STORAGE EXTERNAL;
-- Default identity: the primary key only ('K'), and only when it changes.
CREATE TABLE ri_default (id int PRIMARY KEY, v text);
CREATE TABLE "Mixed Case" (k bigint, flag boolean);
CREATE PUBLICATION pub FOR TABLE ri_full, ri_default, "Mixed Case";
SELECT 1 FROM pg_create_logical_replication_slot('pgt_slot', 'pgoutput');
SQL

# capture FILE PROTO_VERSION EXTRA_OPTIONS DESCRIPTION: peeks every pending message into
# FILE and advances the slot past them.
capture() {
    local file=$1 proto=$2 extra=$3 desc=$4
    {
        echo "# $desc"
        echo "# captured by tests/support/capture_pgoutput.sh from PostgreSQL $(psql_q -c 'SHOW server_version')"
        echo "# pg_logical_slot_peek_binary_changes('pgt_slot', NULL, NULL, 'proto_version', '$proto', 'publication_names', 'pub', 'messages', 'true'$extra)"
        echo "# lsn	xid	data(hex)"
        psql_q -F $'\t' -c "SELECT lsn, xid, encode(data, 'hex')
            FROM pg_logical_slot_peek_binary_changes('pgt_slot', NULL, NULL,
                'proto_version', '$proto', 'publication_names', 'pub', 'messages', 'true'$extra)"
    } >"$out/$file"
    psql_q -c "SELECT 1 FROM pg_replication_slot_advance('pgt_slot', pg_current_wal_lsn())" >/dev/null
    echo "wrote $out/$file ($(grep -vc '^#' "$out/$file") messages)" >&2
}

psql_q <<'SQL'
BEGIN;
INSERT INTO ri_full VALUES
    (1, 1234567.125, 'grüße, 世界 ✓', '{"a": [1, 2.5, null], "b": "x"}', '\xdeadbeef00',
     '{1,NULL,3}', 'happy', '2024-02-29 12:34:56.789+00', repeat('toast-me ', 1000)),
    (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO ri_default VALUES (1, 'one'), (2, 'two');
INSERT INTO "Mixed Case" VALUES (9007199254740993, true);
COMMIT;
SQL
capture insert_v1.hex 1 "" "one transaction: two rows into ri_full (all types; all NULLs), two into ri_default, one into \"Mixed Case\""

psql_q <<'SQL'
INSERT INTO ri_full (id, label, big) VALUES (3, 'three', repeat('x', 5000));
UPDATE ri_full SET amount = 0.5, label = 'three*' WHERE id = 3;
UPDATE ri_default SET v = 'uno' WHERE id = 1;
UPDATE ri_default SET id = 20 WHERE id = 2;
DELETE FROM ri_full WHERE id = 3;
DELETE FROM ri_default WHERE id = 20;
BEGIN;
INSERT INTO ri_default VALUES (99, 'rolled back');
ROLLBACK;
SQL
capture update_delete_v1.hex 1 "" "autocommit statements: insert+update (unchanged TOAST)+delete on ri_full; update without and with key change, delete on ri_default; a rolled-back insert"

psql_q <<'SQL'
BEGIN;
INSERT INTO ri_default VALUES (5, 'five');
SELECT 1 FROM pg_logical_emit_message(true, 'pgt.test', 'transactional ü');
COMMIT;
SELECT 1 FROM pg_logical_emit_message(false, 'pgt.test', '');
TRUNCATE ri_default;
TRUNCATE ri_full, "Mixed Case" RESTART IDENTITY CASCADE;
SQL
capture message_truncate_v1.hex 1 "" "a transactional and a non-transactional logical message, TRUNCATE of one table and of two (RESTART IDENTITY CASCADE)"

psql_q <<'SQL'
BEGIN;
INSERT INTO ri_default SELECT g, 'streamed ' || g FROM generate_series(1, 1500) g;
COMMIT;
SQL
capture stream_v2.hex 2 ", 'streaming', 'on'" "protocol 2 with streaming on and logical_decoding_work_mem = 64kB: one large transaction streamed in chunks, then STREAM COMMIT"
