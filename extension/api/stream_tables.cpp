// SQL API: create/alter/drop/refresh/explain of stream tables, and small catalog helpers.
#include <algorithm>
#include <set>
#include <sstream>

#include "capture/capture.h"
#include "capture/state_copy.h"
#include "capture/wal.h"
#include "catalog/generation.h"
#include "catalog/sources.h"
#include "catalog/stream_tables.h"
#include "citus/citus.h"
#include "common/oids.h"
#include "core/delta_sql.h"
#include "core/frontier.h"
#include "core/schedule.h"
#include "core/scheduling.h"
#include "core/stable_name.h"
#include "core/sql_ident.h"
#include "boundary/guard.h"
#include "boundary/pg.h"
#include "refresh/refresh.h"
#include "scheduler/scheduler.h"
#include "settings.h"
#include "boundary/spi.h"
#include "api/state.h"

extern "C" {
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "parser/analyze.h"
#include "parser/parser.h"
#include "rewrite/rewriteHandler.h"
#include "utils/builtins.h"
#include "utils/errcodes.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/regproc.h"
#include "utils/timestamp.h"
}

namespace pgt {
namespace {

using sql::qualified;
using sql::quote_ident;
using sql::quote_literal;

std::string text_arg(FunctionCallInfo fcinfo, int i) {
    return pg::text_arg(fcinfo, i);
}

std::optional<std::string> opt_text_arg(FunctionCallInfo fcinfo, int i) {
    if (PG_ARGISNULL(i)) {
        return std::nullopt;
    }
    return text_arg(fcinfo, i);
}

void require(bool ok, int code, const std::string& msg, const std::string& hint = {}) {
    if (!ok) {
        throw Error(code, msg, {}, hint);
    }
}

void check_one_of(const std::string& what, const std::string& v,
                  std::initializer_list<const char*> allowed) {
    std::string list;
    for (const char* a : allowed) {
        if (v == a) {
            return;
        }
        list += std::string(list.empty() ? "" : ", ") + "'" + a + "'";
    }
    throw Error(ERRCODE_INVALID_PARAMETER_VALUE, "invalid " + what + " \"" + v + "\"", {},
                "Use one of " + list + ".");
}

/// A schedule without the preloaded scheduler would never run: refused.
void require_scheduler_for(const std::optional<std::string>& schedule) {
    if (schedule && !schedule->empty() && !scheduler::preloaded()) {
        throw Error(
            ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "pg_trickle is not loaded through shared_preload_libraries: a schedule would never run",
            "The scheduler is a background worker started by the postmaster.",
            "Add pg_trickle to shared_preload_libraries and restart the server, or omit the "
            "schedule and call pgtrickle.refresh_stream_table yourself.");
    }
}

void check_schedule(const std::optional<std::string>& s) {
    if (!s || s->empty()) {
        return;
    }
    if (auto err = parse_schedule(*s).error) {
        throw Error(ERRCODE_INVALID_PARAMETER_VALUE, "invalid schedule \"" + *s + "\": " + *err, {},
                    "Use a duration such as '30s', '5m' or '1h30m', or a cron expression such as "
                    "'*/5 * * * *' or '@hourly'.");
    }
}

/// Parse a SELECT into an analyzed Query (for explain), refusing anything else.
Query* analyze_select(const std::string& text) {
    Query* q = nullptr;
    bool not_select = false;
    int count = 0;
    pg_call([&]() noexcept {
        List* raw = raw_parser(text.c_str(), RAW_PARSE_DEFAULT);
        count = list_length(raw);
        if (count != 1) {
            return;
        }
        auto* rs = static_cast<RawStmt*>(linitial(raw));
        if (!IsA(rs->stmt, SelectStmt)) {
            not_select = true;
            return;
        }
        q = parse_analyze_fixedparams(rs, text.c_str(), nullptr, 0, nullptr);
    });
    require(count == 1 && !not_select, ERRCODE_WRONG_OBJECT_TYPE,
            "the defining query must be exactly one SELECT statement",
            "Pass a single SELECT (no trailing statements, no INSERT/UPDATE/DELETE).");
    return q;
}

struct QualifiedName {
    std::string schema, name;
    Oid nsp = InvalidOid;
};

QualifiedName creation_name(const std::string& name) {
    QualifiedName out;
    char* nsp_name = nullptr;
    char* rel = nullptr;
    pg_call([&]() noexcept {
        RangeVar* rv = makeRangeVarFromNameList(stringToQualifiedNameList(name.c_str()));
        out.nsp = RangeVarGetCreationNamespace(rv);
        nsp_name = get_namespace_name(out.nsp);
        rel = rv->relname;
    });
    out.schema = nsp_name;
    out.name = rel;
    return out;
}

/// The relation named `name` (qualified, or found through the caller's search_path: call it
/// before entering a pinned scope), or InvalidOid.
Oid relation_named(const std::string& name) {
    Oid relid = InvalidOid;
    pg_call([&]() noexcept {
        RangeVar* rv = makeRangeVarFromNameList(stringToQualifiedNameList(name.c_str()));
        relid = RangeVarGetRelid(rv, NoLock, true);
    });
    return relid;
}

/// The stream table stored in `relid` (relation_named(name)); `name` for the error.
catalog::StreamTable find_stream_table(Oid relid, const std::string& name) {
    std::optional<catalog::StreamTable> st;
    if (OidIsValid(relid)) {
        st = catalog::stream_table_of(relid);
    }
    if (!st) {
        throw Error(ERRCODE_UNDEFINED_TABLE, "stream table \"" + name + "\" does not exist", {},
                    "List stream tables with: SELECT pgt_schema, pgt_name FROM "
                    "pgtrickle.pgt_stream_tables;");
    }
    return *st;
}

/// Stream tables are owned like tables: only their owner (or a member of the owning
/// role, or a superuser) may alter, refresh or drop them.
void require_owner(const catalog::StreamTable& st, Oid caller, const char* action) {
    if (!pg::owns_relation(st.relid, caller)) {
        throw Error(ERRCODE_INSUFFICIENT_PRIVILEGE,
                    std::string("must be owner of stream table ") + st.schema + "." + st.name +
                        " to " + action,
                    {},
                    "Run it as the stream table's owner (" +
                        pg::role_name(pg::relation_owner(st.relid)) + ").");
    }
}

/// Nobody builds a stream table over data they cannot read: run the query as the caller,
/// for its permission checks only (LIMIT 0).
void require_can_read(const std::string& query) {
    const pg::CallerSearchPath callers_own_sql;
    // On one connection per node: a transaction that read Citus placements over several
    // connections may not create a reference table next to them (docs/citus.md, "Storage
    // placement"), and LIMIT 0 reads next to nothing anyway.
    pg::SettingsScope sequential;
    if (citus::loaded()) {
        sequential.set("citus.multi_shard_modify_mode", "sequential");
    }
    spi::run("SELECT FROM (" + query + ") AS \"__pgt_permission_check\" LIMIT 0");
}

/// Whether a stream table of `query` in `refresh_mode` will be maintained differentially
/// (what define decides; read-only, so it can be asked before the slots are made).
bool will_be_differential(Query* query, const std::string& refresh_mode) {
    return refresh_mode != "full" && analyze_for_mode(query, refresh_mode, {}).differential;
}

/// Hand the stream table's view and storage to its owner and let the owner read the change
/// buffers of its sources (refreshes run as the owner; see docs/security.md).
void give_to_owner(int64_t id, const std::string& storage, const std::vector<Oid>& sources,
                   Oid owner) {
    const std::string role = quote_ident(pg::role_name(owner));
    spi::run("ALTER VIEW pgtrickle." + quote_ident("pgt_query_" + std::to_string(id)) +
             " OWNER TO " + role);
    spi::run("ALTER TABLE " + storage + " OWNER TO " + role);
    spi::run("GRANT USAGE ON SCHEMA pgtrickle_changes TO " + role);
    for (Oid rel : sources) {
        if (!catalog::source(rel)) {
            continue;  // not captured (a Citus source of a stream table kept by full refresh)
        }
        const SourceNames names = capture::resolve(rel);
        spi::run("GRANT SELECT ON " + names.buffer + " TO " + role);
        if (!names.state.empty()) {
            spi::run("GRANT SELECT ON " + names.state + " TO " + role);
        }
    }
}

std::vector<ivm::Column> view_columns(Oid view) {
    std::vector<ivm::Column> cols;
    const pg::OpenRelation rel(view, AccessShareLock);
    TupleDesc td = RelationGetDescr(rel.get());
    for (int i = 0; i < td->natts; ++i) {
        Form_pg_attribute a = TupleDescAttr(td, i);
        std::string type = pg::type_name(a->atttypid, a->atttypmod);
        if (OidIsValid(a->attcollation) && a->attcollation != DEFAULT_COLLATION_OID) {
            type += " COLLATE " + pg::collation_name(a->attcollation);
        }
        cols.push_back({NameStr(a->attname), type});
    }
    for (const auto& c : cols) {
        if (c.name.rfind("__pgt_", 0) == 0) {
            throw Error(ERRCODE_RESERVED_NAME, "column name \"" + c.name + "\" is reserved",
                        "Columns starting with __pgt_ are pg_trickle's hidden columns.",
                        "Rename the column in the query.");
        }
    }
    return cols;
}

Query* view_query(Oid view) {
    return pg::view_query(view);
}

Oid regclass_oid(const std::string& qualified_name) {
    auto r = spi::exec("SELECT $1::pg_catalog.regclass::pg_catalog.oid::pg_catalog.text",
                       {qualified_name});
    return oid_of(r.scalar());
}

/// Create the defining view, analyze it, capture sources and create the storage table.
/// Returns the analysis. The catalog row must exist already (pgt_id reserved).
struct Defined {
    Analysis analysis;
    Oid view = InvalidOid;
    std::vector<ivm::Column> columns;
};

/// The source that the stream table's output column `column` is the distribution column of
/// (a plain reference to it in the defining query's select list), to co-locate with.
std::optional<Oid> colocation_source(Oid view, const std::string& column) {
    Query* q = pg::view_query(view);
    ListCell* lc;
    foreach (lc, q->targetList) {
        auto* tle = static_cast<TargetEntry*>(lfirst(lc));
        if (tle->resjunk || tle->resname == nullptr || column != tle->resname ||
            !IsA(tle->expr, Var)) {
            continue;
        }
        const auto* var = reinterpret_cast<const Var*>(tle->expr);
        if (var->varlevelsup != 0 || var->varno < 1 ||
            var->varno > static_cast<int>(list_length(q->rtable))) {
            return std::nullopt;
        }
        const auto* rte = static_cast<const RangeTblEntry*>(list_nth(q->rtable, var->varno - 1));
        if (rte->rtekind != RTE_RELATION) {
            return std::nullopt;
        }
        const citus::Placement p = citus::placement_of(rte->relid);
        const std::optional<std::string> att = pg::attribute_name(rte->relid, var->varattno);
        if (p.kind == citus::Placement::Kind::distributed && att && *att == p.distribution_column) {
            return rte->relid;
        }
        return std::nullopt;
    }
    return std::nullopt;
}

/// Make the storage of stream table `id` a Citus reference table (`column` empty) or a table
/// distributed by `column` (co-located with the source whose distribution column it is),
/// and record it. Rows already in it (the initial population) move to the shards.
void place_storage(int64_t id, Oid view, const std::string& storage, const std::string& kind,
                   const std::optional<std::string>& column) {
    pg::SettingsScope quiet;
    quiet.set("client_min_messages", "warning");  // Citus's notices about copying the rows
    // As the storage's owner, who fills and refreshes it: Citus refuses a transaction's
    // access to placements that another user's connections modified in it. Nothing runs
    // with more than the owner's own rights (the colocation source is only named).
    const pg::AsUser as_owner(pg::relation_owner(regclass_oid(storage)), /*restricted=*/false);
    if (kind == "reference") {
        spi::run("SELECT pg_catalog.create_reference_table($1::pg_catalog.regclass)", {storage});
    } else {
        // By the row identity: nothing is co-located with it (and a group of its own keeps
        // Citus from refusing the DDL after this transaction read a co-located table).
        const auto source =
            *column == "__pgt_row_id" ? std::nullopt : colocation_source(view, *column);
        std::string colocate = *column == "__pgt_row_id" ? "none" : "default";
        if (source) {
            colocate = qualified(pg::namespace_name(pg::rel_namespace(*source)).value_or(""),
                                 pg::rel_name(*source).value_or(""));
        }
        spi::run(
            "SELECT pg_catalog.create_distributed_table($1::pg_catalog.regclass, $2, "
            "colocate_with => $3)",
            {storage, *column, colocate});
    }
    spi::run(
        "SELECT pg_catalog.truncate_local_data_after_distributing_table($1::pg_catalog."
        "regclass)",
        {storage});
    catalog::set_placement(id, kind, column);
}

/// Whether create_stream_table chooses the storage's placement itself (docs/citus.md
/// "Placement"): pg_trickle.citus_st_placement is 'auto' and a source is distributed.
bool automatic_placement(const std::vector<Oid>& sources) {
    if (settings::citus_st_placement != static_cast<int>(settings::StPlacement::automatic) ||
        !catalog::has_st_placement() || !citus::loaded()) {
        return false;
    }
    return std::any_of(sources.begin(), sources.end(), [](Oid rel) {
        return citus::placement_of(rel).kind == citus::Placement::Kind::distributed;
    });
}

/// The storage column `distribution_column` (output_distribution_column) must be for the
/// layout: "__pgt_row_id" (the row identity) or an output column; for the groups layout a
/// column the groups are keyed by, which a refresh never updates in place (Citus refuses to
/// change a row's distribution value).
void check_distribution_column(const Defined& d, const std::string& column) {
    if (column == "__pgt_row_id") {
        return;
    }
    std::string names;
    bool found = false;
    for (const auto& c : d.columns) {
        names += (names.empty() ? "" : ", ") + c.name;
        found = found || c.name == column;
    }
    require(found, ERRCODE_UNDEFINED_COLUMN,
            "output_distribution_column \"" + column + "\" is not a column of the stream table",
            "Name one of its columns (" + names +
                "), or __pgt_row_id to distribute it by its row identity.");
    if (d.analysis.layout.kind != ivm::StorageKind::groups) {
        return;
    }
    std::string keys;
    for (const auto& t : d.analysis.translation.plan->block.targets) {
        if (t.kind == ivm::Target::Kind::group_key) {
            if (t.column.name == column) {
                return;
            }
            keys += (keys.empty() ? "" : ", ") + t.column.name;
        }
    }
    throw Error(ERRCODE_INVALID_PARAMETER_VALUE,
                "output_distribution_column \"" + column +
                    "\" is not a grouping column of the stream table",
                "A refresh updates the other columns of a group in place, and Citus never moves "
                "a row to another shard.",
                keys.empty() ? std::string("Use __pgt_row_id (the row identity).")
                             : "Use one of its grouping columns (" + keys +
                                   ") or __pgt_row_id (the row identity).");
}

Defined define(int64_t id, const std::string& schema, const std::string& name,
               const std::string& query, const std::string& refresh_mode, Oid owner,
               const std::optional<std::string>& distribution_column = std::nullopt) {
    Defined d;
    const std::string view = "pgtrickle." + quote_ident("pgt_query_" + std::to_string(id));
    {
        // The caller's query, parsed with the caller's search_path (its names mean what the
        // caller wrote); parse analysis only, nothing of it runs here.
        const pg::CallerSearchPath callers_own_sql;
        (void)analyze_select(query);  // one SELECT, or a clear error before CREATE VIEW sees it
        // The view is pg_trickle's, on this node only: Citus need not propagate it (and
        // warns when it reads local tables).
        pg::SettingsScope scope;
        if (citus::loaded()) {
            scope.set("citus.enable_ddl_propagation", "off");
        }
        spi::run("CREATE VIEW " + view + " AS " + query);
    }
    d.view = regclass_oid(view);
    spi::run("COMMENT ON VIEW " + view + " IS " +
             quote_literal("pg_trickle: defining query of " + schema + "." + name));
    d.columns = view_columns(d.view);
    d.analysis = analyze_for_mode(view_query(d.view), refresh_mode, d.columns);
    if (d.analysis.differential) {
        if (auto why = capture::only_limitation(d.view)) {
            d.analysis.differential = false;
            d.analysis.reason = "not differentiable: " + *why;
            d.analysis.layout = ivm::full_layout(d.columns);
            d.analysis.translation.unsupported = *why;
        }
    }
    if (d.analysis.differential) {
        // Buffer rows carry no policy: where row-level security filters what the owner
        // reads, only re-running the query applies it.
        for (Oid rel : d.analysis.translation.relations) {
            if (pg::rls_applies(rel, owner)) {
                d.analysis.differential = false;
                d.analysis.translation.unsupported = "row-level security applies to source " +
                                                     pg::rel_name(rel).value_or("?") +
                                                     " for the owner";
                d.analysis.reason = d.analysis.translation.unsupported;
                d.analysis.layout = ivm::full_layout(d.columns);
                break;
            }
        }
    }
    if (refresh_mode == "differential" && !d.analysis.differential) {
        throw Error(
            ERRCODE_FEATURE_NOT_SUPPORTED,
            "query cannot be maintained differentially: " + d.analysis.translation.unsupported,
            "refresh_mode 'differential' requires every construct of the query to be "
            "differentiable.",
            "Use refresh_mode => 'auto' to maintain it by full refresh, or rewrite the query.");
    }
    if (distribution_column) {
        check_distribution_column(d, *distribution_column);
    }
    for (Oid rel : d.analysis.translation.relations) {
        if (!d.analysis.differential && capture::wal::wants_wal(rel) && !catalog::source(rel)) {
            // Maintained by full refresh: a Citus source is not captured for it (no slot for
            // the poller to drain every tick); it is recomputed every time instead.
            continue;
        }
        capture::ensure_source(rel);
    }
    for (Oid rel : d.analysis.state_copies) {
        ensure_copy(rel, d.analysis.copy_keys);  // filled by the first refresh
    }

    std::string cols;
    for (const auto& c : d.columns) {
        cols += (cols.empty() ? "" : ", ") + quote_ident(c.name) + " " + c.type;
    }
    for (const auto& h : d.analysis.layout.hidden) {
        cols += ", " + quote_ident(h.name) + " " + h.type + " NOT NULL";
    }
    const std::string storage = qualified(schema, name);
    // Groups are updated in place at every refresh: leave room on each page so that those
    // updates stay HOT (the only index is on __pgt_row_id, which never changes).
    spi::run("CREATE TABLE " + storage + " (" + cols + ")" +
             (d.analysis.layout.kind == ivm::StorageKind::groups ? " WITH (fillfactor = 80)" : ""));
    // A group is identified by its row id; storage distributed by one of its grouping
    // columns is identified by both (Citus requires unique indexes to include it).
    const bool keyed_by_column = distribution_column && *distribution_column != "__pgt_row_id" &&
                                 d.analysis.layout.kind == ivm::StorageKind::groups;
    spi::run(std::string(d.analysis.layout.kind == ivm::StorageKind::groups ? "CREATE UNIQUE INDEX"
                                                                            : "CREATE INDEX") +
             " ON " + storage + " (" +
             (keyed_by_column ? quote_ident(*distribution_column) + ", " : std::string()) +
             "\"__pgt_row_id\")");
    spi::run("COMMENT ON TABLE " + storage + " IS " +
             quote_literal("pg_trickle stream table (maintained; do not write to it)"));
    return d;
}

void record_definition(int64_t id, const Defined& d, const std::string& query,
                       const std::string& refresh_mode) {
    catalog::Definition def;
    def.defining_query = query;
    def.query_view = d.view;
    def.refresh_mode = refresh_mode;
    def.differential = d.analysis.differential;
    def.mode_reason = d.analysis.reason;
    def.storage_kind = d.analysis.layout.kind == ivm::StorageKind::groups ? "groups" : "rows";
    def.sources = d.analysis.translation.relations;
    for (Oid rel : def.sources) {
        if (!catalog::source(rel)) {
            def.uncaptured[rel] = {capture::stable_name_of(rel), citus::placement_of(rel).name()};
        }
    }
    catalog::record_definition(id, def);
}

/// Remove the view, storage and catalog rows of `st`; release sources nobody reads any more
/// (except those in `keep`, which the stream table's new definition reads).
void undefine(const catalog::StreamTable& st, bool drop_storage,
              const std::vector<Oid>& keep = {}) {
    DroppingGuard guard;
    const std::vector<Oid> sources = catalog::sources_read(st.id);
    spi::run("DROP VIEW IF EXISTS pgtrickle." + quote_ident("pgt_query_" + std::to_string(st.id)));
    if (drop_storage) {
        spi::run("DROP TABLE IF EXISTS " + st.qualified_name());
    }
    catalog::delete_dependencies(st.id);
    for (const Oid relid : sources) {
        if (std::find(keep.begin(), keep.end(), relid) == keep.end()) {
            capture::drop_source_if_unused(relid);
        }
    }
}

void drop_recursive(const catalog::StreamTable& st, bool cascade, std::set<int64_t>& seen) {
    if (!seen.insert(st.id).second) {
        return;
    }
    const auto deps = catalog::readers_of(st.relid, st.id);
    if (!deps.empty() && !cascade) {
        std::string list;
        for (const auto& d : deps) {
            list += (list.empty() ? "" : ", ") + d;
        }
        throw Error(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
                    "cannot drop stream table \"" + st.schema + "." + st.name +
                        "\" because other stream tables depend on it",
                    "Stream tables reading it: " + list + ".",
                    "Drop those first, or call drop_stream_table(..., cascade => true).");
    }
    for (const auto& d : deps) {
        drop_recursive(find_stream_table(regclass_oid(d), d), true, seen);
    }
    undefine(st, true);
    catalog::delete_stream_table(st.id);
}

}  // namespace
}  // namespace pgt

