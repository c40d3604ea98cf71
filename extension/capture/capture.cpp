#include "capture/capture.h"

#include <map>
#include <set>
#include <utility>
#include <vector>

#include "capture/buffer_writer.h"
#include "capture/state_copy.h"
#include "capture/wal.h"
#include "catalog/generation.h"
#include "catalog/sources.h"
#include "citus/citus.h"
#include "common/oids.h"
#include "common/query_tree.h"
#include "core/sql_ident.h"
#include "core/stable_name.h"
#include "boundary/guard.h"
#include "boundary/pg.h"
#include "boundary/spi.h"
#include "scheduler/scheduler.h"

extern "C" {
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "utils/errcodes.h"
#include "utils/lsyscache.h"
#include "utils/builtins.h"
#include "utils/rel.h"
#include "utils/syscache.h"
}

namespace pgt::capture {
namespace {

using sql::qualified;
using sql::quote_ident;
using sql::quote_literal;

struct SourceColumn {
    int attnum;
    std::string name;
    std::string type;  ///< SQL type of its buffer column, with the column's collation
    Oid typid;         ///< of the buffer column: the source column's, a domain's base type
    int32 typmod;
    Oid collation;
    bool fresh;  ///< its catalog row was written by this transaction (added or retyped now)
    /// The value rows that existed when the column was added read (PostgreSQL's "missing
    /// value" of ADD COLUMN ... DEFAULT with a non-volatile default), as a SQL literal.
    std::optional<std::string> missing;
    /// Rows that existed when the column was added got values no single literal describes
    /// (a volatile default, a generated or identity column, a domain's default: PostgreSQL
    /// rewrote the table).
    bool filled_per_row;
    /// Reading a value of the column's type from text runs only built-in or superuser-made
    /// code (no domain CHECK of another role's, no composite of them).
    bool trusted_input;
};

struct SourceInfo {
    std::string schema, name;
    char relkind = 0;
    std::vector<SourceColumn> columns;
};

/// Whether the input function of `type` runs only code no ordinary role wrote: base types and
/// enums (their functions are C, made by a superuser), arrays and ranges of such types. Not a
/// domain (its CHECK constraints are its owner's code) nor a composite type (its columns may
/// be domains).
bool trusted_input(Oid type) {
    for (int depth = 0; depth < 8; ++depth) {
        char kind = 0;
        Oid inner = InvalidOid;
        pg_call([&]() noexcept {
            kind = get_typtype(type);
            if (kind == TYPTYPE_BASE) {
                inner = get_element_type(type);
            } else if (kind == TYPTYPE_RANGE) {
                inner = get_range_subtype(type);
            } else if (kind == TYPTYPE_MULTIRANGE) {
                inner = get_multirange_range(type);
            }
        });
        if (kind == TYPTYPE_ENUM || (kind == TYPTYPE_BASE && !OidIsValid(inner))) {
            return true;
        }
        if (!OidIsValid(inner)) {
            return false;  // domain, composite, pseudo-type
        }
        type = inner;
    }
    return false;
}

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
                    "relation with OID " + oid_text(relid) + " does not exist");
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
        char* type = nullptr;
        char* coll_nsp = nullptr;
        char* coll_name = nullptr;
        char* missing = nullptr;
        bool is_domain = false;
        bool fresh = false;
        // A domain's values are stored as its base type: a buffer column of the domain would
        // have its CHECK constraints run as the extension owner (ALTER TABLE ... ADD COLUMN
        // tests them against NULL); the delta casts them back (delta_sql_terms.cpp).
        Oid buffer_type = a->atttypid;
        int32 buffer_typmod = a->atttypmod;
        pg_call([&]() noexcept {
            HeapTuple at =
                SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid), Int16GetDatum(a->attnum));
            if (HeapTupleIsValid(at)) {
                fresh = TransactionIdIsCurrentTransactionId(HeapTupleHeaderGetXmin(at->t_data));
                ReleaseSysCache(at);
            }
            buffer_type = getBaseTypeAndTypmod(a->atttypid, &buffer_typmod);
            type = format_type_extended(buffer_type, buffer_typmod,
                                        FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY);
            HeapTuple tup = OidIsValid(a->attcollation)
                                ? SearchSysCache1(COLLOID, ObjectIdGetDatum(a->attcollation))
                                : nullptr;
            if (HeapTupleIsValid(tup)) {
                auto* form = reinterpret_cast<Form_pg_collation>(GETSTRUCT(tup));
                coll_nsp = get_namespace_name(form->collnamespace);
                coll_name = pstrdup(NameStr(form->collname));
                ReleaseSysCache(tup);
            }
            is_domain = get_typtype(a->atttypid) == TYPTYPE_DOMAIN;
            if (a->atthasmissing) {
                bool isnull = true;
                const Datum value = getmissingattr(td, a->attnum, &isnull);
                if (!isnull) {
                    Oid out = InvalidOid;
                    bool varlena = false;
                    getTypeOutputInfo(a->atttypid, &out, &varlena);
                    missing = OidOutputFunctionCall(out, value);
                }
            }
        });
        // The buffer column keeps the source column's collation, so that grouping, DISTINCT,
        // min/max and joins over buffered rows compare values as the source does.
        std::string sql_type = type;
        if (coll_nsp != nullptr && coll_name != nullptr) {
            sql_type += " COLLATE " + qualified(coll_nsp, coll_name);
        }
        std::optional<std::string> missing_literal;
        if (missing != nullptr) {
            missing_literal = quote_literal(missing) + "::" + type;
        }
        const bool per_row = !missing_literal && (a->atthasdef || a->attidentity != '\0' ||
                                                  a->attgenerated != '\0' || is_domain);
        info.columns.push_back({a->attnum, NameStr(a->attname), sql_type, buffer_type,
                                buffer_typmod, a->attcollation, fresh, missing_literal, per_row,
                                trusted_input(buffer_type)});
    }
    return info;
}

