#include "client/status.h"

#include <pqxx/transaction>

#include "client/catalog.h"

namespace pgt::client {

namespace {

std::string text_of(const json::Value& v) {
    return v.is_string() ? v.as_string() : "";
}

}  // namespace

StatusSnapshot read_status(Node& node, const std::optional<std::string>& name) {
    pqxx::read_transaction tx(node.conn());
    // Stable, machine-friendly text for timestamps and intervals, for this transaction only.
    tx.exec(
        "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; "
        "SET LOCAL IntervalStyle = 'iso_8601'");
    std::optional<long long> id;
    if (name) {
        const std::string find_sql =
            "SELECT st.pgt_id FROM pgtrickle.pgt_stream_tables st "
            "WHERE st.pgt_relid = pg_catalog.to_regclass($1)";
        node.trace(find_sql);
        const pqxx::result r = tx.exec_params(find_sql, *name);
        if (r.empty()) {
            throw NotFound("stream table \"" + *name + "\" does not exist");
        }
        id = r[0][0].as<long long>();
    }
    const char* id_param = nullptr;
    std::string id_text;
    if (id) {
        id_text = std::to_string(*id);
        id_param = id_text.c_str();
    }
    const std::string st_sql =
        "SELECT s.*, pg_catalog.date_part('epoch', s.staleness)::float8 AS staleness_seconds "
        "FROM pgtrickle.pgt_status s WHERE $1::bigint IS NULL OR s.pgt_id = $1::bigint "
        "ORDER BY s.pgt_schema, s.pgt_name";
    const std::string src_sql =
        "SELECT ss.* FROM pgtrickle.pgt_source_status ss WHERE $1::bigint IS NULL OR "
        "ss.source_relid IN (SELECT d.source_relid FROM pgtrickle.pgt_dependencies d "
        "WHERE d.pgt_id = $1::bigint) ORDER BY ss.source_relid::text";
    StatusSnapshot snap;
    node.trace(st_sql);
    snap.stream_tables = rows_to_json(tx.exec_params(st_sql, id_param));
    node.trace(src_sql);
    snap.sources = rows_to_json(tx.exec_params(src_sql, id_param));
    return snap;
}

Health assess_health(const json::Value& stream_tables) {
    Health h;
    const auto& rows = stream_tables.as_array();
    for (const json::Value& st : rows) {
        const std::string status = text_of(st["status"]);
        if (status != "error" && status != "suspended") {
            continue;
        }
        std::string problem =
            text_of(st["pgt_schema"]) + "." + text_of(st["pgt_name"]) + " (" + status;
        if (const std::string err = text_of(st["last_error"]); !err.empty()) {
            problem += ": " + err;
        }
        h.problems.push_back(problem + ")");
    }
    h.healthy = h.problems.empty();
    const std::size_t n = rows.size();
    const std::string count = std::to_string(n) + (n == 1 ? " stream table" : " stream tables");
    if (n == 0) {
        h.message = "no stream tables";
    } else if (h.healthy) {
        h.message = count + ", all healthy";
    } else {
        h.message = std::to_string(h.problems.size()) + " of " + count + " unhealthy: ";
        for (std::size_t i = 0; i < h.problems.size(); ++i) {
            h.message += (i ? ", " : "") + h.problems[i];
        }
    }
    return h;
}

}  // namespace pgt::client
