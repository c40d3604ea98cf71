-- pg_trickle 0.33.0 -> 0.32.0: reverses 0.32.0 -> 0.33.0.
\echo Use "ALTER EXTENSION pg_trickle UPDATE TO '0.32.0'" to load this file. \quit

DROP FUNCTION pgtrickle.handle_vp_promoted(text);
ALTER EXTENSION pg_trickle DROP TABLE pgtrickle.pgt_worker_slots;
DROP TABLE pgtrickle.pgt_worker_slots;

DROP PROCEDURE pgtrickle.create_stream_table(text, text, text, text, text, text, boolean);
CREATE PROCEDURE pgtrickle.create_stream_table(
    name text,
    query text,
    schedule text DEFAULT NULL,
    refresh_mode text DEFAULT 'auto',
    cdc_mode text DEFAULT 'auto',
    initialize boolean DEFAULT true)
    LANGUAGE C AS 'MODULE_PATHNAME', 'pgtrickle_create_stream_table';

ALTER TABLE pgtrickle.pgt_stream_tables DROP COLUMN output_distribution_column;
