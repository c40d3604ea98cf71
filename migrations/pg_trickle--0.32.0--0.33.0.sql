-- pg_trickle 0.32.0 -> 0.33.0: distributed stream tables and CDC (catalog only: the
-- behaviour arrives with Citus support). output_distribution_column, per-worker slots, the
-- pg_ripple VP promotion hook.
\echo Use "ALTER EXTENSION pg_trickle UPDATE TO '0.33.0'" to load this file. \quit

ALTER TABLE pgtrickle.pgt_stream_tables ADD COLUMN output_distribution_column text;

DROP PROCEDURE pgtrickle.create_stream_table(text, text, text, text, text, boolean);
CREATE PROCEDURE pgtrickle.create_stream_table(
    name text,
    query text,
    schedule text DEFAULT NULL,
    refresh_mode text DEFAULT 'auto',
    cdc_mode text DEFAULT 'auto',
    output_distribution_column text DEFAULT NULL,
    initialize boolean DEFAULT true)
    LANGUAGE C AS 'MODULE_PATHNAME', 'pgtrickle_create_stream_table';

-- Citus: per-worker publication/slot of a distributed source (used from a later release on).
CREATE TABLE pgtrickle.pgt_worker_slots (
    source_stable_name text NOT NULL,
    worker_name        text NOT NULL,
    worker_port        integer NOT NULL,
    slot_name          text NOT NULL,
    publication_name   text NOT NULL,
    worker_frontier    pg_lsn,
    last_polled_at     timestamptz,
    consecutive_failures integer NOT NULL DEFAULT 0,
    last_error         text,
    PRIMARY KEY (source_stable_name, worker_name, worker_port)
);
SELECT pg_catalog.pg_extension_config_dump('pgtrickle.pgt_worker_slots', '');

-- pg_ripple VP promotion hook. Validates the payload and reports whether the table is a
-- tracked distributed source; worker-slot probing arrives with distributed CDC.
CREATE FUNCTION pgtrickle.handle_vp_promoted(payload text) RETURNS boolean
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
