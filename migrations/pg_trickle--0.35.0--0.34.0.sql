-- pg_trickle 0.35.0 -> 0.34.0: drop the recorded refresh settings.
\echo Use "ALTER EXTENSION pg_trickle UPDATE TO '0.34.0'" to load this file. \quit
ALTER TABLE pgtrickle.pgt_stream_tables DROP COLUMN refresh_settings;
