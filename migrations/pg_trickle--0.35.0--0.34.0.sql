-- pg_trickle 0.35.0 -> 0.34.0: drop the recorded refresh settings and the WAL-capture
-- additions (slots recorded for Citus sources stay on their nodes; 0.34.0 does not read them);
-- pgtrickle.row_image_id (deltas are consolidated by equality again) and pgtrickle.row_id
-- hashing under the call's collation again.
\echo Use "ALTER EXTENSION pg_trickle UPDATE TO '0.34.0'" to load this file. \quit

-- Row ids change back for values of nondeterministic collations (below): as on the way up,
-- the refresh locks of the stream tables to recompute are taken before any catalog lock.
SELECT pg_catalog.pg_advisory_xact_lock(1885828210, (pgt_id % 2147483647)::int)
  FROM pgtrickle.pgt_stream_tables
 WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_collation WHERE NOT collisdeterministic)
 ORDER BY pgt_id;

ALTER TABLE pgtrickle.pgt_stream_tables DROP COLUMN refresh_settings,
    DROP COLUMN full_refresh_reason;

DROP FUNCTION pgtrickle.poll_worker_slots(regclass);
DROP FUNCTION pgtrickle.provision_worker_slots(regclass);
DROP FUNCTION pgtrickle.drop_orphan_worker_slots();
DROP VIEW pgtrickle.citus_status;
ALTER TABLE pgtrickle.pgt_worker_slots DROP COLUMN worker_lsn, DROP COLUMN failing_since;
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
            ELSE 'locked' END AS lease_health
  FROM pgtrickle.pgt_stream_tables st
  JOIN pgtrickle.pgt_dependencies d ON d.pgt_id = st.pgt_id AND d.source_placement = 'distributed'
  LEFT JOIN pgtrickle.pgt_worker_slots ws ON ws.source_stable_name = d.source_stable_name
  LEFT JOIN pgtrickle.pgt_st_locks l ON l.pgt_id = st.pgt_id;

DROP FUNCTION pgtrickle.row_image_id(VARIADIC "any");
CREATE OR REPLACE FUNCTION pgtrickle.row_id(VARIADIC "any") RETURNS bigint
    LANGUAGE C IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'pgtrickle_row_id';
UPDATE pgtrickle.pgt_stream_tables SET needs_full_refresh = true
 WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_collation WHERE NOT collisdeterministic);

-- handle_vp_promoted as in 0.34.0 (no field validation, no pinned search_path).
CREATE OR REPLACE FUNCTION pgtrickle.handle_vp_promoted(payload text) RETURNS boolean
    LANGUAGE plpgsql AS $fn$
DECLARE
    doc jsonb;
    tracked boolean;
BEGIN
    BEGIN
        doc := payload::jsonb;
    EXCEPTION WHEN invalid_text_representation THEN
        RAISE EXCEPTION 'invalid vp_promoted payload: not JSON'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass the payload of the pg_ripple.vp_promoted notification unchanged.';
    END;
    IF pg_catalog.jsonb_typeof(doc) <> 'object' OR NOT doc ? 'table' THEN
        RAISE EXCEPTION 'invalid vp_promoted payload: key "table" missing'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Expected {"table": ..., "shard_count": ..., "shard_table_prefix": ..., "predicate_id": ...}.';
    END IF;
    SELECT EXISTS (SELECT 1 FROM pgtrickle.pgt_change_tracking ct
                    WHERE ct.source_placement = 'distributed'
                      AND ct.source_relid::text = doc->>'table')
      INTO tracked;
    RAISE LOG 'pg_trickle: vp_promoted for % (tracked distributed source: %)', doc->>'table', tracked;
    RETURN tracked;
END
$fn$;