using namespace pgt;

// CALL pgtrickle.create_stream_table(name, query, schedule, refresh_mode, cdc_mode,
//                                    output_distribution_column, initialize)
PGT_FUNCTION(pgtrickle_create_stream_table) {
    require(!PG_ARGISNULL(0) && !PG_ARGISNULL(1), ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "name and query must not be NULL");
    const std::string name = text_arg(fcinfo, 0);
    const std::string query = text_arg(fcinfo, 1);
    const auto schedule = opt_text_arg(fcinfo, 2);
    const std::string refresh_mode = PG_ARGISNULL(3) ? "auto" : text_arg(fcinfo, 3);
    const std::string cdc_mode = PG_ARGISNULL(4) ? "auto" : text_arg(fcinfo, 4);
    // Catalogs before 0.33.0 declare the procedure without output_distribution_column.
    const bool has_odc_arg = PG_NARGS() >= 7;
    const int init_arg = has_odc_arg ? 6 : 5;
    const bool initialize = PG_ARGISNULL(init_arg) ? true : PG_GETARG_BOOL(init_arg);
    check_one_of("refresh_mode", refresh_mode, {"auto", "differential", "full"});
    check_one_of("cdc_mode", cdc_mode, {"auto", "trigger", "wal"});
    const std::optional<std::string> distribution_column =
        has_odc_arg ? opt_text_arg(fcinfo, 5) : std::nullopt;
    if (distribution_column) {
        if (!citus::loaded()) {
            throw Error(ERRCODE_FEATURE_NOT_SUPPORTED, "output_distribution_column needs Citus",
                        "The stream table's storage would be a Citus distributed table, and the "
                        "citus extension is not installed in this database.",
                        "Omit output_distribution_column to store the stream table on this node.");
        }
        require(!distribution_column->empty(), ERRCODE_INVALID_PARAMETER_VALUE,
                "output_distribution_column must not be empty",
                "Name a column of the stream table, or __pgt_row_id for its row identity.");
    }
    check_schedule(schedule);
    require_scheduler_for(schedule);
    bool xact_snapshot = false;
    pg_call([&]() noexcept { xact_snapshot = IsolationUsesXactSnapshot(); });
    require(!xact_snapshot, ERRCODE_ACTIVE_SQL_TRANSACTION,
            "create_stream_table must run in a READ COMMITTED transaction",
            "Under REPEATABLE READ the initial snapshot could predate changes that capture would "
            "then miss.");
    spi::Session spi;
    const Oid caller = pg::current_user();
    // The caller's own names (the stream table's, the query's) resolve through the caller's
    // search_path, as the caller: before anything runs as the extension's owner.
    const QualifiedName qn = creation_name(name);
    Query* parsed = analyze_select(query);
    const std::vector<Oid> tables = capture::tables_read(parsed);
    require_can_read(query);
    require(pg::may_create_in(qn.nsp, caller), ERRCODE_INSUFFICIENT_PRIVILEGE,
            "permission denied for schema " + qn.schema,
            "The stream table's storage is created there: GRANT CREATE ON SCHEMA " +
                quote_ident(qn.schema) + " to the role.");
    // Catalog rows, capture objects and change buffers belong to the extension's owner;
    // the view and the storage table are handed to the caller (give_to_owner).
    const pg::AsExtensionOwner as_extension_owner;
    auto exists =
        spi::exec("SELECT pg_catalog.to_regclass($1) IS NOT NULL", {qualified(qn.schema, qn.name)});
    require(*exists.scalar() == "f", ERRCODE_DUPLICATE_TABLE,
            "relation \"" + qn.schema + "." + qn.name + "\" already exists",
            "Choose another name, or drop the existing relation first.");
    // Citus sources get their slots before this transaction writes anything (a slot waits
    // for the transactions running on its node); none for a stream table maintained by full
    // refresh.
    if (will_be_differential(parsed, refresh_mode)) {
        capture::wal::prepare_sources(tables, cdc_mode);
    }
    const int64_t id = catalog::next_stream_table_id();
    const Defined d =
        define(id, qn.schema, qn.name, query, refresh_mode, caller, distribution_column);
    catalog::NewStreamTable row;
    row.id = id;
    row.schema = qn.schema;
    row.name = qn.name;
    row.defining_query = query;
    row.query_view = d.view;
    row.schedule = schedule;
    row.refresh_mode = refresh_mode;
    row.cdc_mode = cdc_mode;
    row.initialize = initialize;
    catalog::insert_stream_table(row);
    record_definition(id, d, query, refresh_mode);
    const std::string storage = qualified(qn.schema, qn.name);
    give_to_owner(id, storage, d.analysis.translation.relations, caller);
    if (distribution_column) {
        place_storage(id, d.view, storage, "distributed", distribution_column);
    }
    if (!distribution_column && automatic_placement(tables)) {
        // docs/citus.md "Storage placement": sized by the query's row count, counted before
        // the storage is placed and filled. Citus refuses to create a reference table after
        // this transaction read placements co-located with it (another reference table the
        // query joins) over several connections: the count reads on one connection per node.
        int64_t rows = 0;
        {
            pg::SettingsScope sequential;
            sequential.set("citus.multi_shard_modify_mode", "sequential");
            {
                const pg::AsUser as_owner(caller, /*restricted=*/true);  // the owner's query
                rows = std::stoll(spi::exec("SELECT pg_catalog.count(*)::pg_catalog.text FROM "
                                            "pgtrickle." +
                                            quote_ident("pgt_query_" + std::to_string(id)))
                                      .scalar()
                                      .value_or("0"));
            }
            if (rows < settings::citus_reference_max_rows) {
                place_storage(id, d.view, storage, "reference", std::nullopt);
            }
        }
        if (rows >= settings::citus_reference_max_rows) {
            // In parallel mode (Citus refuses to distribute a table in sequential mode after
            // a parallel query), in a co-location group of its own.
            place_storage(id, d.view, storage, "distributed", std::string("__pgt_row_id"));
        }
    }
    if (initialize) {
        refresh_stream_table(id, true);
    }
    spi.finish();
    scheduler::wake_launcher();
    PG_RETURN_VOID();
}