/// The catalog key of a captured source: its stable name, or its OID on 0.31.0-style rows.
std::optional<std::string> catalog_key(Oid relid) {
    if (auto src = catalog::source(relid)) {
        return src->key;
    }
    return std::nullopt;
}

/// The source's changes come from the WAL (a Citus table), not from triggers.
bool wal_captured(Oid relid) {
    const auto src = catalog::source(relid);
    return src && src->cdc_mode == "wal";
}

/// (Re)create the source's capture function: a C trigger function (capture_trigger.cpp)
/// whose name tells it which buffer to write. Created through a SECURITY DEFINER helper of
/// the extension, since creating a C function needs a superuser.
void write_trigger_function(const std::string& key, const SourceInfo& src) {
    const CaptureObjectNames n = capture_object_names(key);
    // The function lives on this node only: Citus must not propagate it (it cannot anyway
    // once the transaction used parallel connections, e.g. to lock a distributed source).
    pg::SettingsScope scope;
    if (citus::loaded()) {
        scope.set("citus.enable_ddl_propagation", "off");
    }
    spi::run("SELECT pgtrickle._create_capture_function($1)", {n.trigger_function});
    spi::run("COMMENT ON FUNCTION " + qualified(kChangeSchema, n.trigger_function) + "() IS " +
             quote_literal("pg_trickle: captures changes of " + src.schema + "." + src.name));
}

/// A buffer column as the catalog has it.
struct BufferColumn {
    Oid typid;
    int32 typmod;
    Oid collation;
};

/// Buffer columns currently present, by name.
std::map<std::string, BufferColumn> buffer_columns(const std::string& buffer_table) {
    auto r = spi::exec(
        "SELECT a.attname::pg_catalog.text, a.atttypid::pg_catalog.text, "
        "a.atttypmod::pg_catalog.text, a.attcollation::pg_catalog.text FROM "
        "pg_catalog.pg_attribute a "
        "JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) a.attrelid "
        "JOIN pg_catalog.pg_namespace s ON s.oid OPERATOR(pg_catalog.=) c.relnamespace "
        "WHERE s.nspname OPERATOR(pg_catalog.=) $1 AND c.relname OPERATOR(pg_catalog.=) $2 "
        "AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped",
        {std::string(kChangeSchema), buffer_table});
    std::map<std::string, BufferColumn> out;
    for (const auto& row : r.rows) {
        out[*row[0]] = {oid_of(row[1]), std::stoi(*row[2]), oid_of(row[3])};
    }
    return out;
}

/// Record in the buffer that the source's contents changed in a way its rows do not
/// describe (a member attached, detached or dropped; a buffer rebuilt): the 'T' marker,
/// consumed like any buffer row, makes every reader's next refresh a full one.
void write_recompute_marker(const std::string& key, Oid source) {
    // Not an INSERT statement: it would check the domains of the buffer's columns against
    // NULL, running their owners' code with the extension owner's rights.
    BufferWriter writer(source, key);
    writer.add_marker();
    writer.flush();
    pgt::scheduler::note_captured_write(source);
}

