#include "client/preflight.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <random>
#include <thread>

#include <pqxx/transaction>

#include "client/catalog.h"
#include "core/retry.h"

namespace pgt::client {

namespace {

using preflight::NodeFacts;
using preflight::NodeRole;

std::optional<std::string> optional_text(const json::Value& v) {
    if (v.is_string()) {
        return v.as_string();
    }
    return std::nullopt;
}

int int_of(const json::Value& v) {
    return v.is_number() ? static_cast<int>(v.as_int()) : 0;
}

bool has_extension(pqxx::transaction_base& tx, const Node& node, const char* name) {
    const std::string sql =
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension e "
        "WHERE e.extname OPERATOR(pg_catalog.=) $1::pg_catalog.name)";
    node.trace(sql);
    return tx.exec_params1(sql, name)[0].as<bool>();
}

// The distributed tables that pg_trickle captures or reads, with their replica identity.
std::vector<preflight::DistributedSource> distributed_sources(pqxx::transaction_base& tx,
                                                              const Node& node) {
    const std::string sql =
        "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname), c.relreplident "
        "FROM pg_catalog.pg_dist_partition p "
        "JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) p.logicalrelid "
        "JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace "
        "WHERE p.partmethod OPERATOR(pg_catalog.=) 'h' AND ("
        "p.logicalrelid::pg_catalog.oid OPERATOR(pg_catalog.=) ANY (SELECT "
        "ct.source_relid::pg_catalog.oid FROM pgtrickle.pgt_change_tracking ct) OR "
        "p.logicalrelid::pg_catalog.oid OPERATOR(pg_catalog.=) ANY (SELECT "
        "d.source_relid::pg_catalog.oid FROM pgtrickle.pgt_dependencies d)) ORDER BY 1";
    node.trace(sql);
    std::vector<preflight::DistributedSource> out;
    for (const pqxx::row& r : tx.exec(sql)) {
        const std::string ident = r[1].c_str();
        out.push_back({r[0].c_str(), ident.empty() ? 'd' : ident[0]});
    }
    return out;
}

struct Worker {
    std::string name;  // host:port
    std::string host;
    int port = 0;
};

// Active primary workers of the coordinator, in pg_dist_node order.
std::vector<Worker> active_workers(pqxx::transaction_base& tx, const Node& node) {
    const std::string sql =
        "SELECT n.nodename, n.nodeport FROM pg_catalog.pg_dist_node n WHERE n.isactive AND "
        "n.noderole OPERATOR(pg_catalog.=) 'primary' AND n.groupid OPERATOR(pg_catalog.<>) 0 "
        "ORDER BY n.nodename, n.nodeport";
    node.trace(sql);
    std::vector<Worker> out;
    for (const pqxx::row& r : tx.exec(sql)) {
        Worker w{"", r[0].c_str(), r[1].as<int>()};
        w.name = w.host + ":" + std::to_string(w.port);
        out.push_back(std::move(w));
    }
    return out;
}

NodeReport check_worker(const Worker& w, const std::optional<pqxx::row>& row,
                        const NodeFacts& coordinator) {
    NodeReport report{w.name, NodeRole::worker, {}, false};
    if (!row) {
        report.unreachable = true;
        report.checks.push_back(
            preflight::check_reachable("run_command_on_workers returned no row for it"));
        return report;
    }
    const bool success = (*row)[2].as<bool>();
    const std::string result = (*row)[3].is_null() ? "" : (*row)[3].c_str();
    if (!success && preflight::is_connection_error(result)) {
        report.unreachable = true;
        report.checks.push_back(preflight::check_reachable(result));
        return report;
    }
    if (!success) {
        report.checks.push_back(preflight::check_reachable(std::nullopt));
        report.checks.push_back({"facts", preflight::Status::fail,
                                 "reading the worker's settings failed: " + result,
                                 "Run the query of pgtrickle -v preflight on the worker to see "
                                 "why; the coordinator's user needs to log in there."});
        return report;
    }
    try {
        report.checks = preflight::evaluate_worker(parse_citus_facts(result), coordinator);
    } catch (const json::ParseError& e) {
        report.checks.push_back(preflight::check_reachable(std::nullopt));
        report.checks.push_back({"facts", preflight::Status::fail,
                                 std::string("unexpected answer from the worker: ") + e.what(),
                                 ""});
    }
    return report;
}

PreflightReport run_citus_preflight(Node& entry, pqxx::transaction_base& tx,
                                    std::string_view cli_version) {
    const std::string group_sql = "SELECT g.groupid FROM pg_catalog.pg_dist_local_group g";
    entry.trace(group_sql);
    const pqxx::result group = tx.exec(group_sql);
    if (!group.empty() && group[0][0].as<int>() != 0) {
        throw PreflightError(
            "this node (" + entry.name() + ") is a Citus worker (group " +
                group[0][0].as<std::string>() + "), not the coordinator",
            "Point pgtrickle at the coordinator (--dsn or PGTRICKLE_DSN): preflight discovers "
            "the workers from its pg_dist_node.");
    }
    entry.trace(citus_facts_sql());
    const NodeFacts coordinator = parse_citus_facts(tx.exec1(citus_facts_sql())[0].c_str());

    std::optional<std::vector<preflight::DistributedSource>> sources;
    if (has_extension(tx, entry, "pg_trickle")) {
        sources = distributed_sources(tx, entry);
    }
    PreflightReport report;
    report.nodes.push_back({entry.name(), NodeRole::coordinator,
                            preflight::evaluate_coordinator(coordinator, sources, cli_version),
                            false});

    const std::vector<Worker> workers = active_workers(tx, entry);
    if (workers.empty()) {
        return report;
    }
    const std::string run_sql =
        "SELECT w.nodename, w.nodeport, w.success, w.result FROM "
        "pg_catalog.run_command_on_workers($1::pg_catalog.text) w";
    // A worker that could not be connected to is asked again (a blip is not an outage),
    // with jittered backoff, within worker_retry_ms: the best answer of any round counts.
    std::map<std::string, pqxx::row> rows;
    const auto unreached = [](const pqxx::row& r) {
        return !r[2].as<bool>() &&
               preflight::is_connection_error(r[3].is_null() ? "" : r[3].c_str());
    };
    const retry::Policy policy;
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(worker_retry_ms);
    std::mt19937 rng(std::random_device{}());
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    for (int attempt = 1;; ++attempt) {
        entry.trace(run_sql);
        for (const pqxx::row& r : tx.exec_params(run_sql, citus_facts_sql())) {
            const std::string name = std::string(r[0].c_str()) + ":" + r[1].c_str();
            const auto it = rows.find(name);
            if (it == rows.end() || (unreached(it->second) && !unreached(r))) {
                rows.insert_or_assign(name, r);
            }
        }
        const bool all_reached = std::all_of(workers.begin(), workers.end(), [&](const Worker& w) {
            const auto it = rows.find(w.name);
            return it != rows.end() && !unreached(it->second);
        });
        const int64_t delay = retry::delay_ms(policy, attempt, unit(rng));
        const int64_t remaining = std::chrono::duration_cast<std::chrono::milliseconds>(
                                      deadline - std::chrono::steady_clock::now())
                                      .count();
        if (all_reached || !retry::another_attempt(policy, attempt, remaining, delay)) {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    }
    for (const Worker& w : workers) {
        auto it = rows.find(w.name);
        report.nodes.push_back(
            check_worker(w, it == rows.end() ? std::nullopt : std::optional<pqxx::row>(it->second),
                         coordinator));
    }
    return report;
}

}  // namespace

preflight::Summary PreflightReport::summary() const {
    preflight::Summary s;
    for (const NodeReport& n : nodes) {
        for (const preflight::Check& c : n.checks) {
            s.add(c.status);
        }
    }
    return s;
}

std::vector<std::string> PreflightReport::unreachable() const {
    std::vector<std::string> out;
    for (const NodeReport& n : nodes) {
        if (n.unreachable) {
            out.push_back(n.node);
        }
    }
    return out;
}

const std::string& citus_facts_sql() {
    // Also run on each worker, in a session of Citus's whose search_path is the worker's
    // default (pinning cannot reach it): every function, operator and type is qualified.
    static const std::string sql =
        "SELECT pg_catalog.json_build_object("
        "'server_version_num', "
        "pg_catalog.current_setting('server_version_num')::pg_catalog.int4, "
        "'server_version', pg_catalog.current_setting('server_version'), "
        "'shared_preload_libraries', pg_catalog.current_setting('shared_preload_libraries'), "
        "'wal_level', pg_catalog.current_setting('wal_level'), "
        "'database', pg_catalog.current_database(), "
        "'extension_version', (SELECT e.extversion FROM pg_catalog.pg_extension e "
        "WHERE e.extname OPERATOR(pg_catalog.=) 'pg_trickle'), "
        "'extension_default_version', (SELECT a.default_version FROM "
        "pg_catalog.pg_available_extensions a WHERE a.name OPERATOR(pg_catalog.=) 'pg_trickle'), "
        "'citus_version', (SELECT e.extversion FROM pg_catalog.pg_extension e "
        "WHERE e.extname OPERATOR(pg_catalog.=) 'citus'), "
        "'max_replication_slots', "
        "pg_catalog.current_setting('max_replication_slots')::pg_catalog.int4, "
        "'used_replication_slots', (SELECT pg_catalog.count(*) FROM "
        "pg_catalog.pg_replication_slots), "
        "'pgtrickle_replication_slots', (SELECT pg_catalog.count(*) FROM "
        "pg_catalog.pg_replication_slots s "
        "WHERE s.slot_name OPERATOR(pg_catalog.~~) 'pgtrickle\\_%'), "
        "'max_wal_senders', pg_catalog.current_setting('max_wal_senders')::pg_catalog.int4, "
        "'used_wal_senders', (SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity a "
        "WHERE a.backend_type OPERATOR(pg_catalog.=) 'walsender'), "
        "'output_plugin_libraries', pg_catalog.current_setting('output_plugin_libraries', "
        "true), "
        "'citus_cdc', pg_catalog.current_setting('citus.enable_change_data_capture', true)"
        ")::pg_catalog.text";
    return sql;
}

preflight::NodeFacts parse_citus_facts(std::string_view json_text) {
    const json::Value v = json::parse(json_text);
    if (!v.is_object()) {
        throw json::ParseError("not a JSON object", 0);
    }
    NodeFacts f;
    f.server_version_num = int_of(v["server_version_num"]);
    f.server_version = optional_text(v["server_version"]).value_or("");
    f.shared_preload_libraries = optional_text(v["shared_preload_libraries"]).value_or("");
    f.wal_level = optional_text(v["wal_level"]).value_or("");
    f.database = optional_text(v["database"]).value_or("");
    f.extension_version = optional_text(v["extension_version"]);
    f.extension_default_version = optional_text(v["extension_default_version"]);
    f.extension_available = f.extension_default_version.has_value();
    f.citus_version = optional_text(v["citus_version"]);
    f.max_replication_slots = int_of(v["max_replication_slots"]);
    f.used_replication_slots = int_of(v["used_replication_slots"]);
    f.pgtrickle_replication_slots = int_of(v["pgtrickle_replication_slots"]);
    f.max_wal_senders = int_of(v["max_wal_senders"]);
    f.used_wal_senders = int_of(v["used_wal_senders"]);
    f.output_plugin_libraries = optional_text(v["output_plugin_libraries"]);
    f.citus_cdc = optional_text(v["citus_cdc"]).value_or("");
    return f;
}

preflight::NodeFacts gather_facts(Node& node) {
    const std::string sql =
        "SELECT pg_catalog.current_setting('server_version_num')::pg_catalog.int4, "
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
    f.extension_default_version = ext.available;
    return f;
}

PreflightReport run_preflight(Node& entry, std::string_view cli_version) {
    {
        // run_command_on_workers is not read-only as far as PostgreSQL knows: a plain
        // transaction, rolled back (nothing is written).
        pqxx::work tx(entry.conn());
        if (has_extension(tx, entry, "citus")) {
            return run_citus_preflight(entry, tx, cli_version);
        }
    }
    PreflightReport report;
    report.nodes.push_back({entry.name(), NodeRole::single,
                            preflight::evaluate_single_node(gather_facts(entry), cli_version),
                            false});
    return report;
}

}  // namespace pgt::client