// CALL pgtrickle.alter_stream_table(name, query, schedule, refresh_mode, status)
PGT_FUNCTION(pgtrickle_alter_stream_table) {
    require(!PG_ARGISNULL(0), ERRCODE_NULL_VALUE_NOT_ALLOWED, "name must not be NULL");
    const std::string name = text_arg(fcinfo, 0);
    const auto query = opt_text_arg(fcinfo, 1);
    const auto schedule = opt_text_arg(fcinfo, 2);
    const auto refresh_mode = opt_text_arg(fcinfo, 3);
    const auto status = opt_text_arg(fcinfo, 4);
    if (refresh_mode) {
        check_one_of("refresh_mode", *refresh_mode, {"auto", "differential", "full"});
    }
    if (status) {
        check_one_of("status", *status, {"active", "suspended"});
    }
    check_schedule(schedule);
    require_scheduler_for(schedule);
    spi::Session spi;
    const Oid caller = pg::current_user();
    const Oid relid = relation_named(name);
    std::vector<Oid> new_sources;
    Query* parsed = nullptr;
    if (query) {
        parsed = analyze_select(*query);
        new_sources = capture::tables_read(parsed);
        require_can_read(*query);
    }
    const pg::AsExtensionOwner as_extension_owner;
    const catalog::StreamTable st = find_stream_table(relid, name);
    require_owner(st, caller, "alter it");
    std::vector<Oid> keep = new_sources;
    if (query || refresh_mode) {
        if (!query) {
            new_sources = catalog::sources_read(st.id);
            keep = new_sources;
        }
        const std::string mode = refresh_mode ? *refresh_mode : st.refresh_mode;
        if (will_be_differential(query ? parsed : pg::view_query(st.query_view), mode)) {
            capture::wal::prepare_sources(new_sources, st.cdc_mode);
        } else {
            // Maintained by full refresh from now on: its Citus sources lose their capture
            // unless a differential reader still needs it (capture::drop_source_if_unused).
            keep.clear();
            for (Oid rel : new_sources) {
                if (!capture::wal::wants_wal(rel)) {
                    keep.push_back(rel);
                }
            }
        }
    }
    const Oid owner = pg::relation_owner(st.relid);  // the storage is recreated below
    if (schedule) {
        catalog::set_schedule(st.id, *schedule);
    }
    if (status) {
        catalog::set_status(st.id, *status);
    }
    if (query || refresh_mode) {
        const auto deps = catalog::readers_of(st.relid, st.id);
        if (!deps.empty()) {
            throw Error(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
                        "cannot redefine stream table \"" + st.schema + "." + st.name +
                            "\" while other stream tables read it",
                        {},
                        "Drop the dependent stream tables first, then redefine and recreate them.");
        }
        const std::string new_query = query ? *query : st.defining_query;
        const std::string mode = refresh_mode ? *refresh_mode : st.refresh_mode;
        undefine(st, true, keep);
        // The new storage is placed as the old one was (docs/citus.md "Placement").
        const bool distributed = st.placement == "distributed" && st.distribution_column;
        const Defined d = define(st.id, st.schema, st.name, new_query, mode, owner,
                                 distributed ? st.distribution_column : std::nullopt);
        catalog::set_storage_relation(st.id, st.qualified_name());
        record_definition(st.id, d, new_query, mode);
        give_to_owner(st.id, st.qualified_name(), d.analysis.translation.relations, owner);
        if (distributed || st.placement == "reference") {
            place_storage(st.id, d.view, st.qualified_name(), st.placement,
                          distributed ? st.distribution_column : std::nullopt);
        }
        refresh_stream_table(st.id, true);
    }
    spi.finish();
    PG_RETURN_VOID();
}