/// Make the buffer's columns exactly one c<attnum> per live source column, of the source
/// column's type and collation; drop columns of dropped source columns. A column added or
/// rebuilt for a source column that this transaction did not just add or retype (a buffer
/// edited by hand, restored, or out of step) leaves buffered rows without its values, and
/// rows of an `untrusted` buffer may hold other columns' values: readers are then told to
/// recompute.
void sync_columns(const std::string& key, Oid relid, const SourceInfo& src, bool untrusted) {
    const CaptureObjectNames n = capture_object_names(key);
    const std::string buffer = qualified(kChangeSchema, n.buffer_table);
    auto existing = buffer_columns(n.buffer_table);
    bool lost = untrusted;
    std::set<std::string> wanted;
    for (const auto& c : src.columns) {
        const std::string col = buffer_column_name(c.attnum);
        wanted.insert(col);
        auto it = existing.find(col);
        if (it == existing.end()) {
            // Buffered rows written before the source column was added describe source rows
            // that now read its default: with a non-volatile one (PostgreSQL's missing value)
            // the buffer column gets the same missing value, so that old and new buffer rows
            // of one source row agree (an old-state computation consolidates over every
            // column). Values PostgreSQL computed per row cannot be known: readers recompute.
            // Evaluating the missing value's literal runs the type's input function as the
            // extension owner: only for types whose input runs no ordinary role's code.
            if (c.fresh && c.missing && c.trusted_input) {
                spi::run("ALTER TABLE " + buffer + " ADD COLUMN " + quote_ident(col) + " " +
                         c.type + " DEFAULT " + *c.missing);
                spi::run("ALTER TABLE " + buffer + " ALTER COLUMN " + quote_ident(col) +
                         " DROP DEFAULT");
            } else {
                spi::run("ALTER TABLE " + buffer + " ADD COLUMN " + quote_ident(col) + " " +
                         c.type);
            }
            lost = lost || !c.fresh || c.filled_per_row || (c.missing && !c.trusted_input);
            continue;
        }
        const BufferColumn& b = it->second;
        if (b.typid != c.typid || b.typmod != c.typmod) {
            // Retyped (or edited by hand): a column a stream table reads cannot be retyped
            // (PostgreSQL protects the defining view), so its buffered values are dropped.
            spi::run("ALTER TABLE " + buffer + " ALTER COLUMN " + quote_ident(col) + " TYPE " +
                     c.type + " USING NULL");
            lost = lost || !c.fresh;
        } else if (b.collation != c.collation) {
            spi::run("ALTER TABLE " + buffer + " ALTER COLUMN " + quote_ident(col) + " TYPE " +
                     c.type);
        }
    }
    for (const auto& [col, b] : existing) {
        (void)b;
        if (col.rfind("__pgt_", 0) != 0 && wanted.count(col) == 0) {
            spi::run("ALTER TABLE " + buffer + " DROP COLUMN " + quote_ident(col));
        }
    }
    if (existing.count("__pgt_xid") == 0 || existing.count("__pgt_op") == 0) {
        throw Error(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    "change buffer " + buffer + " has no __pgt_xid or __pgt_op column",
                    "The buffer was edited outside pg_trickle.",
                    "Drop the stream tables that read \"" + src.schema + "." + src.name +
                        "\" and create them again.");
    }
    if (!wal_captured(relid)) {
        write_trigger_function(key, src);
    }
    if (state::sync_columns(key)) {
        // Its state copy was rebuilt empty with the buffer's new columns: readers recompute,
        // which fills it.
        write_recompute_marker(key, relid);
    } else if (lost) {
        auto rows = spi::exec("SELECT EXISTS (SELECT 1 FROM " + buffer + ")");
        if (rows.scalar() && *rows.scalar() == "t") {
            write_recompute_marker(key, relid);
        }
    }
}

/// Every partition / inheritance descendant of `relid`, at any depth, with its kind.
struct Member {
    Oid relid;
    std::string schema, name;
    char relkind;
    bool has_triggers;  ///< carries the source's capture triggers already
};

