-- pg_trickle 0.34.0 -> 0.33.0: reverses 0.33.0 -> 0.34.0.
\echo Use "ALTER EXTENSION pg_trickle UPDATE TO '0.33.0'" to load this file. \quit

DROP VIEW pgtrickle.citus_status;
DROP TABLE pgtrickle.pgt_st_locks;