// CALL pgtrickle.drop_stream_table(name, cascade)
PGT_FUNCTION(pgtrickle_drop_stream_table) {
    require(!PG_ARGISNULL(0), ERRCODE_NULL_VALUE_NOT_ALLOWED, "name must not be NULL");
    const bool cascade = PG_ARGISNULL(1) ? false : PG_GETARG_BOOL(1);
    const std::string name = text_arg(fcinfo, 0);
    spi::Session spi;
    const Oid caller = pg::current_user();
    const Oid relid = relation_named(name);
    const pg::AsExtensionOwner as_extension_owner;
    const catalog::StreamTable st = find_stream_table(relid, name);
    require_owner(st, caller, "drop it");
    std::set<int64_t> seen;
    drop_recursive(st, cascade, seen);
    spi.finish();
    PG_RETURN_VOID();
}

// CALL pgtrickle.refresh_stream_table(name, full)
PGT_FUNCTION(pgtrickle_refresh_stream_table) {
    require(!PG_ARGISNULL(0), ERRCODE_NULL_VALUE_NOT_ALLOWED, "name must not be NULL");
    const bool full = PG_ARGISNULL(1) ? false : PG_GETARG_BOOL(1);
    const std::string name = text_arg(fcinfo, 0);
    spi::Session spi;
    const Oid caller = pg::current_user();
    const Oid relid = relation_named(name);
    const catalog::StreamTable st = find_stream_table(relid, name);
    require_owner(st, caller, "refresh it");
    (void)refresh_stream_table(st.id, full);
    spi.finish();
    PG_RETURN_VOID();
}