/// SQL for the OID of source `key`'s capture function (NULL when it does not exist).
std::string capture_function_sql(const std::string& key) {
    return "pg_catalog.to_regprocedure(" +
           quote_literal(qualified(kChangeSchema, capture_object_names(key).trigger_function) +
                         "()") +
           ")::pg_catalog.oid";
}

/// A member is equipped when it has a TRUNCATE trigger calling the source's capture function:
/// the one capture trigger PostgreSQL never clones onto partitions (row-level ones are, see
/// create_triggers). Triggers are recognised by their function, not their name, so that
/// renamed ones (0.31.0's OID-keyed names) are not duplicated.
std::vector<Member> members_of(Oid relid, const std::string& key) {
    auto r = spi::exec(
        "WITH RECURSIVE d(oid) AS (SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE "
        "i.inhparent OPERATOR(pg_catalog.=) $1::pg_catalog.oid UNION SELECT i.inhrelid FROM "
        "pg_catalog.pg_inherits i JOIN d ON i.inhparent OPERATOR(pg_catalog.=) d.oid) "
        "SELECT c.oid::pg_catalog.text, n.nspname::pg_catalog.text, c.relname::pg_catalog.text, "
        "c.relkind::pg_catalog.text, EXISTS (SELECT 1 "
        "FROM pg_catalog.pg_trigger t WHERE t.tgrelid OPERATOR(pg_catalog.=) c.oid AND t.tgfoid "
        "OPERATOR(pg_catalog.=) " +
            capture_function_sql(key) +
            " AND (t.tgtype::int OPERATOR(pg_catalog.&) 32) OPERATOR(pg_catalog.<>) 0) FROM d "
            "JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.oid JOIN "
            "pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace ORDER BY "
            "c.oid",
        {oid_text(relid)});
    std::vector<Member> out;
    for (const auto& row : r.rows) {
        out.push_back({oid_of(row[0]), *row[1], *row[2], (*row[3])[0], *row[4] == "t"});
    }
    return out;
}

/// Relations other than `relid` with a trigger calling its capture function (not counting
/// the row triggers PostgreSQL cloned from a partitioned table's).
std::vector<std::pair<Oid, std::string>> trigger_carriers(Oid relid, const std::string& key) {
    auto r = spi::exec(
        "SELECT DISTINCT c.oid::pg_catalog.text, pg_catalog.quote_ident(n.nspname) "
        "OPERATOR(pg_catalog.||) "
        "'.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname) FROM pg_catalog.pg_trigger "
        "t JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid JOIN "
        "pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace WHERE "
        "t.tgfoid OPERATOR(pg_catalog.=) " +
            capture_function_sql(key) +
            " AND t.tgparentid OPERATOR(pg_catalog.=) 0 AND t.tgrelid OPERATOR(pg_catalog.<>) "
            "$1::pg_catalog.oid ORDER BY 1",
        {oid_text(relid)});
    std::vector<std::pair<Oid, std::string>> out;
    for (const auto& row : r.rows) {
        out.emplace_back(oid_of(row[0]), *row[1]);
    }
    return out;
}

/// Whether `relid` is a partition or an inheritance child.
bool has_parent(Oid relid) {
    auto r = spi::exec(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits WHERE inhrelid "
        "OPERATOR(pg_catalog.=) $1::pg_catalog.oid)",
        {oid_text(relid)});
    return r.scalar() && *r.scalar() == "t";
}

/// Whether the source's own insert trigger is row-level; nullopt when it has none.
std::optional<bool> row_level_capture(Oid relid, const CaptureObjectNames& n) {
    auto r = spi::exec(
        "SELECT (tgtype::int OPERATOR(pg_catalog.&) 1) OPERATOR(pg_catalog.=) 1 FROM "
        "pg_catalog.pg_trigger WHERE tgrelid OPERATOR(pg_catalog.=) $1::pg_catalog.oid AND tgname "
        "OPERATOR(pg_catalog.=) $2",
        {oid_text(relid), n.trigger_insert});
    if (!r.scalar()) {
        return std::nullopt;
    }
    return *r.scalar() == "t";
}

/// Create those of the four capture triggers of source `key` that `relid` (`tbl`: quoted,
/// qualified) lacks. Statement-level with transition tables, except for a source that is
/// itself a partition or inheritance child (`row_level`): rows routed through its ancestors
/// fire none of its statement triggers, only its row triggers (which PostgreSQL clones onto
/// its partitions). On a member of the source's hierarchy they carry the argument 'member':
/// their rows go into the source's buffer, mapped to its columns by name (trigger.cpp).
/// Set while pg_trickle creates capture triggers itself (see creating_triggers()).
bool g_creating_triggers = false;

