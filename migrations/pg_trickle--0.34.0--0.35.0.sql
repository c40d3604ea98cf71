-- pg_trickle 0.34.0 -> 0.35.0: no catalog change (per-worker slot CDC and distributed
-- storage use the catalog of 0.33.0/0.34.0).
\echo Use "ALTER EXTENSION pg_trickle UPDATE TO '0.35.0'" to load this file. \quit