// pgtrickle.explain_stream_table(query) -> jsonb
PGT_FUNCTION(pgtrickle_explain_stream_table) {
    const std::string query = text_arg(fcinfo, 0);
    spi::Session spi;
    Query* q = analyze_select(query);  // the caller's query, with the caller's search_path
    std::vector<ivm::Column> cols;
    // Explaining reads the capture catalog, not the data: as the extension's owner.
    const pg::AsExtensionOwner as_extension_owner;
    const Analysis a = analyze_for_mode(q, "auto", cols);
    std::string tree;
    if (a.translation.plan) {
        tree = ivm::explain_tree(*a.translation.plan, a.layout);
    }
    std::string sources;
    for (Oid rel : a.translation.relations) {
        sources += (sources.empty() ? "" : ",") + std::to_string(rel);
    }
    // Where create_stream_table would store it with this session's settings and no
    // output_distribution_column (docs/citus.md "Storage placement"); 'auto' decides by the
    // query's row count, counted at creation, not here.
    const bool automatic = automatic_placement(a.translation.relations);
    auto r = spi::exec(
        "SELECT pg_catalog.jsonb_build_object('mode', $1, 'differential', "
        "$2::pg_catalog.bool, 'reason', $3, 'text', $4, "
        "'tree', (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('depth', "
        "(pg_catalog.length(l) OPERATOR(pg_catalog.-) "
        "pg_catalog.length(pg_catalog.ltrim(l))) OPERATOR(pg_catalog./) 2, 'node', "
        "pg_catalog.ltrim(l)) ORDER BY n) "
        "FROM pg_catalog.unnest(pg_catalog.string_to_array(pg_catalog.rtrim($4, E'\\n'), "
        "E'\\n')) WITH ORDINALITY AS u(l, n)), "
        "'storage', $5, 'sources', COALESCE((SELECT pg_catalog.jsonb_agg(o::pg_catalog.regclass::"
        "pg_catalog.text ORDER BY o) FROM pg_catalog.unnest(pg_catalog.string_to_array("
        "CASE WHEN $6 OPERATOR(pg_catalog.=) '' THEN NULL ELSE $6 END, ',')::pg_catalog.oid[]) "
        "AS o), "
        "'[]'::pg_catalog.jsonb), 'placement', $7, 'reference_max_rows', "
        "$8::pg_catalog.int8)::pg_catalog.text",
        {std::string(a.differential ? "differential" : "full"),
         std::string(a.differential ? "true" : "false"),
         a.differential ? std::nullopt : std::optional<std::string>(a.reason),
         a.translation.plan ? std::optional<std::string>(tree) : std::nullopt,
         std::string(a.layout.kind == ivm::StorageKind::groups ? "groups" : "rows"), sources,
         std::string(automatic ? "auto" : "local"),
         automatic ? std::optional<std::string>(std::to_string(settings::citus_reference_max_rows))
                   : std::nullopt});
    const std::string json = *r.scalar();
    spi.finish();
    Datum d = 0;
    pg_call([&]() noexcept {
        d = DirectFunctionCall1(jsonb_in, CStringGetDatum(pstrdup(json.c_str())));
    });
    return d;
}