void create_triggers(const std::string& key, Oid relid, const std::string& tbl, bool member,
                     bool row_level) {
    struct Creating {
        bool saved = g_creating_triggers;
        Creating() { g_creating_triggers = true; }
        ~Creating() { g_creating_triggers = saved; }
        Creating(const Creating&) = delete;
        Creating& operator=(const Creating&) = delete;
    } creating;
    const CaptureObjectNames n = capture_object_names(key);
    auto have = spi::exec(
        "SELECT tgname::pg_catalog.text FROM pg_catalog.pg_trigger WHERE tgrelid "
        "OPERATOR(pg_catalog.=) "
        "$1::pg_catalog.oid",
        {oid_text(relid)});
    std::set<std::string> existing;
    for (const auto& row : have.rows) {
        existing.insert(*row[0]);
    }
    const std::string fn =
        qualified(kChangeSchema, n.trigger_function) + (member ? "('member')" : "()");
    const std::string each = row_level ? " FOR EACH ROW" : " FOR EACH STATEMENT";
    auto create = [&](const std::string& name, const std::string& event,
                      const std::string& transition) {
        if (existing.count(name) == 0) {
            spi::run("CREATE TRIGGER " + quote_ident(name) + " AFTER " + event + " ON " + tbl +
                     (row_level ? "" : transition) + each + " EXECUTE FUNCTION " + fn);
        }
    };
    create(n.trigger_insert, "INSERT", " REFERENCING NEW TABLE AS \"__pgt_new\"");
    create(n.trigger_update, "UPDATE",
           " REFERENCING OLD TABLE AS \"__pgt_old\" NEW TABLE AS \"__pgt_new\"");
    create(n.trigger_delete, "DELETE", " REFERENCING OLD TABLE AS \"__pgt_old\"");
    if (existing.count(n.trigger_truncate) == 0) {
        spi::run("CREATE TRIGGER " + quote_ident(n.trigger_truncate) + " AFTER TRUNCATE ON " + tbl +
                 " FOR EACH STATEMENT EXECUTE FUNCTION " + fn);
    }
}

/// Drop the triggers of `relid` (`tbl`: quoted, qualified) that call source `key`'s capture
/// function, whatever their names; clones go with the partitioned table's trigger.
void drop_triggers(const std::string& key, Oid relid, const std::string& tbl) {
    auto r = spi::exec(
        "SELECT tgname::pg_catalog.text FROM pg_catalog.pg_trigger WHERE tgrelid "
        "OPERATOR(pg_catalog.=) $1::pg_catalog.oid AND tgparentid OPERATOR(pg_catalog.=) 0 "
        "AND tgfoid OPERATOR(pg_catalog.=) " +
            capture_function_sql(key),
        {oid_text(relid)});
    for (const auto& row : r.rows) {
        spi::run("DROP TRIGGER IF EXISTS " + quote_ident(*row[0]) + " ON " + tbl);
    }
}

/// Remove the capture triggers of `key` from the source and every other table carrying
/// them. The source's go first: that also removes the row triggers PostgreSQL cloned onto
/// its partitions, which cannot be dropped on their own.
void drop_all_triggers(const std::string& key, Oid relid, const SourceInfo& src) {
    drop_triggers(key, relid, qualified(src.schema, src.name));
    for (const auto& [carrier, tbl] : trigger_carriers(relid, key)) {
        drop_triggers(key, carrier, tbl);
    }
}

