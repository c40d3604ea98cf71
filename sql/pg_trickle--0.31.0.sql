-- pg_trickle 0.31.0: catalog and SQL API. Capture objects are named by source OID
-- (changes_<oid>, pg_trickle_cdc_fn_<oid>, ...); frontiers are keyed by OID. Kept installable as
-- the source of `pgtrickle migrate` / ALTER EXTENSION UPDATE to stable names.
-- Complain if the script is sourced in psql rather than via CREATE EXTENSION.
\echo Use "CREATE EXTENSION pg_trickle" to load this file. \quit

-- The extension's schema (pgtrickle) is created by CREATE EXTENSION from the control file.
-- Change buffers, their trigger functions and nothing else live in pgtrickle_changes.
CREATE SCHEMA pgtrickle_changes;
COMMENT ON SCHEMA pgtrickle_changes IS 'pg_trickle change buffers (one per captured source)';

--------------------------------------------------------------------------------------------
-- Catalog
--------------------------------------------------------------------------------------------

-- One row per stream table.
CREATE TABLE pgtrickle.pgt_stream_tables (
    pgt_id            bigserial PRIMARY KEY,
    pgt_schema        text NOT NULL,
    pgt_name          text NOT NULL,
    pgt_relid         regclass NOT NULL,           -- the storage table (regclass survives dump/restore)
    defining_query    text NOT NULL,               -- the query as the user gave it
    query_view        regclass NOT NULL,           -- pgtrickle.pgt_query_<pgt_id>: the query, kept by PostgreSQL
    schedule          text,                        -- NULL: refreshed only on demand
    refresh_mode      text NOT NULL DEFAULT 'auto'
                      CHECK (refresh_mode IN ('auto', 'differential', 'full')),
    effective_mode    text NOT NULL DEFAULT 'full'
                      CHECK (effective_mode IN ('differential', 'full')),
    mode_reason       text,                        -- why effective_mode is 'full', if it is
    cdc_mode          text NOT NULL DEFAULT 'auto'
                      CHECK (cdc_mode IN ('auto', 'trigger', 'wal')),
    storage_kind      text NOT NULL                -- 'rows' (duplicates kept) or 'groups'
                      CHECK (storage_kind IN ('rows', 'groups')),
    status            text NOT NULL DEFAULT 'active'
                      CHECK (status IN ('initializing', 'active', 'suspended', 'error')),
    frontier          jsonb,                       -- {"format":1,"sysid":..,"sources":{<stable_name>:{"snapshot":..}}}
    needs_full_refresh boolean NOT NULL DEFAULT false,
    next_attempt_at   timestamptz,                 -- after a failure: not retried before this
    created_at        timestamptz NOT NULL DEFAULT now(),
    last_refresh_at   timestamptz,
    last_refresh_mode text,
    last_refresh_rows bigint,
    last_error        text,
    consecutive_errors integer NOT NULL DEFAULT 0,
    UNIQUE (pgt_schema, pgt_name)
);
COMMENT ON TABLE pgtrickle.pgt_stream_tables IS 'pg_trickle: one row per stream table';

-- Which sources each stream table reads.
CREATE TABLE pgtrickle.pgt_dependencies (
    pgt_id             bigint NOT NULL REFERENCES pgtrickle.pgt_stream_tables ON DELETE CASCADE,
    source_relid       regclass NOT NULL,
    PRIMARY KEY (pgt_id, source_relid)
);
COMMENT ON TABLE pgtrickle.pgt_dependencies IS 'pg_trickle: sources read by each stream table';

-- One row per captured source: its change buffer and how changes reach it.
CREATE TABLE pgtrickle.pgt_change_tracking (
    source_relid       regclass PRIMARY KEY,
    cdc_mode           text NOT NULL DEFAULT 'trigger' CHECK (cdc_mode IN ('trigger', 'wal')),
    created_at         timestamptz NOT NULL DEFAULT now(),
    buffer_sysid       text                        -- cluster whose transactions the buffer rows belong to
);
COMMENT ON TABLE pgtrickle.pgt_change_tracking IS 'pg_trickle: captured sources and their change buffers';

-- Bounded history of refreshes (pg_trickle.history_rows_per_table per stream table).
CREATE TABLE pgtrickle.pgt_refresh_history (
    history_id   bigserial PRIMARY KEY,
    pgt_id       bigint NOT NULL REFERENCES pgtrickle.pgt_stream_tables ON DELETE CASCADE,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz,                      -- NULL while running (or interrupted)
    mode         text NOT NULL,                    -- differential | full | failed
    rows_changed bigint,
    reason       text,                             -- why a full refresh
    error        text,
    trigger      text NOT NULL DEFAULT 'manual'    -- manual | schedule | wake
);
CREATE INDEX ON pgtrickle.pgt_refresh_history (pgt_id, history_id);
COMMENT ON TABLE pgtrickle.pgt_refresh_history IS 'pg_trickle: recent refreshes of each stream table';