// pgtrickle.pending_changes(pgt_id) -> bigint: buffered changes the stream table has not applied.
PGT_FUNCTION(pgtrickle_pending_changes) {
    const int64_t id = PG_GETARG_INT64(0);
    spi::Session spi;
    // Counts rows of the change buffers, which belong to the extension's owner.
    const pg::AsExtensionOwner as_extension_owner;
    const auto st = catalog::stream_table(id);
    std::optional<frontier::Frontier> at;
    if (st && st->frontier) {
        try {
            at = frontier::Frontier::parse(*st->frontier);
        } catch (const std::invalid_argument&) {
            at.reset();  // unreadable: the next refresh is a full one, nothing is pending
        }
    }
    int64_t total = 0;
    bool unknown = false;
    for (const auto& src : st ? catalog::sources_of(id) : std::vector<catalog::Source>{}) {
        if (!src.captured) {
            continue;
        }
        if (!at || at->sources.count(src.key) == 0) {
            unknown = true;
            continue;
        }
        const frontier::SourceFrontier& f = at->sources.at(src.key);
        auto c = spi::exec("SELECT pg_catalog.count(*)::pg_catalog.text FROM " + src.buffer() +
                               " WHERE " + frontier::window_condition_params("", 1),
                           frontier::window_params(f));
        total += std::stoll(c.scalar().value_or("0"));
    }
    spi.finish();
    if (unknown && total == 0) {
        PG_RETURN_NULL();
    }
    PG_RETURN_INT64(total);
}