/// Writes to a partition or inheritance child fire that table's own statement triggers, not
/// the source's: every member of the source's hierarchy (at any depth) carries the source's
/// capture triggers, and a table that left the hierarchy loses them. A source that joined or
/// left a hierarchy itself switches between statement- and row-level capture. Returns
/// whether the source's contents changed by this (a member with rows joined or left).
bool reconcile_members(const std::string& key, Oid relid, const SourceInfo& src) {
    const CaptureObjectNames n = capture_object_names(key);
    const bool row_level = has_parent(relid);
    const auto current_level = row_level_capture(relid, n);
    if (current_level && *current_level != row_level) {
        drop_all_triggers(key, relid, src);
    }
    create_triggers(key, relid, qualified(src.schema, src.name), false, row_level);
    bool changed = false;
    std::set<Oid> current;
    for (const Member& m : members_of(relid, key)) {
        current.insert(m.relid);
        if (m.has_triggers) {
            continue;
        }
        if (m.relkind != 'r' && m.relkind != 'p') {
            throw Error(ERRCODE_FEATURE_NOT_SUPPORTED,
                        "cannot capture changes of \"" + src.schema + "." + src.name +
                            "\": its member \"" + m.schema + "." + m.name +
                            "\" is not a plain or partitioned table",
                        "Writes to a foreign table partition happen elsewhere and cannot be "
                        "captured by triggers.",
                        "Detach the foreign partition, or do not read this table in a stream "
                        "table.");
        }
        const std::string tbl = qualified(m.schema, m.name);
        create_triggers(key, m.relid, tbl, true, row_level);
        auto rows = spi::exec("SELECT EXISTS (SELECT 1 FROM " + tbl + ")");
        changed = changed || (rows.scalar() && *rows.scalar() == "t");
    }
    for (const auto& [carrier, tbl] : trigger_carriers(relid, key)) {
        if (current.count(carrier) != 0) {
            continue;
        }
        drop_triggers(key, carrier, tbl);
        auto rows = spi::exec("SELECT EXISTS (SELECT 1 FROM " + tbl + ")");
        changed = changed || (rows.scalar() && *rows.scalar() == "t");
    }
    return changed;
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
    return catalog::has_stable_names() ? computed_stable_name(relid) : oid_text(relid);
}

}  // namespace

bool creating_triggers() {
    return g_creating_triggers;
}

SourceNames resolve(Oid relid) {
    SourceNames out;
    auto key = catalog_key(relid);
    out.stable_name = key ? *key : new_key(relid);
    out.buffer = qualified(kChangeSchema, capture_object_names(out.stable_name).buffer_table);
    if (key && citus::loaded()) {  // only Citus sources have state copies
        out.state = state::copy_of(*key).value_or("");
    }
    return out;
}

