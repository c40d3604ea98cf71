-- pg_trickle 0.32.0 -> 0.31.0: back to OID names (pgtrickle migrate --rollback).
-- Reverses 0.31.0 -> 0.32.0 exactly, in one transaction; buffer contents are kept.
\echo Use "ALTER EXTENSION pg_trickle UPDATE TO '0.31.0'" to load this file. \quit

DO $rename$
DECLARE
    r record;
    op text;
BEGIN
    -- Sources first, in a fixed order: a writer holds its source before it touches the
    -- buffer, so locking buffers first could deadlock with it.
    FOR r IN SELECT ct.source_relid::regclass AS rel FROM pgtrickle.pgt_change_tracking ct
              ORDER BY ct.source_relid::oid
    LOOP
        EXECUTE pg_catalog.format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', r.rel);
    END LOOP;
    FOR r IN SELECT ct.source_relid::oid AS relid, ct.source_relid::regclass AS rel, ct.cdc_mode,
                    ct.source_stable_name AS from_key, ct.source_relid::oid::text AS to_key
               FROM pgtrickle.pgt_change_tracking ct
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE pgtrickle_changes.%I RENAME TO %I',
                                  'changes_' || r.from_key, 'changes_' || r.to_key);
        EXECUTE pg_catalog.format('ALTER INDEX pgtrickle_changes.%I RENAME TO %I',
                                  'idx_changes_' || r.from_key || '_xid', 'idx_changes_' || r.to_key || '_xid');
        -- A WAL-captured source has no trigger function or triggers (its slot is taken
        -- over by pgtrickle migrate once the catalog is updated).
        IF r.cdc_mode = 'trigger' THEN
            EXECUTE pg_catalog.format('ALTER FUNCTION pgtrickle_changes.%I() RENAME TO %I',
                                      'pg_trickle_cdc_fn_' || r.from_key, 'pg_trickle_cdc_fn_' || r.to_key);
            FOREACH op IN ARRAY ARRAY['ins', 'upd', 'del', 'trunc'] LOOP
                EXECUTE pg_catalog.format('ALTER TRIGGER %I ON %s RENAME TO %I',
                                          'pg_trickle_cdc_' || op || '_' || r.from_key, r.rel,
                                          'pg_trickle_cdc_' || op || '_' || r.to_key);
            END LOOP;
        END IF;
    END LOOP;
END
$rename$;

UPDATE pgtrickle.pgt_stream_tables st
   SET frontier = pg_catalog.jsonb_set(st.frontier, '{sources}', (
       SELECT COALESCE(pg_catalog.jsonb_object_agg(COALESCE(ct.source_relid::oid::text, e.key), e.value), '{}'::jsonb)
         FROM pg_catalog.jsonb_each(st.frontier->'sources') AS e(key, value)
         LEFT JOIN pgtrickle.pgt_change_tracking ct ON ct.source_stable_name = e.key))
 WHERE st.frontier ? 'sources';

DROP VIEW pgtrickle.pgt_status;
DROP VIEW pgtrickle.pgt_source_status;
DROP FUNCTION pgtrickle.source_stable_name(oid);

ALTER TABLE pgtrickle.pgt_stream_tables DROP COLUMN st_placement;
ALTER TABLE pgtrickle.pgt_dependencies DROP COLUMN source_placement, DROP COLUMN source_stable_name;
ALTER TABLE pgtrickle.pgt_change_tracking
    DROP COLUMN frontier_per_node, DROP COLUMN source_placement, DROP COLUMN source_stable_name;

CREATE VIEW pgtrickle.pgt_status AS
SELECT st.pgt_id,
       st.pgt_schema,
       st.pgt_name,
       st.status,
       st.refresh_mode,
       st.effective_mode,
       st.mode_reason,
       st.schedule,
       st.cdc_mode,
       st.created_at,
       st.last_refresh_at,
       st.last_refresh_mode,
       st.last_refresh_rows,
       st.last_error,
       st.consecutive_errors,
       st.next_attempt_at,
       pgtrickle.pending_changes(st.pgt_id) AS pending_changes,
       pg_catalog.now() - st.last_refresh_at AS staleness,
       pgtrickle.schedule_interval(st.schedule) AS schedule_interval,
       COALESCE(st.status = 'active'
                AND pg_catalog.now() - st.last_refresh_at > 2 * pgtrickle.schedule_interval(st.schedule), false) AS stale
  FROM pgtrickle.pgt_stream_tables st;
COMMENT ON VIEW pgtrickle.pgt_status IS 'pg_trickle: health of every stream table';

CREATE VIEW pgtrickle.pgt_source_status AS
SELECT ct.source_relid,
       ct.cdc_mode,
       'pgtrickle_changes.changes_' || ct.source_relid::oid AS change_buffer,
       (SELECT pg_catalog.count(*) FROM pgtrickle.pgt_dependencies d
         WHERE d.source_relid = ct.source_relid) AS readers
  FROM pgtrickle.pgt_change_tracking ct;
COMMENT ON VIEW pgtrickle.pgt_source_status IS 'pg_trickle: captured sources and their buffers';