SELECT pg_catalog.pg_extension_config_dump('pgtrickle.pgt_stream_tables', '');
SELECT pg_catalog.pg_extension_config_dump('pgtrickle.pgt_stream_tables_pgt_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('pgtrickle.pgt_dependencies', '');
SELECT pg_catalog.pg_extension_config_dump('pgtrickle.pgt_change_tracking', '');

--------------------------------------------------------------------------------------------
-- Functions implemented in pg_trickle.so
--------------------------------------------------------------------------------------------

-- Row identity: a 64-bit xxHash over the values' equality-consistent hashes, NULL-aware.
CREATE FUNCTION pgtrickle.row_id(VARIADIC "any") RETURNS bigint
    LANGUAGE C IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'pgtrickle_row_id';

CREATE PROCEDURE pgtrickle.create_stream_table(
    name text,
    query text,
    schedule text DEFAULT NULL,
    refresh_mode text DEFAULT 'auto',
    cdc_mode text DEFAULT 'auto',
    initialize boolean DEFAULT true)
    LANGUAGE C AS 'MODULE_PATHNAME', 'pgtrickle_create_stream_table';

CREATE PROCEDURE pgtrickle.alter_stream_table(
    name text,
    query text DEFAULT NULL,
    schedule text DEFAULT NULL,
    refresh_mode text DEFAULT NULL,
    status text DEFAULT NULL)
    LANGUAGE C AS 'MODULE_PATHNAME', 'pgtrickle_alter_stream_table';

CREATE PROCEDURE pgtrickle.drop_stream_table(name text, "cascade" boolean DEFAULT false)
    LANGUAGE C AS 'MODULE_PATHNAME', 'pgtrickle_drop_stream_table';

CREATE PROCEDURE pgtrickle.refresh_stream_table(name text, "full" boolean DEFAULT false)
    LANGUAGE C AS 'MODULE_PATHNAME', 'pgtrickle_refresh_stream_table';

-- How a query would be maintained: {"mode","differential","reason","text","tree","storage","sources"};
-- "tree" lists the operators as {"depth", "node"} in display order (NULL when not differential).
CREATE FUNCTION pgtrickle.explain_stream_table(query text) RETURNS jsonb
    LANGUAGE C STRICT VOLATILE AS 'MODULE_PATHNAME', 'pgtrickle_explain_stream_table';

-- Changes buffered for a stream table and not yet applied to it.
CREATE FUNCTION pgtrickle.pending_changes(pgt_id bigint) RETURNS bigint
    LANGUAGE C STRICT STABLE AS 'MODULE_PATHNAME', 'pgtrickle_pending_changes';

-- Capture: each source gets pgtrickle_changes.pg_trickle_cdc_fn_<stable name>(), a C
-- trigger function; created through this helper because C functions need a superuser.
CREATE FUNCTION pgtrickle._create_capture_function(fname text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF fname !~ '^pg_trickle_cdc_fn_[0-9a-f]+$' THEN
        RAISE EXCEPTION 'invalid capture function name "%"', fname
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    EXECUTE format('CREATE OR REPLACE FUNCTION pgtrickle_changes.%I() RETURNS trigger LANGUAGE C AS %L, %L',
                   fname, '$libdir/pg_trickle', 'pgtrickle_capture');
END
$fn$;
REVOKE ALL ON FUNCTION pgtrickle._create_capture_function(text) FROM PUBLIC;

-- Scheduler.
CREATE FUNCTION pgtrickle.scheduler_pid() RETURNS integer
    LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'pgtrickle_scheduler_pid';
COMMENT ON FUNCTION pgtrickle.scheduler_pid() IS 'PID of this database''s pg_trickle scheduler, NULL when none runs';
CREATE FUNCTION pgtrickle.schedule_interval(schedule text) RETURNS interval
    LANGUAGE C STRICT STABLE AS 'MODULE_PATHNAME', 'pgtrickle_schedule_interval';

-- Event triggers: keep capture in step with source DDL, refuse DDL that would leave a stream
-- table silently stale.
CREATE FUNCTION pgtrickle.on_ddl_command_end() RETURNS event_trigger
    LANGUAGE C AS 'MODULE_PATHNAME', 'pgtrickle_on_ddl_command_end';
CREATE FUNCTION pgtrickle.on_sql_drop() RETURNS event_trigger
    LANGUAGE C AS 'MODULE_PATHNAME', 'pgtrickle_on_sql_drop';
CREATE EVENT TRIGGER pgtrickle_ddl_command_end ON ddl_command_end
    EXECUTE FUNCTION pgtrickle.on_ddl_command_end();
CREATE EVENT TRIGGER pgtrickle_sql_drop ON sql_drop
    EXECUTE FUNCTION pgtrickle.on_sql_drop();

--------------------------------------------------------------------------------------------
-- Status
--------------------------------------------------------------------------------------------

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
