#include "capture/capture.h"

#include <map>
#include <vector>

#include "catalog.h"
#include "core/sql_ident.h"
#include "core/stable_name.h"
#include "boundary/guard.h"
#include "boundary/pg.h"
#include "boundary/spi.h"

extern "C" {
#include "access/table.h"
#include "catalog/namespace.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "utils/errcodes.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
}

namespace pgt::capture {
namespace {

using sql::qualified;
using sql::quote_ident;
using sql::quote_literal;

const char* const kChangeSchema = "pgtrickle_changes";

struct SourceColumn {
    int attnum;
    std::string name;
    std::string type;
};

struct SourceInfo {
    std::string schema, name;
    char relkind = 0;
    std::vector<SourceColumn> columns;
};

SourceInfo source_info(Oid relid) {
    SourceInfo info;
    char* nsp = nullptr;
    char* name = nullptr;
    char kind = 0;
    pg_call([&]() noexcept {
        nsp = get_namespace_name(get_rel_namespace(relid));
        name = get_rel_name(relid);
        kind = get_rel_relkind(relid);
    });
    if (!nsp || !name) {
        throw Error(ERRCODE_UNDEFINED_TABLE,
                    "relation with OID " + std::to_string(relid) + " does not exist");
    }
    info.schema = nsp;
    info.name = name;
    info.relkind = kind;
    const pg::OpenRelation rel(relid, AccessShareLock);
    TupleDesc td = RelationGetDescr(rel.get());
    for (int i = 0; i < td->natts; ++i) {
        Form_pg_attribute a = TupleDescAttr(td, i);
        if (a->attisdropped) {
            continue;
        }
        const std::string type = pg::type_name(a->atttypid, a->atttypmod);
        info.columns.push_back({a->attnum, NameStr(a->attname), type});
    }
    return info;
}

std::string relid_text(Oid relid) {
    return std::to_string(relid);
}

/// The catalog key of a captured source: its stable name, or its OID on 0.31.0-style rows.
std::optional<std::string> catalog_key(Oid relid) {
    auto r = spi::exec("SELECT " + catalog::source_key_sql("ct") +
                           " FROM pgtrickle.pgt_change_tracking ct WHERE ct.source_relid = $1::oid",
                       {relid_text(relid)});
    return r.scalar();
}

/// (Re)create the source's capture function: a C trigger function (capture_trigger.cpp)
/// whose name tells it which buffer to write. Created through a SECURITY DEFINER helper of
/// the extension, since creating a C function needs a superuser.
void write_trigger_function(const std::string& key, const SourceInfo& src) {
    const CaptureObjectNames n = capture_object_names(key);
    spi::run("SELECT pgtrickle._create_capture_function($1)", {n.trigger_function});
    spi::run("COMMENT ON FUNCTION " + qualified(kChangeSchema, n.trigger_function) + "() IS " +
             quote_literal("pg_trickle: captures changes of " + src.schema + "." + src.name));
}

/// Buffer columns currently present: name -> SQL type.
std::map<std::string, std::string> buffer_columns(const std::string& buffer_table) {
    auto r = spi::exec(
        "SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod) FROM "
        "pg_catalog.pg_attribute a "
        "JOIN pg_catalog.pg_class c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace s ON s.oid "
        "= c.relnamespace "
        "WHERE s.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
        {std::string(kChangeSchema), buffer_table});
    std::map<std::string, std::string> out;
    for (const auto& row : r.rows) {
        out[*row[0]] = row[1].value_or("");
    }
    return out;
}

void sync_columns(const std::string& key, const SourceInfo& src) {
    const CaptureObjectNames n = capture_object_names(key);
    const std::string buffer = qualified(kChangeSchema, n.buffer_table);
    auto existing = buffer_columns(n.buffer_table);
    for (const auto& c : src.columns) {
        const std::string col = "c" + std::to_string(c.attnum);
        auto it = existing.find(col);
        if (it == existing.end()) {
            spi::run("ALTER TABLE " + buffer + " ADD COLUMN " + quote_ident(col) + " " + c.type);
            continue;
        }
        // A retyped column: no stream table can read it (PostgreSQL refuses to retype a
        // column a view uses), so buffered values of it are not needed.
        auto now =
            spi::exec("SELECT pg_catalog.format_type($1::regtype, NULL) = pg_catalog.format_type(" +
                          quote_literal(it->second) + "::regtype, NULL)",
                      {c.type});
        if (now.scalar() && *now.scalar() == "f") {
            spi::run("ALTER TABLE " + buffer + " ALTER COLUMN " + quote_ident(col) + " TYPE " +
                     c.type + " USING NULL");
        }
    }
    write_trigger_function(key, src);
}

std::string computed_stable_name(Oid relid) {
    const SourceInfo src = source_info(relid);
    char* db = nullptr;
    pg_call([&]() noexcept { db = get_database_name(MyDatabaseId); });
    return stable_name(db, src.schema, src.name);
}

/// The key a source gets when it is first captured: its stable name, or on a 0.31.0
/// catalog its OID.
std::string new_key(Oid relid) {
    return catalog::has_stable_names() ? computed_stable_name(relid) : relid_text(relid);
}

}  // namespace

SourceNames resolve(Oid relid) {
    SourceNames out;
    auto key = catalog_key(relid);
    out.stable_name = key ? *key : new_key(relid);
    out.buffer = qualified(kChangeSchema, capture_object_names(out.stable_name).buffer_table);
    return out;
}

std::string stable_name_of(Oid relid) {
    if (catalog::has_stable_names()) {
        auto stored = spi::exec(
            "SELECT source_stable_name FROM pgtrickle.pgt_change_tracking WHERE source_relid = "
            "$1::oid",
            {relid_text(relid)});
        if (stored.scalar()) {
            return *stored.scalar();
        }
    }
    return computed_stable_name(relid);
}

std::string ensure_source(Oid relid) {
    const SourceInfo src = source_info(relid);
    const std::string sysid = catalog::system_identifier();
    if (auto key = catalog_key(relid)) {
        // A buffer restored from another cluster holds transaction ids of that cluster; no
        // reader here has consumed it yet (the first one stamps it), so it is emptied.
        auto foreign = spi::exec(
            "UPDATE pgtrickle.pgt_change_tracking SET buffer_sysid = $2 WHERE source_relid = "
            "$1::oid AND buffer_sysid IS DISTINCT FROM $2 RETURNING 1",
            {relid_text(relid), sysid});
        if (!foreign.rows.empty()) {
            spi::run("DELETE FROM " +
                     qualified(kChangeSchema, capture_object_names(*key).buffer_table));
        }
        sync_columns(*key, src);
        return *key;
    }
    if (src.relkind != 'r' && src.relkind != 'p') {
        throw Error(ERRCODE_WRONG_OBJECT_TYPE,
                    "cannot capture changes of \"" + src.schema + "." + src.name + "\"",
                    "Only plain and partitioned tables can be sources of a stream table.",
                    "Read the underlying tables instead, or use refresh_mode => 'full'.");
    }
    const bool stable = catalog::has_stable_names();
    std::string sn = new_key(relid);
    if (stable) {
        auto clash = spi::exec(
            "SELECT source_relid::text FROM pgtrickle.pgt_change_tracking WHERE source_stable_name "
            "= $1",
            {sn});
        if (clash.scalar()) {
            throw Error(ERRCODE_DUPLICATE_OBJECT,
                        "stable name collision: \"" + src.schema + "." + src.name + "\" and " +
                            *clash.scalar() + " both have stable name " + sn,
                        "The stable name is a 64-bit hash of database/schema.table; a collision is "
                        "astronomically "
                        "unlikely and usually means the other table was renamed to this table's "
                        "former name.",
                        "Rename one of the tables and create the stream table again.");
        }
    }
    const CaptureObjectNames n = capture_object_names(sn);
    auto leftover = spi::exec("SELECT pg_catalog.to_regclass($1) IS NOT NULL",
                              {qualified(kChangeSchema, n.buffer_table)});
    if (leftover.scalar() && *leftover.scalar() == "t") {
        throw Error(ERRCODE_DUPLICATE_TABLE,
                    "change buffer " + qualified(kChangeSchema, n.buffer_table) + " already exists",
                    "No source in pgtrickle.pgt_change_tracking owns it.",
                    "Drop the leftover table if it holds nothing you need, then try again.");
    }
    const std::string buffer = qualified(kChangeSchema, n.buffer_table);
    std::string cols = "\"__pgt_xid\" pg_catalog.xid8 NOT NULL, \"__pgt_op\" \"char\" NOT NULL";
    for (const auto& c : src.columns) {
        cols += ", " + quote_ident("c" + std::to_string(c.attnum)) + " " + c.type;
    }
    spi::run("CREATE TABLE " + buffer + " (" + cols + ")");
    spi::run("CREATE INDEX " + quote_ident(n.xid_index) + " ON " + buffer + " (\"__pgt_xid\")");
    spi::run("COMMENT ON TABLE " + buffer + " IS " +
             quote_literal("pg_trickle change buffer of " + src.schema + "." + src.name));
    write_trigger_function(sn, src);
    const std::string fn = qualified(kChangeSchema, n.trigger_function) + "()";
    const std::string tbl = qualified(src.schema, src.name);
    spi::run("CREATE TRIGGER " + quote_ident(n.trigger_insert) + " AFTER INSERT ON " + tbl +
             " REFERENCING NEW TABLE AS \"__pgt_new\" FOR EACH STATEMENT EXECUTE FUNCTION " + fn);
    spi::run("CREATE TRIGGER " + quote_ident(n.trigger_update) + " AFTER UPDATE ON " + tbl +
             " REFERENCING OLD TABLE AS \"__pgt_old\" NEW TABLE AS \"__pgt_new\" FOR EACH "
             "STATEMENT EXECUTE FUNCTION " +
             fn);
    spi::run("CREATE TRIGGER " + quote_ident(n.trigger_delete) + " AFTER DELETE ON " + tbl +
             " REFERENCING OLD TABLE AS \"__pgt_old\" FOR EACH STATEMENT EXECUTE FUNCTION " + fn);
    spi::run("CREATE TRIGGER " + quote_ident(n.trigger_truncate) + " AFTER TRUNCATE ON " + tbl +
             " FOR EACH STATEMENT EXECUTE FUNCTION " + fn);
    if (stable) {
        spi::run(
            "INSERT INTO pgtrickle.pgt_change_tracking (source_relid, cdc_mode, buffer_sysid, "
            "source_stable_name) "
            "VALUES ($1::oid, 'trigger', $2, $3)",
            {relid_text(relid), sysid, sn});
    } else {
        spi::run(
            "INSERT INTO pgtrickle.pgt_change_tracking (source_relid, cdc_mode, buffer_sysid) "
            "VALUES ($1::oid, 'trigger', $2)",
            {relid_text(relid), sysid});
    }
    return sn;
}

void sync_source(Oid relid) {
    auto key = catalog_key(relid);
    if (!key) {
        return;
    }
    sync_columns(*key, source_info(relid));
}

void drop_source_if_unused(Oid relid) {
    auto key = catalog_key(relid);
    if (!key) {
        return;
    }
    auto readers =
        spi::exec("SELECT count(*) FROM pgtrickle.pgt_dependencies WHERE source_relid = $1::oid",
                  {relid_text(relid)});
    if (readers.scalar() && *readers.scalar() != "0") {
        return;
    }
    const CaptureObjectNames n = capture_object_names(*key);
    const SourceInfo src = source_info(relid);
    const std::string tbl = qualified(src.schema, src.name);
    for (const auto* t :
         {&n.trigger_insert, &n.trigger_update, &n.trigger_delete, &n.trigger_truncate}) {
        spi::run("DROP TRIGGER IF EXISTS " + quote_ident(*t) + " ON " + tbl);
    }
    spi::run("DROP FUNCTION IF EXISTS " + qualified(kChangeSchema, n.trigger_function) + "()");
    spi::run("DROP TABLE IF EXISTS " + qualified(kChangeSchema, n.buffer_table));
    spi::run("DELETE FROM pgtrickle.pgt_change_tracking WHERE source_relid = $1::oid",
             {relid_text(relid)});
}

}  // namespace pgt::capture
