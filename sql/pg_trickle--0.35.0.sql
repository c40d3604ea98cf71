-- pg_trickle 0.35.0: catalog and SQL API.
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
    UNIQUE (pgt_schema, pgt_name),
    -- 0.32.0
    st_placement      text NOT NULL DEFAULT 'local'
                      CHECK (st_placement IN ('local', 'reference', 'distributed')),
    -- 0.33.0
    output_distribution_column text,
    -- 0.35.0: settings that change query results (TimeZone, DateStyle, ...), recorded from
    -- the creating session; every refresh runs the query under them.
    refresh_settings  jsonb,
    -- 0.35.0: why needs_full_refresh was set (shown as the reason of that full refresh)
    full_refresh_reason text
);
COMMENT ON TABLE pgtrickle.pgt_stream_tables IS 'pg_trickle: one row per stream table';

-- Which sources each stream table reads.
CREATE TABLE pgtrickle.pgt_dependencies (
    pgt_id             bigint NOT NULL REFERENCES pgtrickle.pgt_stream_tables ON DELETE CASCADE,
    source_relid       regclass NOT NULL,
    source_stable_name text,
    source_placement   text NOT NULL DEFAULT 'local'
                       CHECK (source_placement IN ('local', 'reference', 'distributed')),
    PRIMARY KEY (pgt_id, source_relid)
);
COMMENT ON TABLE pgtrickle.pgt_dependencies IS 'pg_trickle: sources read by each stream table';

-- One row per captured source: its change buffer and how changes reach it.
CREATE TABLE pgtrickle.pgt_change_tracking (
    source_relid       regclass PRIMARY KEY,
    cdc_mode           text NOT NULL DEFAULT 'trigger' CHECK (cdc_mode IN ('trigger', 'wal')),
    created_at         timestamptz NOT NULL DEFAULT now(),
    buffer_sysid       text,                       -- cluster whose transactions the buffer rows belong to
    -- 0.32.0
    source_stable_name text UNIQUE,
    source_placement   text NOT NULL DEFAULT 'local'
                       CHECK (source_placement IN ('local', 'reference', 'distributed')),
    frontier_per_node  jsonb                       -- distributed sources: {"<node>": "<lsn>"}
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

-- Citus: per-node publication/slot of a WAL-captured (distributed or reference) source, and
-- how far the coordinator has consumed it (docs/citus.md).
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
    PRIMARY KEY (source_stable_name, worker_name, worker_port),
    -- 0.35.0
    worker_lsn         pg_lsn,                     -- the node's flushed WAL position at the last poll
    failing_since      timestamptz                 -- first failure of the current run of failures
);

-- Citus: cross-node refresh leases (advisory locks are node-local).
CREATE TABLE pgtrickle.pgt_st_locks (
    pgt_id      bigint PRIMARY KEY REFERENCES pgtrickle.pgt_stream_tables ON DELETE CASCADE,
    locked_by   text NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);

SELECT pg_catalog.pg_extension_config_dump('pgtrickle.pgt_stream_tables', '');
SELECT pg_catalog.pg_extension_config_dump('pgtrickle.pgt_stream_tables_pgt_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('pgtrickle.pgt_dependencies', '');
SELECT pg_catalog.pg_extension_config_dump('pgtrickle.pgt_change_tracking', '');
SELECT pg_catalog.pg_extension_config_dump('pgtrickle.pgt_worker_slots', '');

--------------------------------------------------------------------------------------------
-- Functions implemented in pg_trickle.so
--------------------------------------------------------------------------------------------

CREATE FUNCTION pgtrickle.source_stable_name(source oid) RETURNS text
    LANGUAGE C STRICT STABLE AS 'MODULE_PATHNAME', 'pgtrickle_source_stable_name';
COMMENT ON FUNCTION pgtrickle.source_stable_name(oid) IS
    'stable name of a source table: lower-hex XXH64 of database/schema.table; the stored one if the table is captured';

-- Row identity: a 64-bit xxHash over the values' equality-consistent hashes (each value under
-- its own collation, as GROUP BY compares it), NULL-aware.
CREATE FUNCTION pgtrickle.row_id(VARIADIC "any") RETURNS bigint
    LANGUAGE C IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'pgtrickle_row_id_own_collation';

