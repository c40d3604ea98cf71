-- pg_trickle 0.34.0 -> 0.35.0: the settings a stream table's query runs under (recorded at
-- create; NULL for existing stream tables: they keep the refreshing session's settings
-- until redefined); WAL capture of Citus tables (slot health columns, citus_status with
-- reference sources and slot health, the slot functions); pgtrickle.row_image_id, by which
-- deltas are consolidated; pgtrickle.row_id hashes each value under its own collation.
\echo Use "ALTER EXTENSION pg_trickle UPDATE TO '0.35.0'" to load this file. \quit

-- Row ids change for values of nondeterministic collations (below): stream tables that may
-- hold such values are recomputed by their next refresh. Their refresh locks (class 'pgtr'
-- of refresh/lock.cpp) are taken first, before any catalog table is locked, so that no
-- refresh in flight stores ids of one kind while this commits the other.
SELECT pg_catalog.pg_advisory_xact_lock(1885828210, (pgt_id % 2147483647)::int)
  FROM pgtrickle.pgt_stream_tables
 WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_collation WHERE NOT collisdeterministic)
 ORDER BY pgt_id;

ALTER TABLE pgtrickle.pgt_stream_tables ADD COLUMN refresh_settings jsonb,
    ADD COLUMN full_refresh_reason text;

ALTER TABLE pgtrickle.pgt_worker_slots ADD COLUMN worker_lsn pg_lsn, ADD COLUMN failing_since timestamptz;
DROP VIEW pgtrickle.citus_status;
-- Citus observability (columns as in the Citus guide, then slot health). Empty until
-- Citus sources exist.
CREATE VIEW pgtrickle.citus_status AS
SELECT st.pgt_schema,
       st.pgt_name,
       d.source_stable_name,
       d.source_placement,
       NULL::text AS coordinator_slot,
       ws.worker_name,
       ws.worker_port,
       ws.slot_name AS worker_slot,
       ws.worker_frontier,
       ws.last_polled_at,
       l.locked_by AS lease_holder,
       l.acquired_at AS lease_acquired_at,
       l.expires_at AS lease_expires_at,
       CASE WHEN l.pgt_id IS NULL THEN 'unlocked'
            WHEN l.expires_at < pg_catalog.now() THEN 'expired'
            ELSE 'locked' END AS lease_health,
       pg_catalog.pg_wal_lsn_diff(ws.worker_lsn, ws.worker_frontier) AS lag_bytes,
       ws.consecutive_failures,
       ws.failing_since,
       ws.last_error
  FROM pgtrickle.pgt_stream_tables st
  JOIN pgtrickle.pgt_dependencies d ON d.pgt_id = st.pgt_id
                                   AND d.source_placement IN ('distributed', 'reference')
  LEFT JOIN pgtrickle.pgt_worker_slots ws ON ws.source_stable_name = d.source_stable_name
  LEFT JOIN pgtrickle.pgt_st_locks l ON l.pgt_id = st.pgt_id;
COMMENT ON VIEW pgtrickle.citus_status IS 'pg_trickle: Citus sources, their slot on each node and its health';

-- Citus: drain the slots of a WAL-captured source (every one when NULL) into its change
-- buffer now, in this transaction (the scheduler does it every tick).
CREATE FUNCTION pgtrickle.poll_worker_slots(source regclass DEFAULT NULL)
    RETURNS TABLE (source_stable_name text, worker text, changes bigint, worker_frontier pg_lsn)
    LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'pgtrickle_poll_worker_slots';

-- Citus: make the slots of a WAL-captured source (every one when NULL) match the nodes that
-- capture it now: create missing ones, recreate lost ones, drop those of departed nodes.
CREATE FUNCTION pgtrickle.provision_worker_slots(source regclass DEFAULT NULL)
    RETURNS TABLE (source_stable_name text, worker_name text, worker_port integer,
                   slot_name text, action text)
    LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'pgtrickle_provision_worker_slots';

-- Citus: drop inactive pgtrickle_* slots of this database that no pgt_worker_slots row names.
CREATE FUNCTION pgtrickle.drop_orphan_worker_slots()
    RETURNS TABLE (worker_name text, worker_port integer, slot_name text)
    LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'pgtrickle_drop_orphan_worker_slots';
