-- pg_trickle 0.31.0 -> 0.32.0: stable names (DESIGN.md §5).
-- Capture objects move from OID names to stable names, frontiers are rekeyed, and the Citus
-- placement columns appear; everything in the single transaction of ALTER EXTENSION UPDATE,
-- so an interrupted upgrade leaves the installation as it was. Buffer contents are kept.
\echo Use "ALTER EXTENSION pg_trickle UPDATE TO '0.32.0'" to load this file. \quit

ALTER TABLE pgtrickle.pgt_change_tracking
    ADD COLUMN source_stable_name text UNIQUE,
    ADD COLUMN source_placement text NOT NULL DEFAULT 'local'
        CHECK (source_placement IN ('local', 'reference', 'distributed')),
    ADD COLUMN frontier_per_node jsonb;
ALTER TABLE pgtrickle.pgt_dependencies
    ADD COLUMN source_stable_name text,
    ADD COLUMN source_placement text NOT NULL DEFAULT 'local'
        CHECK (source_placement IN ('local', 'reference', 'distributed'));
ALTER TABLE pgtrickle.pgt_stream_tables
    ADD COLUMN st_placement text NOT NULL DEFAULT 'local'
        CHECK (st_placement IN ('local', 'reference', 'distributed'));

CREATE FUNCTION pgtrickle.source_stable_name(source oid) RETURNS text
    LANGUAGE C STRICT STABLE AS 'MODULE_PATHNAME', 'pgtrickle_source_stable_name';
COMMENT ON FUNCTION pgtrickle.source_stable_name(oid) IS
    'stable name of a source table: lower-hex XXH64 of database/schema.table; the stored one if the table is captured';

-- Backfill: the stable name from the source's current database, schema and table names.
UPDATE pgtrickle.pgt_change_tracking SET source_stable_name = pgtrickle.source_stable_name(source_relid::oid);
UPDATE pgtrickle.pgt_dependencies d SET source_stable_name = ct.source_stable_name
  FROM pgtrickle.pgt_change_tracking ct WHERE ct.source_relid = d.source_relid;

-- Rename buffers, their indexes, trigger functions and triggers.
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
                    ct.source_relid::oid::text AS from_key, ct.source_stable_name AS to_key
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

-- Frontiers: keyed by stable name instead of OID.
UPDATE pgtrickle.pgt_stream_tables st
   SET frontier = pg_catalog.jsonb_set(st.frontier, '{sources}', (
       SELECT COALESCE(pg_catalog.jsonb_object_agg(COALESCE(ct.source_stable_name, e.key), e.value), '{}'::jsonb)
         FROM pg_catalog.jsonb_each(st.frontier->'sources') AS e(key, value)
         LEFT JOIN pgtrickle.pgt_change_tracking ct ON ct.source_relid::oid::text = e.key))
 WHERE st.frontier ? 'sources';

DROP VIEW pgtrickle.pgt_status;
DROP VIEW pgtrickle.pgt_source_status;

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
       st.st_placement,
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
       ct.source_stable_name,
       ct.source_placement,
       ct.cdc_mode,
       'pgtrickle_changes.changes_' || ct.source_stable_name AS change_buffer,
       (SELECT pg_catalog.count(*) FROM pgtrickle.pgt_dependencies d
         WHERE d.source_relid = ct.source_relid) AS readers
  FROM pgtrickle.pgt_change_tracking ct;
COMMENT ON VIEW pgtrickle.pgt_source_status IS 'pg_trickle: captured sources and their buffers';