-- Image identity (0.35.0): a 64-bit xxHash over the values' binary images, NULL-aware; equal
-- but differently spelled values ('alice', 'ALICE' under a case-insensitive collation; 1.0,
-- 1.00) hash apart. Delta consolidations group by it.
CREATE FUNCTION pgtrickle.row_image_id(VARIADIC "any") RETURNS bigint
    LANGUAGE C IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'pgtrickle_row_image_id';

CREATE PROCEDURE pgtrickle.create_stream_table(
    name text,
    query text,
    schedule text DEFAULT NULL,
    refresh_mode text DEFAULT 'auto',
    cdc_mode text DEFAULT 'auto',
    output_distribution_column text DEFAULT NULL,
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

-- Citus observability (columns as in the Citus guide, then slot health). Empty until
-- Citus sources exist.
CREATE VIEW pgtrickle.citus_status AS
SELECT st.pgt_schema,
       st.pgt_name,
       d.source_stable_name,
       d.source_placement,
       NULL::text AS coordinator_slot,
       ws.worker_name,
       ws.worker_port,
       ws.slot_name AS worker_slot,
       ws.worker_frontier,
       ws.last_polled_at,
       l.locked_by AS lease_holder,
       l.acquired_at AS lease_acquired_at,
       l.expires_at AS lease_expires_at,
       CASE WHEN l.pgt_id IS NULL THEN 'unlocked'
            WHEN l.expires_at < pg_catalog.now() THEN 'expired'
            ELSE 'locked' END AS lease_health,
       pg_catalog.pg_wal_lsn_diff(ws.worker_lsn, ws.worker_frontier) AS lag_bytes,
       ws.consecutive_failures,
       ws.failing_since,
       ws.last_error
  FROM pgtrickle.pgt_stream_tables st
  JOIN pgtrickle.pgt_dependencies d ON d.pgt_id = st.pgt_id
                                   AND d.source_placement IN ('distributed', 'reference')
  LEFT JOIN pgtrickle.pgt_worker_slots ws ON ws.source_stable_name = d.source_stable_name
  LEFT JOIN pgtrickle.pgt_st_locks l ON l.pgt_id = st.pgt_id;
COMMENT ON VIEW pgtrickle.citus_status IS 'pg_trickle: Citus sources, their slot on each node and its health';

-- Citus: drain the slots of a WAL-captured source (every one when NULL) into its change
-- buffer now, in this transaction (the scheduler does it every tick).
CREATE FUNCTION pgtrickle.poll_worker_slots(source regclass DEFAULT NULL)
    RETURNS TABLE (source_stable_name text, worker text, changes bigint, worker_frontier pg_lsn)
    LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'pgtrickle_poll_worker_slots';

-- Citus: make the slots of a WAL-captured source (every one when NULL) match the nodes that
-- capture it now: create missing ones, recreate lost ones, drop those of departed nodes.
CREATE FUNCTION pgtrickle.provision_worker_slots(source regclass DEFAULT NULL)
    RETURNS TABLE (source_stable_name text, worker_name text, worker_port integer,
                   slot_name text, action text)
    LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'pgtrickle_provision_worker_slots';

-- Citus: drop inactive pgtrickle_* slots of this database that no pgt_worker_slots row names.
CREATE FUNCTION pgtrickle.drop_orphan_worker_slots()
    RETURNS TABLE (worker_name text, worker_port integer, slot_name text)
    LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'pgtrickle_drop_orphan_worker_slots';
REVOKE ALL ON FUNCTION pgtrickle.poll_worker_slots(regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgtrickle.provision_worker_slots(regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgtrickle.drop_orphan_worker_slots() FROM PUBLIC;

-- pg_ripple VP promotion hook (seed 002): validates the pg_ripple.vp_promoted payload (every
-- field, by name) and reports whether the table is a captured source that is now a Citus
-- table. The WAL poller notices the new placement at its next tick and provisions the
-- source's slots on the workers; its stream tables go on (one full refresh, with the reason).
CREATE FUNCTION pgtrickle.handle_vp_promoted(payload text) RETURNS boolean
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    doc jsonb;
    rel regclass;
    src record;
    now_placement text := 'local';
    expected constant text := 'Expected {"table": "schema.name", "shard_count": 32, "shard_table_prefix": "schema.name_", "predicate_id": 42}.';
BEGIN
    BEGIN
        doc := payload::jsonb;
    EXCEPTION WHEN invalid_text_representation THEN
        RAISE EXCEPTION 'invalid vp_promoted payload: not JSON'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass the payload of the pg_ripple.vp_promoted notification unchanged.';
    END;
    IF jsonb_typeof(doc) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'invalid vp_promoted payload: not a JSON object'
            USING ERRCODE = 'invalid_parameter_value', HINT = expected;
    END IF;
    IF jsonb_typeof(doc->'table') IS DISTINCT FROM 'string' OR doc->>'table' = '' THEN
        RAISE EXCEPTION 'invalid vp_promoted payload: field "table" must be a non-empty string (got %)',
                        coalesce((doc->'table')::text, 'nothing')
            USING ERRCODE = 'invalid_parameter_value', HINT = expected;
    END IF;
    IF jsonb_typeof(doc->'shard_count') IS DISTINCT FROM 'number'
       OR (doc->>'shard_count') !~ '^[0-9]+$' OR (doc->>'shard_count')::numeric < 1 THEN
        RAISE EXCEPTION 'invalid vp_promoted payload: field "shard_count" must be a positive integer (got %)',
                        coalesce((doc->'shard_count')::text, 'nothing')
            USING ERRCODE = 'invalid_parameter_value', HINT = expected;
    END IF;
    IF jsonb_typeof(doc->'shard_table_prefix') IS DISTINCT FROM 'string' OR doc->>'shard_table_prefix' = '' THEN
        RAISE EXCEPTION 'invalid vp_promoted payload: field "shard_table_prefix" must be a non-empty string (got %)',
                        coalesce((doc->'shard_table_prefix')::text, 'nothing')
            USING ERRCODE = 'invalid_parameter_value', HINT = expected;
    END IF;
    IF jsonb_typeof(doc->'predicate_id') IS DISTINCT FROM 'number'
       OR (doc->>'predicate_id') !~ '^[0-9]+$' OR (doc->>'predicate_id')::numeric > 9223372036854775807 THEN
        RAISE EXCEPTION 'invalid vp_promoted payload: field "predicate_id" must be a non-negative integer (got %)',
                        coalesce((doc->'predicate_id')::text, 'nothing')
            USING ERRCODE = 'invalid_parameter_value', HINT = expected;
    END IF;
    BEGIN
        rel := to_regclass(doc->>'table');
    EXCEPTION WHEN invalid_name OR syntax_error OR feature_not_supported THEN
        rel := NULL;
    END;
    IF rel IS NULL THEN
        RAISE EXCEPTION 'invalid vp_promoted payload: field "table": relation "%" does not exist', doc->>'table'
            USING ERRCODE = 'undefined_table',
                  HINT = 'Names are resolved with search_path = pg_catalog, pg_temp: pass the schema-qualified name pg_ripple sends.';
    END IF;
    SELECT ct.cdc_mode, ct.source_placement INTO src
      FROM pgtrickle.pgt_change_tracking ct WHERE ct.source_relid = rel;
    IF NOT FOUND THEN
        RAISE LOG 'pg_trickle: vp_promoted for % (predicate %): not a captured source', rel, doc->>'predicate_id';
        RETURN false;
    END IF;
    IF to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
        EXECUTE 'SELECT CASE WHEN partmethod OPERATOR(pg_catalog.=) ''n'' THEN CASE WHEN repmodel OPERATOR(pg_catalog.=) ''t'' THEN ''reference'' ELSE ''local'' END ELSE ''distributed'' END FROM pg_catalog.pg_dist_partition WHERE logicalrelid OPERATOR(pg_catalog.=) $1'
           INTO now_placement USING rel;
        now_placement := coalesce(now_placement, 'local');
    END IF;
    IF src.cdc_mode = 'trigger' AND now_placement <> 'local' THEN
        RAISE EXCEPTION 'source % is captured by triggers and cannot be followed as a Citus % table', rel, now_placement
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Capture tables pg_ripple promotes through the WAL: create their stream tables with cdc_mode => ''wal''.';
    END IF;
    RAISE LOG 'pg_trickle: vp_promoted for % (predicate %, % shards): captured source, now %, recorded %',
              rel, doc->>'predicate_id', doc->>'shard_count', now_placement, src.source_placement;
    RETURN now_placement <> 'local';
END
$fn$;
