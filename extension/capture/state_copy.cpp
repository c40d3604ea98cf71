// State copies of Citus sources (state_copy.h).
#include "capture/state_copy.h"

#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "boundary/guard.h"
#include "boundary/pg.h"
#include "boundary/spi.h"
#include "catalog/sources.h"
#include "citus/citus.h"
#include "common/oids.h"
#include "core/sql_ident.h"
#include "core/stable_name.h"

extern "C" {
#include "utils/errcodes.h"
}

namespace pgt::capture::state {
namespace {

using sql::qualified;
using sql::quote_ident;

/// row_image_id takes at most 100 arguments: wider rows are hashed in chunks, then the chunks.
constexpr size_t kImageChunk = 90;

struct CopyColumn {
    std::string name, type, collation;
    bool operator==(const CopyColumn& o) const {
        return name == o.name && type == o.type && collation == o.collation;
    }
};

/// The capture columns (c<attnum>) of a table in pgtrickle_changes, in attribute order.
std::vector<CopyColumn> capture_columns(const std::string& table) {
    auto r = spi::exec(
        "SELECT a.attname::pg_catalog.text, pg_catalog.format_type(a.atttypid, a.atttypmod), "
        "CASE WHEN a.attcollation OPERATOR(pg_catalog.<>) 0 THEN pg_catalog.format('%I.%I', "
        "cn.nspname, co.collname) END FROM pg_catalog.pg_attribute a LEFT JOIN "
        "pg_catalog.pg_collation co ON co.oid OPERATOR(pg_catalog.=) a.attcollation LEFT JOIN "
        "pg_catalog.pg_namespace cn ON cn.oid OPERATOR(pg_catalog.=) co.collnamespace WHERE "
        "a.attrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1) AND a.attnum "
        "OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped AND a.attname OPERATOR(pg_catalog.~) "
        "'^c[0-9]+$' ORDER BY a.attnum",
        {qualified(kChangeSchema, table)});
    std::vector<CopyColumn> out;
    for (const auto& row : r.rows) {
        out.push_back({*row[0], *row[1], row[2].value_or("")});
    }
    return out;
}

std::string image_of(const std::vector<std::string>& values) {
    if (values.empty()) {
        return "pgtrickle.row_image_id(NULL::pg_catalog.int4)";
    }
    std::vector<std::string> chunks;
    for (size_t i = 0; i < values.size(); i += kImageChunk) {
        std::string args;
        for (size_t j = i; j < values.size() && j < i + kImageChunk; ++j) {
            args += (args.empty() ? "" : ", ") + values[j];
        }
        chunks.push_back("pgtrickle.row_image_id(" + args + ")");
    }
    if (chunks.size() == 1) {
        return chunks[0];
    }
    return image_of(chunks);
}

std::vector<std::string> quoted_names(const std::vector<CopyColumn>& cols) {
    std::vector<std::string> out;
    out.reserve(cols.size());
    for (const auto& c : cols) {
        out.push_back(quote_ident(c.name));
    }
    return out;
}

/// A filled copy holds one sentinel row, all NULL (no source row has a NULL image): a
/// copy is unlogged, so after a crash, on a standby promoted or in a base backup restored it
/// is empty, sentinel included, and its readers' next refresh fills it again. One created
/// (or rebuilt) is empty until its first refill; drains leave it alone until then.
void mark_filled(const std::string& copy) {
    spi::run("INSERT INTO " + copy + " (\"__pgt_image\") VALUES (NULL)");
}

/// "a,b,c" as {a, b, c}.
std::vector<std::string> split_list(const std::string& text) {
    std::vector<std::string> out;
    std::string part;
    for (char ch : text + ",") {
        if (ch != ',') {
            part += ch;
        } else if (!part.empty()) {
            out.push_back(part);
            part.clear();
        }
    }
    return out;
}

std::string key_of(Oid relid) {
    const auto src = catalog::source(relid);
    if (!src) {
        throw Error(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    "relation with OID " + oid_text(relid) + " is not a captured source");
    }
    return src->key;
}

/// Index the copy of `key` on each of `keys` (capture columns) it has and is not indexed on
/// yet: on the columns deltas look rows up by.
void ensure_indexes(const std::string& key, const std::vector<std::vector<std::string>>& keys,
                    const std::vector<std::string>& include = {}) {
    const CaptureObjectNames n = capture_object_names(key);
    const std::string copy = qualified(kChangeSchema, n.state_table);
    std::set<std::string> have;
    for (const auto& c : capture_columns(n.state_table)) {
        have.insert(c.name);
    }
    std::set<std::vector<std::string>> made;
    for (const auto& k : keys) {
        bool usable = !k.empty();
        for (const auto& c : k) {
            usable = usable && have.count(c) > 0;
        }
        if (!usable || !made.insert(k).second) {
            continue;
        }
        std::vector<std::string> q;
        std::string suffix;
        for (const auto& c : k) {
            q.push_back(quote_ident(c));
            suffix += "_" + c;
        }
        std::vector<std::string> inc;
        for (const auto& c : include) {
            if (std::find(k.begin(), k.end(), c) == k.end() &&
                (have.count(c) > 0 || c == "__pgt_image")) {
                inc.push_back(quote_ident(c));
                suffix += (inc.size() == 1 ? "_i_" : "_") + c;
            }
        }
        std::string name = "idx_state_" + key + suffix;
        if (name.size() > 63) {
            name = "idx_state_" + key + "_" + std::to_string(std::hash<std::string>{}(suffix));
            name = name.substr(0, 63);
        }
        if (spi::exec("SELECT pg_catalog.to_regclass($1) IS NULL", {qualified(kChangeSchema, name)})
                .scalar() == std::optional<std::string>("t")) {
            spi::run("CREATE INDEX " + quote_ident(name) + " ON " + copy + " (" +
                     sql::join(q, ", ") + ")" +
                     (inc.empty() ? "" : " INCLUDE (" + sql::join(inc, ", ") + ")"));
        }
    }
}

/// The capture columns of source `relid` that it is indexed on (plain btree indexes) and,
/// for a distributed table, its distribution column.
std::vector<std::vector<std::string>> source_keys(Oid relid) {
    std::vector<std::vector<std::string>> keys;
    auto idx = spi::exec(
        "SELECT DISTINCT pg_catalog.array_to_string(ARRAY(SELECT 'c' OPERATOR(pg_catalog.||) "
        "u.k FROM pg_catalog.unnest(i.indkey::pg_catalog.int2[]) WITH ORDINALITY AS u(k, o) "
        "WHERE u.o OPERATOR(pg_catalog.<=) i.indnkeyatts ORDER BY u.o), ',') FROM "
        "pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid OPERATOR(pg_catalog.=) "
        "i.indexrelid JOIN pg_catalog.pg_am am ON am.oid OPERATOR(pg_catalog.=) ic.relam WHERE "
        "i.indrelid OPERATOR(pg_catalog.=) $1::pg_catalog.oid AND i.indexprs IS NULL AND "
        "i.indpred IS NULL AND am.amname OPERATOR(pg_catalog.=) 'btree'",
        {oid_text(relid)});
    for (const auto& row : idx.rows) {
        keys.push_back(split_list(row[0].value_or("")));
    }
    if (citus::loaded() && citus::placement_of(relid).kind == citus::Placement::Kind::distributed) {
        auto dist = spi::exec(
            "SELECT 'c' OPERATOR(pg_catalog.||) a.attnum FROM pg_catalog.pg_dist_partition p "
            "JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) p.logicalrelid "
            "AND a.attname OPERATOR(pg_catalog.=) pg_catalog.column_to_column_name("
            "p.logicalrelid, p.partkey) WHERE p.logicalrelid OPERATOR(pg_catalog.=) "
            "$1::pg_catalog.oid",
            {oid_text(relid)});
        if (dist.scalar()) {
            keys.push_back(std::vector<std::string>{*dist.scalar()});
        }
    }
    return keys;
}

/// Create the copy of `key` with the buffer's capture columns, and its indexes.
void create(const std::string& key, Oid relid) {
    const CaptureObjectNames n = capture_object_names(key);
    const std::string copy = qualified(kChangeSchema, n.state_table);
    std::string defs;
    for (const auto& c : capture_columns(n.buffer_table)) {
        defs += quote_ident(c.name) + " " + c.type +
                (c.collation.empty() ? std::string() : " COLLATE " + c.collation) + ", ";
    }
    // Unlogged: its upkeep and fill write no WAL (which slots on this server would have to
    // decode, and which would count toward their lag); what a crash empties is filled again.
    spi::run("CREATE UNLOGGED TABLE " + copy + " (" + defs + "\"__pgt_image\" pg_catalog.int8)");
    spi::run("CREATE INDEX " + quote_ident(n.state_image_index) + " ON " + copy +
             " (\"__pgt_image\")");
    ensure_indexes(key, source_keys(relid));
    // Refreshes read it as their stream tables' owners, who may read the buffer: the same.
    auto readers = spi::exec(
        "SELECT DISTINCT pg_catalog.quote_ident(r.rolname::pg_catalog.text) FROM "
        "pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) AS a JOIN pg_catalog.pg_roles r "
        "ON r.oid OPERATOR(pg_catalog.=) a.grantee WHERE c.oid OPERATOR(pg_catalog.=) "
        "pg_catalog.to_regclass($1) AND a.privilege_type OPERATOR(pg_catalog.=) 'SELECT' AND "
        "a.grantee OPERATOR(pg_catalog.<>) c.relowner",
        {qualified(kChangeSchema, n.buffer_table)});
    for (const auto& row : readers.rows) {
        spi::run("GRANT SELECT ON " + copy + " TO " + *row[0]);
    }
    spi::run("COMMENT ON TABLE " + copy + " IS " +
             sql::quote_literal("pg_trickle state copy of source " + key +
                                ": its rows at its change buffer's frontier"));
}

}  // namespace

std::optional<std::string> copy_of(const std::string& key) {
    if (const auto c = copy_info(key)) {
        return c->name;
    }
    return std::nullopt;
}

std::optional<CopyInfo> copy_info(const std::string& key) {
    const std::string copy = qualified(kChangeSchema, capture_object_names(key).state_table);
    auto r = spi::exec("SELECT pg_catalog.to_regclass($1) IS NOT NULL", {copy});
    if (r.scalar() != std::optional<std::string>("t")) {
        return std::nullopt;
    }
    auto filled =
        spi::exec("SELECT EXISTS (SELECT 1 FROM " + copy + " WHERE \"__pgt_image\" IS NULL)");
    return CopyInfo{copy, filled.scalar() == std::optional<std::string>("t")};
}

/// Keep autovacuum off `copy` until this transaction ends (one that runs now is cancelled by
/// the server once it blocks us). A transaction that changes the copy's pg_class row (a
/// GRANT, an index) and then ANALYZEs it would otherwise deadlock with an autovacuum that
/// began in between: it waits for our row, we for its lock.
void hold_off_autovacuum(const std::string& copy) {
    spi::run("LOCK TABLE " + copy + " IN SHARE UPDATE EXCLUSIVE MODE");
}

void ensure(Oid relid, const std::vector<std::vector<int>>& lookup_keys,
            const std::set<int>& used) {
    const std::string key = key_of(relid);
    if (!copy_of(key)) {
        create(key, relid);
    }
    hold_off_autovacuum(*copy_of(key));
    // Lookups read the index alone: it includes what the reader reads, and the image (the
    // reads skip the sentinel by it).
    std::vector<std::string> include;
    if (used.count(0) > 0) {
        for (const auto& c : capture_columns(capture_object_names(key).state_table)) {
            include.push_back(c.name);
        }
    } else {
        for (int attnum : used) {
            include.push_back(buffer_column_name(attnum));
        }
    }
    include.emplace_back("__pgt_image");
    std::vector<std::vector<std::string>> keys;
    for (const auto& k : lookup_keys) {
        std::vector<std::string> cols;
        cols.reserve(k.size());
        for (int attnum : k) {
            cols.push_back(buffer_column_name(attnum));
        }
        keys.push_back(cols);
    }
    ensure_indexes(key, keys, include);
}

bool sync_columns(const std::string& key) {
    const CaptureObjectNames n = capture_object_names(key);
    if (!copy_of(key)) {
        return false;
    }
    if (capture_columns(n.state_table) == capture_columns(n.buffer_table)) {
        return false;
    }
    // The columns it is indexed on, to index the new copy on those that are still there.
    auto idx = spi::exec(
        "SELECT pg_catalog.array_to_string(ARRAY(SELECT a.attname::pg_catalog.text FROM "
        "pg_catalog.unnest(i.indkey::pg_catalog.int2[]) WITH ORDINALITY AS u(k, o) JOIN "
        "pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid AND a.attnum "
        "OPERATOR(pg_catalog.=) u.k ORDER BY u.o), ',') FROM pg_catalog.pg_index i WHERE "
        "i.indrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1)",
        {*copy_of(key)});
    std::vector<std::vector<std::string>> keys;
    for (const auto& row : idx.rows) {
        keys.push_back(split_list(row[0].value_or("")));
    }
    const auto src = catalog::source_with_key(key);
    drop(key);
    if (src) {
        create(key, src->relid);
        ensure_indexes(key, keys);
    }
    return true;
}

void refill(Oid relid) {
    const std::string key = key_of(relid);
    const auto copy = copy_of(key);
    if (!copy) {
        return;
    }
    hold_off_autovacuum(*copy);
    (void)sync_columns(key);
    const auto cols = capture_columns(capture_object_names(key).state_table);
    // The source's column behind each c<attnum>, NULL for one it no longer has.
    std::map<std::string, std::string> source_column;
    for (const auto& row :
         spi::exec("SELECT 'c' OPERATOR(pg_catalog.||) attnum, "
                   "pg_catalog.quote_ident(attname::pg_catalog.text) FROM pg_catalog.pg_attribute "
                   "WHERE attrelid OPERATOR(pg_catalog.=) $1::pg_catalog.oid AND attnum "
                   "OPERATOR(pg_catalog.>) 0 AND NOT attisdropped",
                   {oid_text(relid)})
             .rows) {
        source_column[*row[0]] = *row[1];
    }
    std::vector<std::string> values;
    for (const auto& c : cols) {
        const auto it = source_column.find(c.name);
        values.push_back(it != source_column.end() ? "s." + it->second : "NULL::" + c.type);
    }
    auto targets = quoted_names(cols);
    targets.emplace_back("\"__pgt_image\"");
    // DELETE, not TRUNCATE: a refresh reading the copy under an older snapshot must still
    // see the rows it describes.
    spi::run("DELETE FROM " + *copy);
    const std::string image = image_of(values);
    values.push_back(image);
    spi::run("INSERT INTO " + *copy + " (" + sql::join(targets, ", ") + ") SELECT " +
             sql::join(values, ", ") + " FROM ONLY " +
             qualified(pg::namespace_name(pg::rel_namespace(relid)).value_or(""),
                       pg::rel_name(relid).value_or("")) +
             " AS s");
    mark_filled(*copy);
    // Fresh statistics for the deltas' plans (autovacuum would come later).
    spi::run("ANALYZE " + *copy);
}

void drop(const std::string& key) {
    if (const auto copy = copy_of(key)) {
        spi::run("DROP TABLE " + *copy);
    }
}

Applier::Applier(const std::string& key) {
    const auto copy = copy_info(key);
    if (!copy || !copy->filled) {
        return;  // its readers' next full refresh fills it
    }
    const CaptureObjectNames n = capture_object_names(key);
    copy_ = copy->name;
    buffer_ = qualified(kChangeSchema, n.buffer_table);
    std::vector<std::string> targets = quoted_names(capture_columns(n.state_table));
    std::vector<std::string> values;
    values.reserve(targets.size() + 1);
    for (const auto& c : targets) {
        values.push_back("b." + c);
    }
    image_ = image_of(values);
    values.push_back(image_);
    targets.emplace_back("\"__pgt_image\"");
    insert_ = "INSERT INTO " + copy_ + " (" + sql::join(targets, ", ") + ") SELECT " +
              sql::join(values, ", ");
}

void Applier::apply(const std::vector<std::string>& tids) {
    if (copy_.empty() || tids.empty()) {
        return;
    }
    std::string array = "{";
    for (const auto& t : tids) {
        array += (array.size() > 1 ? "," : "") + std::string("\"") + t + "\"";
    }
    array += "}";
    const std::string rows = " FROM " + buffer_ +
                             " AS b WHERE b.ctid OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.tid[]) "
                             "AND b.\"__pgt_op\" OPERATOR(pg_catalog.=) ";
    // Inserted rows first: a row inserted and deleted within one batch nets out.
    spi::run(insert_ + rows + "'I'", {array});
    // One copy per deleted row, found by its image (the index); duplicates each take one.
    auto r = spi::exec(
        "WITH d AS (SELECT " + image_ + " AS img, pg_catalog.count(*) AS n" + rows +
            "'D' GROUP BY 1), gone AS (DELETE FROM " + copy_ +
            " AS s USING (SELECT v.t FROM d CROSS JOIN LATERAL (SELECT c.ctid AS t FROM " + copy_ +
            " AS c WHERE c.\"__pgt_image\" OPERATOR(pg_catalog.=) d.img LIMIT d.n) AS v) AS x "
            "WHERE s.ctid OPERATOR(pg_catalog.=) x.t RETURNING 1) SELECT ((SELECT "
            "COALESCE(pg_catalog.sum(d.n), 0) FROM d)::pg_catalog.int8 OPERATOR(pg_catalog.-) "
            "(SELECT pg_catalog.count(*) FROM gone))::pg_catalog.text",
        {array});
    unmatched_ += std::stoll(r.scalar().value_or("0"));
}

}  // namespace pgt::capture::state
