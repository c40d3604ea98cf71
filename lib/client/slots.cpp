#include "client/slots.h"

#include <pqxx/transaction>

#include "client/catalog.h"

namespace pgt::client {

namespace {

// Columns of pgt_worker_slots that newer catalogs have (0.35.0: worker_lsn, failing_since).
bool has_column(pqxx::transaction_base& tx, const Node& node, const char* column) {
    const std::string sql =
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid "
        "OPERATOR(pg_catalog.=) pg_catalog.to_regclass('pgtrickle.pgt_worker_slots') "
        "AND a.attname OPERATOR(pg_catalog.=) $1::pg_catalog.name "
        "AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped)";
    node.trace(sql);
    return tx.exec_params1(sql, column)[0].as<bool>();
}

// Resolves a table named on the command line (as the user's SQL would) to its OID (as
// text), or throws NotFound. Before any transaction: it takes the user's search_path.
std::string resolve_table(Node& node, const std::string& name) {
    std::optional<std::string> oid = resolve_relation(node, name);
    if (!oid) {
        throw NotFound("table \"" + name + "\" does not exist");
    }
    return *oid;
}

// "schema.table" of a stable name, else the stable name (a dropped source).
constexpr const char* source_label_sql =
    "COALESCE((SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) "
    "FROM pgtrickle.pgt_change_tracking ct JOIN pg_catalog.pg_class c "
    "ON c.oid OPERATOR(pg_catalog.=) ct.source_relid "
    "JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace "
    "WHERE ct.source_stable_name OPERATOR(pg_catalog.=) x.source_stable_name), "
    "x.source_stable_name)";

// The function `signature` must exist for provision/drop (pg_trickle 0.35.0 and later).
void require_slot_function(pqxx::transaction_base& tx, const Node& node,
                           const std::string& signature) {
    const std::string sql =
        "SELECT pg_catalog.current_database(), EXISTS (SELECT 1 FROM pg_catalog.pg_extension e "
        "WHERE e.extname OPERATOR(pg_catalog.=) 'citus'), "
        "pg_catalog.to_regprocedure($1::pg_catalog.text) IS NOT NULL, "
        "(SELECT e.extversion FROM pg_catalog.pg_extension e "
        "WHERE e.extname OPERATOR(pg_catalog.=) 'pg_trickle')";
    node.trace(sql);
    const pqxx::row r = tx.exec_params1(sql, signature);
    // Citus is not required: local tables captured with cdc_mode 'wal' have a slot on this
    // server, managed the same way.
    if (!r[2].as<bool>()) {
        throw SlotsUnavailable(
            std::string("the installed pg_trickle ") + r[3].c_str() + " has no " + signature,
            "Install a pg_trickle build with Citus worker-slot management "
            "on every node, then update the extension (pgtrickle migrate).");
    }
}

}  // namespace

json::Value read_worker_slots(pqxx::transaction_base& tx, const Node& node,
                              const SlotFilter& filter) {
    const std::string exists_sql =
        "SELECT pg_catalog.to_regclass('pgtrickle.pgt_worker_slots') IS NOT NULL";
    node.trace(exists_sql);
    if (!tx.exec1(exists_sql)[0].as<bool>()) {
        return json::Value::array();
    }
    const bool has_lsn = has_column(tx, node, "worker_lsn");
    const std::string lsn = has_lsn ? "ws.worker_lsn" : "NULL::pg_catalog.pg_lsn";
    const std::string failing_since =
        has_column(tx, node, "failing_since") ? "ws.failing_since" : "NULL::pg_catalog.timestamptz";
    const std::string sql =
        std::string("SELECT ") + source_label_sql +
        " AS source, x.source_stable_name, x.worker_name OPERATOR(pg_catalog.||) ':' "
        "OPERATOR(pg_catalog.||) x.worker_port AS worker, "
        "x.worker_name, x.worker_port, x.slot_name, x.publication_name, "
        "x.worker_frontier::pg_catalog.text AS worker_frontier, "
        "x.worker_lsn::pg_catalog.text AS worker_lsn, "
        "(x.worker_lsn OPERATOR(pg_catalog.-) x.worker_frontier)::pg_catalog.int8 AS lag_bytes, "
        "x.last_polled_at, pg_catalog.date_part('epoch', pg_catalog.now() "
        "OPERATOR(pg_catalog.-) x.last_polled_at)::pg_catalog.float8 AS last_poll_age_seconds, "
        "x.consecutive_failures, x.last_error, x.failing_since "
        "FROM (SELECT ws.source_stable_name, ws.worker_name, ws.worker_port, ws.slot_name, "
        "ws.publication_name, ws.worker_frontier, " +
        lsn + " AS worker_lsn, ws.last_polled_at, ws.consecutive_failures, ws.last_error, " +
        failing_since +
        " AS failing_since FROM pgtrickle.pgt_worker_slots ws "
        "WHERE ($1::pg_catalog.oid IS NULL OR ws.source_stable_name OPERATOR(pg_catalog.=) ANY "
        "(SELECT ct.source_stable_name FROM pgtrickle.pgt_change_tracking ct "
        "WHERE ct.source_relid::pg_catalog.oid OPERATOR(pg_catalog.=) $1::pg_catalog.oid)) "
        "AND ($2::pg_catalog.int8 IS NULL OR ws.source_stable_name OPERATOR(pg_catalog.=) ANY "
        "(SELECT d.source_stable_name FROM pgtrickle.pgt_dependencies d "
        "WHERE d.pgt_id OPERATOR(pg_catalog.=) $2::pg_catalog.int8))) x "
        "ORDER BY 1, x.worker_name, x.worker_port";
    const char* oid_param = filter.source_oid ? filter.source_oid->c_str() : nullptr;
    std::string id_text;
    const char* id_param = nullptr;
    if (filter.pgt_id) {
        id_text = std::to_string(*filter.pgt_id);
        id_param = id_text.c_str();
    }
    node.trace(sql);
    return rows_to_json(tx.exec_params(sql, oid_param, id_param));
}

json::Value list_worker_slots(Node& node, const std::optional<std::string>& source) {
    SlotFilter filter;
    if (source) {
        filter.source_oid = resolve_table(node, *source);
    }
    pqxx::read_transaction tx(node.conn());
    tx.exec(
        "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; "
        "SET LOCAL IntervalStyle = 'iso_8601'");
    return read_worker_slots(tx, node, filter);
}

json::Value provision_worker_slots(Node& node, const std::optional<std::string>& source) {
    std::optional<std::string> oid;
    if (source) {
        oid = resolve_table(node, *source);
    }
    pqxx::work tx(node.conn());
    require_slot_function(tx, node, "pgtrickle.provision_worker_slots(regclass)");
    const std::string sql =
        std::string("SELECT ") + source_label_sql +
        " AS source, x.source_stable_name, x.worker_name OPERATOR(pg_catalog.||) ':' "
        "OPERATOR(pg_catalog.||) x.worker_port AS worker, "
        "x.worker_name, x.worker_port, x.slot_name, x.action "
        "FROM pgtrickle.provision_worker_slots($1::pg_catalog.oid::pg_catalog.regclass) x "
        "ORDER BY 1, x.worker_name, x.worker_port";
    node.trace(sql);
    json::Value rows = rows_to_json(tx.exec_params(sql, oid ? oid->c_str() : nullptr));
    tx.commit();
    return rows;
}

json::Value drop_orphan_worker_slots(Node& node) {
    pqxx::work tx(node.conn());
    require_slot_function(tx, node, "pgtrickle.drop_orphan_worker_slots()");
    const std::string sql =
        "SELECT x.worker_name OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) x.worker_port "
        "AS worker, x.worker_name, x.worker_port, "
        "x.slot_name FROM pgtrickle.drop_orphan_worker_slots() x "
        "ORDER BY x.worker_name, x.worker_port, x.slot_name";
    node.trace(sql);
    json::Value rows = rows_to_json(tx.exec(sql));
    tx.commit();
    return rows;
}

}  // namespace pgt::client
