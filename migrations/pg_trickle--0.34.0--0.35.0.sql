-- pg_trickle 0.34.0 -> 0.35.0: the settings a stream table's query runs under (recorded at
-- create; NULL for existing stream tables: they keep the refreshing session's settings
-- until redefined).
\echo Use "ALTER EXTENSION pg_trickle UPDATE TO '0.35.0'" to load this file. \quit
ALTER TABLE pgtrickle.pgt_stream_tables ADD COLUMN refresh_settings jsonb;
