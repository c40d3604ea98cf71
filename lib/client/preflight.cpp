#include "client/preflight.h"

#include <pqxx/transaction>

#include "client/catalog.h"

namespace pgt::client {

preflight::Summary PreflightReport::summary() const {
    preflight::Summary s;
    for (const NodeReport& n : nodes) {
        for (const preflight::Check& c : n.checks) {
            s.add(c.status);
        }
    }
    return s;
}

preflight::NodeFacts gather_facts(Node& node) {
    const std::string sql =
        "SELECT pg_catalog.current_setting('server_version_num')::int, "
        "pg_catalog.current_setting('server_version'), "
        "pg_catalog.current_setting('shared_preload_libraries'), "
        "pg_catalog.current_setting('wal_level')";
    preflight::NodeFacts f;
    {
        node.trace(sql);
        pqxx::read_transaction tx(node.conn());
        const pqxx::row r = tx.exec1(sql);
        f.server_version_num = r[0].as<int>();
        f.server_version = r[1].c_str();
        f.shared_preload_libraries = r[2].c_str();
        f.wal_level = r[3].c_str();
    }
    ExtensionInfo ext = read_extension_info(node);
    f.database = ext.database;
    f.extension_version = ext.installed;
    f.extension_available = ext.available.has_value();
    return f;
}

PreflightReport run_preflight(Node& entry, std::string_view cli_version) {
    PreflightReport report;
    report.nodes.push_back({entry.name(), preflight::NodeRole::single,
                            preflight::evaluate_single_node(gather_facts(entry), cli_version)});
    return report;
}

}  // namespace pgt::client