REVOKE ALL ON FUNCTION pgtrickle.poll_worker_slots(regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgtrickle.provision_worker_slots(regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgtrickle.drop_orphan_worker_slots() FROM PUBLIC;

-- Image identity: a 64-bit xxHash over the values' binary images, NULL-aware; equal but
-- differently spelled values ('alice', 'ALICE' under a case-insensitive collation; 1.0,
-- 1.00) hash apart. Delta consolidations group by it.
CREATE FUNCTION pgtrickle.row_image_id(VARIADIC "any") RETURNS bigint
    LANGUAGE C IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'pgtrickle_row_image_id';

-- pgtrickle.row_id hashed every value under the call's collation, which is the database
-- default when the values' collations differ: 'alice' and 'ALICE' of a case-insensitive
-- column beside a "C" one got two group ids. Each value is now hashed under its own
-- collation. Ids change only for values of nondeterministic collations, so stream tables are
-- recomputed in a database that has such a collation.
CREATE OR REPLACE FUNCTION pgtrickle.row_id(VARIADIC "any") RETURNS bigint
    LANGUAGE C IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'pgtrickle_row_id_own_collation';
UPDATE pgtrickle.pgt_stream_tables
   SET full_refresh_reason = CASE WHEN needs_full_refresh THEN full_refresh_reason
                                  ELSE 'pg_trickle 0.35.0 hashes row ids under each value''s own collation' END,
       needs_full_refresh = true
 WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_collation WHERE NOT collisdeterministic);

-- pg_ripple VP promotion hook (seed 002): validates the pg_ripple.vp_promoted payload (every
-- field, by name) and reports whether the table is a captured source that is now a Citus
-- table. The WAL poller notices the new placement at its next tick and provisions the
-- source's slots on the workers; its stream tables go on (one full refresh, with the reason).
CREATE OR REPLACE FUNCTION pgtrickle.handle_vp_promoted(payload text) RETURNS boolean
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    doc jsonb;
    rel regclass;
    src record;
    now_placement text := 'local';
    expected constant text := 'Expected {"table": "schema.name", "shard_count": 32, "shard_table_prefix": "schema.name_", "predicate_id": 42}.';
BEGIN
    BEGIN
        doc := payload::jsonb;
    EXCEPTION WHEN invalid_text_representation THEN
        RAISE EXCEPTION 'invalid vp_promoted payload: not JSON'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass the payload of the pg_ripple.vp_promoted notification unchanged.';
    END;
    IF jsonb_typeof(doc) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'invalid vp_promoted payload: not a JSON object'
            USING ERRCODE = 'invalid_parameter_value', HINT = expected;
    END IF;
    IF jsonb_typeof(doc->'table') IS DISTINCT FROM 'string' OR doc->>'table' = '' THEN
        RAISE EXCEPTION 'invalid vp_promoted payload: field "table" must be a non-empty string (got %)',
                        coalesce((doc->'table')::text, 'nothing')
            USING ERRCODE = 'invalid_parameter_value', HINT = expected;
    END IF;
    IF jsonb_typeof(doc->'shard_count') IS DISTINCT FROM 'number'
       OR (doc->>'shard_count') !~ '^[0-9]+$' OR (doc->>'shard_count')::numeric < 1 THEN
        RAISE EXCEPTION 'invalid vp_promoted payload: field "shard_count" must be a positive integer (got %)',
                        coalesce((doc->'shard_count')::text, 'nothing')
            USING ERRCODE = 'invalid_parameter_value', HINT = expected;
    END IF;
    IF jsonb_typeof(doc->'shard_table_prefix') IS DISTINCT FROM 'string' OR doc->>'shard_table_prefix' = '' THEN
        RAISE EXCEPTION 'invalid vp_promoted payload: field "shard_table_prefix" must be a non-empty string (got %)',
                        coalesce((doc->'shard_table_prefix')::text, 'nothing')
            USING ERRCODE = 'invalid_parameter_value', HINT = expected;
    END IF;
    IF jsonb_typeof(doc->'predicate_id') IS DISTINCT FROM 'number'
       OR (doc->>'predicate_id') !~ '^[0-9]+$' OR (doc->>'predicate_id')::numeric > 9223372036854775807 THEN
        RAISE EXCEPTION 'invalid vp_promoted payload: field "predicate_id" must be a non-negative integer (got %)',
                        coalesce((doc->'predicate_id')::text, 'nothing')
            USING ERRCODE = 'invalid_parameter_value', HINT = expected;
    END IF;
    BEGIN
        rel := to_regclass(doc->>'table');
    EXCEPTION WHEN invalid_name OR syntax_error OR feature_not_supported THEN
        rel := NULL;
    END;
    IF rel IS NULL THEN
        RAISE EXCEPTION 'invalid vp_promoted payload: field "table": relation "%" does not exist', doc->>'table'
            USING ERRCODE = 'undefined_table',
                  HINT = 'Names are resolved with search_path = pg_catalog, pg_temp: pass the schema-qualified name pg_ripple sends.';
    END IF;
    SELECT ct.cdc_mode, ct.source_placement INTO src
      FROM pgtrickle.pgt_change_tracking ct WHERE ct.source_relid = rel;
    IF NOT FOUND THEN
        RAISE LOG 'pg_trickle: vp_promoted for % (predicate %): not a captured source', rel, doc->>'predicate_id';
        RETURN false;
    END IF;
    IF to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
        EXECUTE 'SELECT CASE WHEN partmethod OPERATOR(pg_catalog.=) ''n'' THEN CASE WHEN repmodel OPERATOR(pg_catalog.=) ''t'' THEN ''reference'' ELSE ''local'' END ELSE ''distributed'' END FROM pg_catalog.pg_dist_partition WHERE logicalrelid OPERATOR(pg_catalog.=) $1'
           INTO now_placement USING rel;
        now_placement := coalesce(now_placement, 'local');
    END IF;
    IF src.cdc_mode = 'trigger' AND now_placement <> 'local' THEN
        RAISE EXCEPTION 'source % is captured by triggers and cannot be followed as a Citus % table', rel, now_placement
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Capture tables pg_ripple promotes through the WAL: create their stream tables with cdc_mode => ''wal''.';
    END IF;
    RAISE LOG 'pg_trickle: vp_promoted for % (predicate %, % shards): captured source, now %, recorded %',
              rel, doc->>'predicate_id', doc->>'shard_count', now_placement, src.source_placement;
    RETURN now_placement <> 'local';
END
$fn$;