std::string stable_name_of(Oid relid) {
    if (catalog::has_stable_names()) {
        // Recorded only once a catalog has stable names (the 0.31.0 -> 0.32.0 update
        // computes them through this function, the column still empty).
        if (const auto src = catalog::source(relid); src && src->stable_name) {
            return *src->stable_name;
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
        if (catalog::claim_buffer(relid, sysid)) {
            spi::run("DELETE FROM " +
                     qualified(kChangeSchema, capture_object_names(*key).buffer_table));
        }
        sync_columns(*key, relid, src, false);
        if (wal_captured(relid)) {
            return *key;
        }
        if (reconcile_members(*key, relid, src)) {
            write_recompute_marker(*key, relid);
        }
        return *key;
    }
    const citus::Placement placement = citus::placement_of(relid);
    // Citus tables always, local tables when their slots were made (cdc_mode 'wal').
    const bool wal =
        placement.kind != citus::Placement::Kind::local ||
        (catalog::has_wal_capture() && !catalog::worker_slots(computed_stable_name(relid)).empty());
    if (src.relkind != 'r' && src.relkind != 'p') {
        throw Error(ERRCODE_WRONG_OBJECT_TYPE,
                    "cannot capture changes of \"" + src.schema + "." + src.name + "\"",
                    "Only plain and partitioned tables can be sources of a stream table.",
                    "Read the underlying tables instead, or use refresh_mode => 'full'.");
    }
    const bool stable = catalog::has_stable_names();
    std::string sn = new_key(relid);
    if (stable) {
        if (const auto clash = catalog::source_with_key(sn)) {
            throw Error(ERRCODE_DUPLICATE_OBJECT,
                        "stable name collision: \"" + src.schema + "." + src.name + "\" and " +
                            pg::rel_name(clash->relid).value_or(oid_text(clash->relid)) +
                            " both have stable name " + sn,
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
        cols += ", " + quote_ident(buffer_column_name(c.attnum)) + " " + c.type;
    }
    spi::run("CREATE TABLE " + buffer + " (" + cols + ")");
    spi::run("CREATE INDEX " + quote_ident(n.xid_index) + " ON " + buffer + " (\"__pgt_xid\")");
    spi::run("COMMENT ON TABLE " + buffer + " IS " +
             quote_literal("pg_trickle change buffer of " + src.schema + "." + src.name));
    if (wal) {
        // Citus table: its changes arrive through the slots wal::prepare_sources made.
        catalog::insert_source(relid, sn, "wal", placement.name(), sysid);
        return sn;
    }
    write_trigger_function(sn, src);
    (void)reconcile_members(sn, relid, src);  // the first refresh computes from scratch
    catalog::insert_source(relid, sn, "trigger", "local", sysid);
    return sn;
}

void switch_to_wal(Oid relid) {
    auto key = catalog_key(relid);
    if (!key) {
        return;
    }
    const SourceInfo src = source_info(relid);
    drop_all_triggers(*key, relid, src);
    spi::run("DROP FUNCTION IF EXISTS " +
             qualified(kChangeSchema, capture_object_names(*key).trigger_function) + "()");
    catalog::set_cdc_mode(relid, "wal");
}

void switch_to_triggers(Oid relid) {
    auto key = catalog_key(relid);
    if (!key) {
        return;
    }
    catalog::set_cdc_mode(relid, "trigger");
    const SourceInfo src = source_info(relid);
    write_trigger_function(*key, src);
    (void)reconcile_members(*key, relid, src);
}

void sync_source(Oid relid, bool untrusted) {
    auto key = catalog_key(relid);
    if (!key) {
        return;
    }
    sync_columns(*key, relid, source_info(relid), untrusted);
}

std::vector<Oid> tables_read(Query* query) {
    List* tables = NIL;
    pg_call(
        [&]() noexcept { query_tree::collect_tables(query, query_tree::TableWalk{}, &tables); });
    return oid_list(tables);
}

std::optional<std::string> only_limitation(Oid view) {
    List* tables = NIL;
    pg_call([&]() noexcept {
        query_tree::TableWalk only;
        only.from_only = true;
        query_tree::collect_tables(query_tree::view_query_copy(view), only, &tables);
    });
    for (const Oid relid : oid_list(tables)) {
        auto r = spi::exec(
            "SELECT pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.' "
            "OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname) FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace WHERE "
            "c.oid OPERATOR(pg_catalog.=) $1::pg_catalog.oid AND (c.relkind OPERATOR(pg_catalog.=) "
            "'p' OR "
            "EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i WHERE i.inhparent "
            "OPERATOR(pg_catalog.=) c.oid))",
            {oid_text(relid)});
        if (r.scalar()) {
            return "FROM ONLY " + *r.scalar() +
                   ", which has partitions or inheritance children (its change buffer also "
                   "holds their rows)";
        }
    }
    return std::nullopt;
}

void reconcile_all() {
    for (const auto& src : catalog::captured_sources()) {
        if (src.cdc_mode == "wal") {
            continue;
        }
        if (reconcile_members(src.key, src.relid, source_info(src.relid))) {
            write_recompute_marker(src.key, src.relid);
        }
    }
}

void note_dropped_member(const std::string& trigger_name) {
    const auto src = catalog::source_with_trigger(trigger_name);
    if (!src) {
        return;
    }
    auto exists =
        spi::exec("SELECT pg_catalog.to_regclass($1) IS NOT NULL",
                  {qualified(kChangeSchema, capture_object_names(src->key).buffer_table)});
    if (exists.scalar() && *exists.scalar() == "t") {
        write_recompute_marker(src->key, src->relid);
    }
}

void drop_source_if_unused(Oid relid) {
    auto key = catalog_key(relid);
    if (!key) {
        return;
    }
    // A Citus source is captured for its differential readers only: one that only stream
    // tables maintained by full refresh read keeps no slots (they recompute every time).
    if (catalog::reader_count(
            relid, /*differential_only=*/wal_captured(relid) && wal::wants_wal(relid)) != 0) {
        return;
    }
    const CaptureObjectNames n = capture_object_names(*key);
    const SourceInfo src = source_info(relid);
    if (wal_captured(relid)) {
        wal::drop_source(*key, qualified(src.schema, src.name));
        state::drop(*key);
        spi::run("DROP TABLE IF EXISTS " + qualified(kChangeSchema, n.buffer_table));
        catalog::delete_source(relid);
        return;
    }
    drop_all_triggers(*key, relid, src);
    spi::run("DROP FUNCTION IF EXISTS " + qualified(kChangeSchema, n.trigger_function) + "()");
    spi::run("DROP TABLE IF EXISTS " + qualified(kChangeSchema, n.buffer_table));
    catalog::delete_source(relid);
}

}  // namespace pgt::capture