// pgtrickle.source_stable_name(oid) -> text
PGT_FUNCTION(pgtrickle_source_stable_name) {
    const Oid relid = PG_GETARG_OID(0);
    char* name = nullptr;
    pg_call([&]() noexcept { name = get_rel_name(relid); });
    if (name == nullptr) {
        PG_RETURN_NULL();
    }
    spi::Session spi;
    std::string sn;
    {
        const pg::AsExtensionOwner as_extension_owner;
        sn = capture::stable_name_of(relid);
    }
    spi.finish();
    text* t = nullptr;
    t = pg::to_text(sn);
    PG_RETURN_TEXT_P(t);
}

// pgtrickle.scheduler_pid() -> int: this database's scheduler, NULL when none runs.
PGT_FUNCTION(pgtrickle_scheduler_pid) {
    const int pid = scheduler::scheduler_pid();
    if (pid == 0) {
        PG_RETURN_NULL();
    }
    PG_RETURN_INT32(pid);
}

// pgtrickle.schedule_interval(text) -> interval: the period of a schedule (for a cron
// expression, the gap between its next two firings); NULL for NULL or an invalid schedule.
PGT_FUNCTION(pgtrickle_schedule_interval) {
    const Schedule s = parse_schedule(text_arg(fcinfo, 0));
    if (s.error) {
        PG_RETURN_NULL();
    }
    int64_t ms = s.every.count();
    if (s.kind == Schedule::Kind::cron) {
        const int64_t now = static_cast<int64_t>(time(nullptr)) * 1000;
        const auto a = next_cron_fire(s.cron, now);
        const auto b = a ? next_cron_fire(s.cron, *a) : std::nullopt;
        if (!b) {
            PG_RETURN_NULL();
        }
        ms = *b - *a;
    }
    Interval* iv = static_cast<Interval*>(palloc0(sizeof(Interval)));
    iv->time = ms * 1000;
    PG_RETURN_INTERVAL_P(iv);
}
