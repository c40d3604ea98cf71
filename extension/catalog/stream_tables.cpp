// The catalog layer: stream tables, their dependencies and refresh history. Every function
// runs as the extension's owner with search_path pinned (pg::AsExtensionOwner) and its SQL is
// schema-qualified (functions, operators, types).
#include "catalog/stream_tables.h"

#include "boundary/guard.h"
#include "boundary/pg.h"
#include "boundary/spi.h"
#include "catalog/generation.h"
#include "common/oids.h"
#include "core/json.h"
#include "core/sql_ident.h"

extern "C" {
#include "utils/errcodes.h"
}

namespace pgt::catalog {
namespace {

using detail::full_refresh_reason_set;

std::string text(int64_t v) {
    return std::to_string(v);
}

std::optional<int64_t> opt_ms(const spi::Value& v) {
    if (!v) {
        return std::nullopt;
    }
    return static_cast<int64_t>(std::stod(*v));
}

/// The columns read into a StreamTable, in the order `from_row` reads them.
std::string stream_table_columns() {
    return std::string(
               "pgt_id::pg_catalog.text, pgt_schema, pgt_name, "
               "pgt_relid::pg_catalog.oid::pg_catalog.text, "
               "query_view::pg_catalog.oid::pg_catalog.text, defining_query, schedule, "
               "refresh_mode, effective_mode, cdc_mode, storage_kind, status, "
               "needs_full_refresh::pg_catalog.text, ") +
           (has_full_refresh_reason() ? "full_refresh_reason" : "NULL::pg_catalog.text") +
           ", frontier::pg_catalog.text, " +
           (has_refresh_settings() ? "refresh_settings::pg_catalog.text"
                                   : "NULL::pg_catalog.text") +
           (has_st_placement() ? ", st_placement, output_distribution_column"
                               : ", 'local'::pg_catalog.text, NULL::pg_catalog.text");
}

StreamTable from_row(const spi::Row& r) {
    StreamTable st;
    st.id = std::stoll(*r[0]);
    st.schema = *r[1];
    st.name = *r[2];
    st.relid = oid_of(r[3]);
    st.query_view = oid_of(r[4]);
    st.defining_query = r[5].value_or("");
    st.schedule = r[6];
    st.refresh_mode = r[7].value_or("auto");
    st.effective_mode = r[8].value_or("full");
    st.cdc_mode = r[9].value_or("auto");
    st.storage_kind = r[10].value_or("rows");
    st.status = r[11].value_or("active");
    st.needs_full_refresh = r[12] == "true";
    st.full_refresh_reason = st.needs_full_refresh ? r[13] : std::nullopt;
    st.frontier = r[14];
    if (r[15]) {
        const json::Value doc = json::parse(*r[15]);
        if (doc.is_object()) {
            for (const auto& [name, value] : doc.as_object()) {
                if (value.is_string()) {
                    st.refresh_settings.emplace_back(name, value.as_string());
                }
            }
        }
    }
    st.placement = r[16].value_or("local");
    st.distribution_column = r[17];
    return st;
}

std::vector<StreamTable> stream_tables_where(const std::string& condition,
                                             const std::vector<spi::Value>& params,
                                             Snapshot snapshot = InvalidSnapshot) {
    const pg::AsExtensionOwner owner;
    std::vector<StreamTable> out;
    for (const auto& r : spi::exec_cached("SELECT " + stream_table_columns() +
                                              " FROM pgtrickle.pgt_stream_tables WHERE " +
                                              condition + " ORDER BY pgt_id",
                                          params, snapshot)
                             .rows) {
        out.push_back(from_row(r));
    }
    return out;
}

}  // namespace

std::string StreamTable::qualified_name() const {
    return sql::qualified(schema, name);
}

std::optional<StreamTable> stream_table(int64_t id, Snapshot snapshot) {
    auto found = stream_tables_where("pgt_id OPERATOR(pg_catalog.=) $1::pg_catalog.int8",
                                     {text(id)}, snapshot);
    if (found.empty()) {
        return std::nullopt;
    }
    return found.front();
}

std::optional<StreamTable> stream_table_of(Oid relid) {
    auto found = stream_tables_where(
        "pgt_relid::pg_catalog.oid OPERATOR(pg_catalog.=) $1::pg_catalog.oid", {oid_text(relid)});
    if (found.empty()) {
        return std::nullopt;
    }
    return found.front();
}

std::vector<StreamTable> differential_stream_tables() {
    return stream_tables_where("effective_mode OPERATOR(pg_catalog.=) 'differential'", {});
}

void set_placement(int64_t id, const std::string& placement,
                   const std::optional<std::string>& distribution_column) {
    if (!has_st_placement()) {
        return;
    }
    const pg::AsExtensionOwner owner;
    spi::run(
        "UPDATE pgtrickle.pgt_stream_tables SET st_placement = $2, output_distribution_column = "
        "$3 WHERE pgt_id OPERATOR(pg_catalog.=) $1::pg_catalog.int8",
        {text(id), placement, distribution_column});
}

int64_t next_stream_table_id() {
    const pg::AsExtensionOwner owner;
    return std::stoll(
        *spi::exec(
             "SELECT pg_catalog.nextval('pgtrickle.pgt_stream_tables_pgt_id_seq')::pg_catalog.text")
             .scalar());
}

void insert_stream_table(const NewStreamTable& st) {
    const pg::AsExtensionOwner owner;
    spi::run(
        "INSERT INTO pgtrickle.pgt_stream_tables (pgt_id, pgt_schema, pgt_name, pgt_relid, "
        "defining_query, query_view, schedule, refresh_mode, cdc_mode, storage_kind, status) "
        "VALUES ($1::pg_catalog.int8, $2, $3, $4::pg_catalog.regclass, $5, "
        "$6::pg_catalog.oid, $7, $8, $9, 'rows', $10)",
        {text(st.id), st.schema, st.name, sql::qualified(st.schema, st.name), st.defining_query,
         std::to_string(st.query_view),
         st.schedule && !st.schedule->empty() ? st.schedule : std::nullopt, st.refresh_mode,
         st.cdc_mode, std::string(st.initialize ? "initializing" : "active")});
}

void record_definition(int64_t id, const Definition& d) {
    const pg::AsExtensionOwner owner;
    const std::string sid = text(id);
    spi::run(
        "UPDATE pgtrickle.pgt_stream_tables SET defining_query = $2, query_view = "
        "$3::pg_catalog.oid, refresh_mode = $4, effective_mode = $5, mode_reason = $6, "
        "storage_kind = $7, frontier = NULL WHERE pgt_id OPERATOR(pg_catalog.=) "
        "$1::pg_catalog.int8",
        {sid, d.defining_query, std::to_string(d.query_view), d.refresh_mode,
         std::string(d.differential ? "differential" : "full"),
         d.differential ? std::nullopt : d.mode_reason, d.storage_kind});
    if (has_refresh_settings()) {
        // The settings that change what the query returns, as this session has them: every
        // refresh, manual or scheduled, runs the query under them.
        std::string names;
        for (int i = 0; i < kResultSettingCount; ++i) {
            names += std::string(i ? "," : "") + kResultSettings[i];
        }
        // search_path as the caller has it, not as this pinned scope does.
        spi::run(
            "UPDATE pgtrickle.pgt_stream_tables SET refresh_settings = (SELECT "
            "pg_catalog.jsonb_object_agg(n, CASE WHEN n OPERATOR(pg_catalog.=) 'search_path' "
            "THEN $3 ELSE pg_catalog.current_setting(n) END) FROM "
            "pg_catalog.unnest(pg_catalog.string_to_array($2, ',')) AS n) "
            "WHERE pgt_id OPERATOR(pg_catalog.=) $1::pg_catalog.int8",
            {sid, names, pg::caller_search_path()});
    }
    delete_dependencies(id);
    for (Oid rel : d.sources) {
        if (has_stable_names()) {
            const auto u = d.uncaptured.find(rel);
            spi::run(
                "INSERT INTO pgtrickle.pgt_dependencies (pgt_id, source_relid, source_stable_name, "
                "source_placement) SELECT $1::pg_catalog.int8, $2::pg_catalog.oid, "
                "COALESCE(ct.source_stable_name, $3), COALESCE(ct.source_placement, $4) FROM "
                "(SELECT) AS one LEFT JOIN pgtrickle.pgt_change_tracking ct ON "
                "ct.source_relid::pg_catalog.oid OPERATOR(pg_catalog.=) $2::pg_catalog.oid "
                "WHERE ct.source_relid IS NOT NULL OR $3 IS NOT NULL ON CONFLICT DO NOTHING",
                {sid, std::to_string(rel),
                 u == d.uncaptured.end() ? std::nullopt
                                         : std::optional<std::string>(u->second.first),
                 u == d.uncaptured.end() ? std::nullopt
                                         : std::optional<std::string>(u->second.second)});
        } else {
            spi::run(
                "INSERT INTO pgtrickle.pgt_dependencies (pgt_id, source_relid) VALUES "
                "($1::pg_catalog.int8, $2::pg_catalog.oid) ON CONFLICT DO NOTHING",
                {sid, std::to_string(rel)});
        }
    }
}

void set_storage_relation(int64_t id, const std::string& qualified_name) {
    const pg::AsExtensionOwner owner;
    spi::run(
        "UPDATE pgtrickle.pgt_stream_tables SET pgt_relid = $2::pg_catalog.regclass WHERE "
        "pgt_id OPERATOR(pg_catalog.=) $1::pg_catalog.int8",
        {text(id), qualified_name});
}

void set_schedule(int64_t id, const std::string& schedule) {
    const pg::AsExtensionOwner owner;
    spi::run(
        "UPDATE pgtrickle.pgt_stream_tables SET schedule = CASE WHEN $2 OPERATOR(pg_catalog.=) '' "
        "THEN NULL ELSE $2 END WHERE "
        "pgt_id OPERATOR(pg_catalog.=) $1::pg_catalog.int8",
        {text(id), schedule});
}

void set_status(int64_t id, const std::string& status) {
    const pg::AsExtensionOwner owner;
    const std::string resumed =
        "(status OPERATOR(pg_catalog.=) 'suspended' AND $2 OPERATOR(pg_catalog.=) 'active')";
    spi::run(
        "UPDATE pgtrickle.pgt_stream_tables SET status = $2, consecutive_errors = CASE WHEN $2 "
        "OPERATOR(pg_catalog.=) 'active' THEN 0 ELSE consecutive_errors END, last_error = CASE "
        "WHEN $2 OPERATOR(pg_catalog.=) 'active' THEN NULL ELSE last_error END, "
        // A suspended stream table let its sources' buffers be cleaned: it recomputes.
        "needs_full_refresh = needs_full_refresh OR " +
            resumed +
            (has_full_refresh_reason()
                 ? ", full_refresh_reason = CASE WHEN needs_full_refresh THEN "
                   "full_refresh_reason WHEN " +
                       resumed +
                       " THEN 'resumed after a suspension (its sources'' buffers may have "
                       "been cleaned)' END"
                 : std::string()) +
            " WHERE pgt_id OPERATOR(pg_catalog.=) $1::pg_catalog.int8",
        {text(id), status});
}

void maintain_by_full_refresh(int64_t id, const std::string& reason) {
    const pg::AsExtensionOwner owner;
    spi::run(
        "UPDATE pgtrickle.pgt_stream_tables SET effective_mode = 'full', mode_reason = $2, "
        "needs_full_refresh = true" +
            full_refresh_reason_set("$2") +
            " WHERE pgt_id OPERATOR(pg_catalog.=) $1::pg_catalog.int8",
        {text(id), reason});
}

std::vector<Oid> sources_read(int64_t id) {
    const pg::AsExtensionOwner owner;
    std::vector<Oid> out;
    for (const auto& r :
         spi::exec_cached("SELECT source_relid::pg_catalog.oid::pg_catalog.text FROM "
                          "pgtrickle.pgt_dependencies WHERE pgt_id OPERATOR(pg_catalog.=) "
                          "$1::pg_catalog.int8 ORDER BY 1",
                          {text(id)})
             .rows) {
        out.push_back(oid_of(r[0]));
    }
    return out;
}

std::vector<std::string> readers_of(Oid relid, int64_t except_id) {
    const pg::AsExtensionOwner owner;
    std::vector<std::string> out;
    for (const auto& r :
         spi::exec("SELECT pg_catalog.quote_ident(s.pgt_schema) OPERATOR(pg_catalog.||) '.' "
                   "OPERATOR(pg_catalog.||) pg_catalog.quote_ident(s.pgt_name) FROM "
                   "pgtrickle.pgt_dependencies d JOIN pgtrickle.pgt_stream_tables s ON s.pgt_id "
                   "OPERATOR(pg_catalog.=) d.pgt_id WHERE d.source_relid::pg_catalog.oid "
                   "OPERATOR(pg_catalog.=) $1::pg_catalog.oid AND s.pgt_id "
                   "OPERATOR(pg_catalog.<>) $2::pg_catalog.int8 ORDER BY 1",
                   {oid_text(relid), text(except_id)})
             .rows) {
        out.push_back(*r[0]);
    }
    return out;
}

std::vector<std::pair<int64_t, int64_t>> stream_table_edges() {
    const pg::AsExtensionOwner owner;
    std::vector<std::pair<int64_t, int64_t>> out;
    for (const auto& r :
         spi::exec_cached("SELECT up.pgt_id::pg_catalog.text, d.pgt_id::pg_catalog.text FROM "
                          "pgtrickle.pgt_dependencies d JOIN pgtrickle.pgt_stream_tables up ON "
                          "up.pgt_relid::pg_catalog.oid OPERATOR(pg_catalog.=) "
                          "d.source_relid::pg_catalog.oid")
             .rows) {
        out.emplace_back(std::stoll(*r[0]), std::stoll(*r[1]));
    }
    return out;
}

void delete_dependencies(int64_t id) {
    const pg::AsExtensionOwner owner;
    spi::run(
        "DELETE FROM pgtrickle.pgt_dependencies WHERE pgt_id OPERATOR(pg_catalog.=) "
        "$1::pg_catalog.int8",
        {text(id)});
}

void delete_stream_table(int64_t id) {
    const pg::AsExtensionOwner owner;
    spi::run(
        "DELETE FROM pgtrickle.pgt_stream_tables WHERE pgt_id OPERATOR(pg_catalog.=) "
        "$1::pg_catalog.int8",
        {text(id)});
}

std::vector<Scheduled> scheduled_stream_tables() {
    const pg::AsExtensionOwner owner;
    std::vector<Scheduled> out;
    for (const auto& r :
         spi::exec_cached(
             "SELECT pgt_id::pg_catalog.text, schedule, (pg_catalog.date_part('epoch', "
             "last_refresh_at) OPERATOR(pg_catalog.*) 1000)::pg_catalog.text, "
             "(pg_catalog.date_part('epoch', next_attempt_at) OPERATOR(pg_catalog.*) "
             "1000)::pg_catalog.text, status, (SELECT pg_catalog.array_agg(d.source_relid::"
             "pg_catalog.oid ORDER BY d.source_relid) FROM pgtrickle.pgt_dependencies d "
             "WHERE d.pgt_id OPERATOR(pg_catalog.=) s.pgt_id)::pg_catalog.text "
             "FROM pgtrickle.pgt_stream_tables s WHERE schedule IS NOT NULL AND status "
             "OPERATOR(pg_catalog.=) ANY ('{active,error,initializing}'::pg_catalog.text[]) "
             "ORDER BY pgt_id")
             .rows) {
        Scheduled st;
        st.id = std::stoll(*r[0]);
        st.schedule = *r[1];
        st.last_refresh_ms = opt_ms(r[2]);
        st.retry_at_ms = opt_ms(r[3]);
        st.status = *r[4];
        if (r[5] && r[5]->size() > 2) {
            // {16384,16390}
            const std::string list = r[5]->substr(1, r[5]->size() - 2);
            size_t at = 0;
            while (at < list.size()) {
                const size_t comma = list.find(',', at);
                st.sources.push_back(static_cast<Oid>(std::stoul(list.substr(at, comma - at))));
                at = comma == std::string::npos ? list.size() : comma + 1;
            }
        }
        out.push_back(std::move(st));
    }
    return out;
}

void store_refresh(int64_t id, const std::string& frontier, const std::string& mode, int64_t rows,
                   Snapshot snapshot) {
    const pg::AsExtensionOwner owner;
    spi::exec_cached(
        "UPDATE pgtrickle.pgt_stream_tables SET frontier = $2::pg_catalog.jsonb, "
        "needs_full_refresh = false, " +
            std::string(has_full_refresh_reason() ? "full_refresh_reason = NULL, " : "") +
            "next_attempt_at = NULL, last_refresh_at = pg_catalog.now(), last_refresh_mode = "
            "$3, last_refresh_rows = $4::pg_catalog.int8, last_error = NULL, "
            "consecutive_errors = 0, status = CASE WHEN status OPERATOR(pg_catalog.=) ANY "
            "('{initializing,error}'::pg_catalog.text[]) THEN 'active' ELSE status END "
            "WHERE pgt_id OPERATOR(pg_catalog.=) $1::pg_catalog.int8",
        {text(id), frontier, mode, text(rows)}, snapshot);
}

void mark_for_full_refresh(int64_t id, const std::string& reason) {
    const pg::AsExtensionOwner owner;
    spi::run("UPDATE pgtrickle.pgt_stream_tables SET needs_full_refresh = true" +
                 full_refresh_reason_set("$2") +
                 " WHERE pgt_id OPERATOR(pg_catalog.=) $1::pg_catalog.int8",
             {text(id), reason});
}

void mark_readers_for_full_refresh(const std::string& source_key, const std::string& reason) {
    const pg::AsExtensionOwner owner;
    spi::run("UPDATE pgtrickle.pgt_stream_tables st SET needs_full_refresh = true" +
                 full_refresh_reason_set("$2") +
                 " FROM pgtrickle.pgt_dependencies d JOIN pgtrickle.pgt_change_tracking ct ON "
                 "ct.source_relid::pg_catalog.oid OPERATOR(pg_catalog.=) "
                 "d.source_relid::pg_catalog.oid WHERE d.pgt_id OPERATOR(pg_catalog.=) "
                 "st.pgt_id AND " +
                 detail::source_key_sql("ct") + " OPERATOR(pg_catalog.=) $1",
             {source_key, reason});
}

std::optional<int> record_refresh_failure(int64_t id, const std::string& message, bool of_the_query,
                                          int max_errors) {
    const pg::AsExtensionOwner owner;
    // A failure of the query counts toward suspension and is retried as a full refresh (a
    // differential one might fail the same way); another one (a node, a slot) is retried as
    // it was: nothing was applied, the frontier did not move.
    auto n = spi::exec(
        std::string("UPDATE pgtrickle.pgt_stream_tables SET consecutive_errors = "
                    "consecutive_errors OPERATOR(pg_catalog.+) 1, last_error = $2") +
            (of_the_query ? ", needs_full_refresh = true" +
                                full_refresh_reason_set("'the previous refresh failed'") +
                                ", status = CASE WHEN consecutive_errors OPERATOR(pg_catalog.+) "
                                "1 OPERATOR(pg_catalog.>=) $3::pg_catalog.int4 THEN 'suspended' "
                                "ELSE 'error' END"
                          : std::string(", status = 'error'")) +
            " WHERE pgt_id OPERATOR(pg_catalog.=) $1::pg_catalog.int8 AND status "
            "OPERATOR(pg_catalog.<>) 'suspended' RETURNING consecutive_errors::pg_catalog.text, "
            "status",
        {text(id), message, std::to_string(max_errors)});
    if (!n.scalar() || n.rows[0][1] == "suspended") {
        return std::nullopt;
    }
    return std::stoi(*n.scalar());
}

void set_retry_delay(int64_t id, int64_t delay_ms) {
    const pg::AsExtensionOwner owner;
    spi::run(
        "UPDATE pgtrickle.pgt_stream_tables SET next_attempt_at = pg_catalog.now() "
        "OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => $2::pg_catalog.float8 "
        "OPERATOR(pg_catalog./) 1000) WHERE pgt_id OPERATOR(pg_catalog.=) $1::pg_catalog.int8",
        {text(id), text(delay_ms)});
}

// ---- history ---------------------------------------------------------------------------

void record_history(int64_t id, const std::string& started_at, const std::string& mode,
                    int64_t rows, const std::optional<std::string>& reason,
                    const std::string& trigger, int keep, Snapshot snapshot) {
    const pg::AsExtensionOwner owner;
    spi::exec_cached(
        "INSERT INTO pgtrickle.pgt_refresh_history (pgt_id, started_at, finished_at, mode, "
        "rows_changed, reason, trigger) VALUES ($1::pg_catalog.int8, "
        "$2::pg_catalog.timestamptz, pg_catalog.clock_timestamp(), $3, $4::pg_catalog.int8, $5, "
        "$6)",
        {text(id), started_at, mode, text(rows), reason, trigger}, snapshot);
    spi::exec_cached(
        "DELETE FROM pgtrickle.pgt_refresh_history WHERE pgt_id OPERATOR(pg_catalog.=) "
        "$1::pg_catalog.int8 AND history_id OPERATOR(pg_catalog.<=) (SELECT history_id FROM "
        "pgtrickle.pgt_refresh_history WHERE pgt_id OPERATOR(pg_catalog.=) $1::pg_catalog.int8 "
        "ORDER BY history_id DESC OFFSET $2::pg_catalog.int4 LIMIT 1)",
        {text(id), std::to_string(keep)}, snapshot);
}

void record_failed_history(int64_t id, const std::string& started_at, const std::string& error,
                           const std::string& trigger) {
    const pg::AsExtensionOwner owner;
    spi::run(
        "INSERT INTO pgtrickle.pgt_refresh_history (pgt_id, started_at, finished_at, mode, "
        "error, trigger) VALUES ($1::pg_catalog.int8, $2::pg_catalog.timestamptz, "
        "pg_catalog.clock_timestamp(), 'failed', $3, $4)",
        {text(id), started_at, error, trigger});
}

void mark_interrupted_history() {
    const pg::AsExtensionOwner owner;
    spi::run(
        "UPDATE pgtrickle.pgt_refresh_history SET finished_at = pg_catalog.now(), mode = "
        "'failed', error = 'interrupted: the scheduler stopped during this refresh' WHERE "
        "finished_at IS NULL");
}

// ---- event triggers --------------------------------------------------------------------

std::optional<std::pair<std::string, std::string>> stream_table_on_replaced_view() {
    const pg::AsExtensionOwner owner;
    auto hit = spi::exec(
        "WITH RECURSIVE replaced(oid) AS (SELECT c.objid FROM "
        "pg_catalog.pg_event_trigger_ddl_commands() c WHERE c.command_tag OPERATOR(pg_catalog.=) "
        "'CREATE VIEW' AND c.classid OPERATOR(pg_catalog.=) "
        "'pg_catalog.pg_class'::pg_catalog.regclass), "
        "readers(oid, via) AS (SELECT oid, oid FROM replaced UNION SELECT r.ev_class, rd.via "
        "FROM readers rd JOIN pg_catalog.pg_depend d ON d.refclassid OPERATOR(pg_catalog.=) "
        "'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid OPERATOR(pg_catalog.=) rd.oid "
        "AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass JOIN "
        "pg_catalog.pg_rewrite r ON r.oid OPERATOR(pg_catalog.=) d.objid WHERE r.ev_class "
        "OPERATOR(pg_catalog.<>) rd.oid) "
        "SELECT st.pgt_schema OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) st.pgt_name, "
        "rd.via::pg_catalog.regclass::pg_catalog.text FROM readers rd JOIN "
        "pgtrickle.pgt_stream_tables st ON st.query_view::pg_catalog.oid "
        "OPERATOR(pg_catalog.=) rd.oid ORDER BY 1 LIMIT 1");
    if (hit.rows.empty()) {
        return std::nullopt;
    }
    return std::make_pair(*hit.rows[0][0], *hit.rows[0][1]);
}

void follow_rename(Oid relid) {
    const pg::AsExtensionOwner owner;
    spi::run(
        "UPDATE pgtrickle.pgt_stream_tables SET pgt_schema = n.nspname, pgt_name = c.relname "
        "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid "
        "OPERATOR(pg_catalog.=) c.relnamespace WHERE c.oid OPERATOR(pg_catalog.=) "
        "$1::pg_catalog.oid AND pgt_relid::pg_catalog.oid OPERATOR(pg_catalog.=) c.oid AND "
        "(pgt_schema OPERATOR(pg_catalog.<>) n.nspname::pg_catalog.text OR pgt_name "
        "OPERATOR(pg_catalog.<>) c.relname::pg_catalog.text)",
        {oid_text(relid)});
}

std::optional<DroppedPart> stream_table_part_dropped() {
    const pg::AsExtensionOwner owner;
    auto hit = spi::exec(
        "SELECT st.pgt_schema OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) st.pgt_name, "
        "o.object_type, o.object_identity FROM pg_catalog.pg_event_trigger_dropped_objects() o "
        "JOIN pgtrickle.pgt_stream_tables st ON o.objid OPERATOR(pg_catalog.=) "
        "st.pgt_relid::pg_catalog.oid OR o.objid OPERATOR(pg_catalog.=) "
        "st.query_view::pg_catalog.oid WHERE o.classid OPERATOR(pg_catalog.=) "
        "'pg_catalog.pg_class'::pg_catalog.regclass ORDER BY 1 LIMIT 1");
    if (hit.rows.empty()) {
        return std::nullopt;
    }
    return DroppedPart{*hit.rows[0][0], *hit.rows[0][1], *hit.rows[0][2]};
}

}  // namespace pgt::catalog
