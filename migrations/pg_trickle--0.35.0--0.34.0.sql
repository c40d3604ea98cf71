-- pg_trickle 0.35.0 -> 0.34.0: no catalog change.
\echo Use "ALTER EXTENSION pg_trickle UPDATE TO '0.34.0'" to load this file. \quit
