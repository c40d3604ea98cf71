#include "client/node_probe.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <set>
#include <thread>

#include <pqxx/except>
#include <pqxx/result>
#include <pqxx/transaction>

#include "client/catalog.h"
#include "core/retry.h"

namespace pgt::client {

namespace {

using Clock = std::chrono::steady_clock;

std::string first_line(std::string s) {
    s = s.substr(0, s.find('\n'));
    while (!s.empty() && (s.back() == ' ' || s.back() == '\r')) {
        s.pop_back();
    }
    return s;
}

}  // namespace

std::optional<WorkerSelf> citus_worker_self(Node& node) {
    if (!has_citus(node)) {
        return std::nullopt;
    }
    const std::string sql =
        "SELECT g.groupid, (SELECT n.nodename OPERATOR(pg_catalog.||) ':' "
        "OPERATOR(pg_catalog.||) n.nodeport FROM pg_catalog.pg_dist_node n "
        "WHERE n.groupid OPERATOR(pg_catalog.=) 0 LIMIT 1) "
        "FROM pg_catalog.pg_dist_local_group g";
    node.trace(sql);
    pqxx::read_transaction tx(node.conn());
    const pqxx::result r = tx.exec(sql);
    if (r.empty() || r[0][0].as<long long>() <= 0) {
        return std::nullopt;
    }
    return WorkerSelf{r[0][0].as<long long>(), r[0][1].is_null() ? "" : r[0][1].c_str()};
}

std::vector<NodeReachability> active_nodes(Node& node) {
    const std::string sql =
        "SELECT n.nodeid, n.nodename, n.nodeport, n.groupid OPERATOR(pg_catalog.=) 0 "
        "FROM pg_catalog.pg_dist_node n WHERE n.isactive "
        "AND n.noderole OPERATOR(pg_catalog.=) 'primary' "
        "ORDER BY n.groupid, n.nodename, n.nodeport";
    node.trace(sql);
    pqxx::read_transaction tx(node.conn());
    std::vector<NodeReachability> out;
    for (const pqxx::row& r : tx.exec(sql)) {
        NodeReachability n;
        n.nodeid = r[0].as<long long>();
        n.host = r[1].c_str();
        n.port = r[2].as<int>();
        n.node = n.host + ":" + r[2].c_str();
        n.role = r[3].as<bool>() ? "coordinator" : "worker";
        out.push_back(std::move(n));
    }
    return out;
}

namespace {

// One round: SELECT 1 on every node at once, through the coordinator, within timeout_ms.
// Returns the answers, or the error that ended the round.
std::vector<ProbeAnswer> probe_round(Node& node, const NodeProbeOptions& options,
                                     int64_t timeout_ms, std::optional<std::string>& error) {
    // Citus warns of each failed connection: the nodes' status says it already.
    const std::string settings_sql =
        "SELECT pg_catalog.set_config('citus.node_connection_timeout', $1, true), "
        "pg_catalog.set_config('statement_timeout', $2, true), "
        "pg_catalog.set_config('client_min_messages', 'error', true)";
    // The command runs on each node under that node's search_path: it names everything
    // qualified. Its answer is pg_trickle's version there ("" when not installed).
    const std::string command =
        "SELECT COALESCE((SELECT e.extversion FROM pg_catalog.pg_extension e "
        "WHERE e.extname OPERATOR(pg_catalog.=) 'pg_trickle'), '')";
    const std::string sql =
        "SELECT r.nodeid, r.success, r.result FROM "
        "pg_catalog.run_command_on_all_nodes($1::pg_catalog.text) r";
    std::vector<ProbeAnswer> answers;
    try {
        // run_command_on_all_nodes is not read-only as far as PostgreSQL knows: a plain
        // transaction, rolled back.
        pqxx::work tx(node.conn());
        node.trace(settings_sql);
        tx.exec_params(settings_sql, std::to_string(options.connect_timeout_ms),
                       std::to_string(timeout_ms));
        node.trace(sql);
        for (const pqxx::row& r : tx.exec_params(sql, command)) {
            answers.push_back({r[0].as<long long>(), r[1].as<bool>(),
                               r[2].is_null() ? std::string() : std::string(r[2].c_str())});
        }
    } catch (const pqxx::broken_connection&) {
        throw;
    } catch (const pqxx::sql_error& e) {
        error = first_line(e.what());
    }
    return answers;
}

}  // namespace

void apply_probe_round(std::vector<NodeReachability>& nodes,
                       const std::vector<ProbeAnswer>& answers,
                       const std::optional<std::string>& round_error) {
    for (NodeReachability& n : nodes) {
        if (n.reachable == true) {
            continue;
        }
        const ProbeAnswer* answer = nullptr;
        for (const ProbeAnswer& a : answers) {
            if (a.nodeid == n.nodeid) {
                answer = &a;
            }
        }
        if (answer && answer->success) {
            n.reachable = true;
            n.extension_version = answer->result;
            n.error.clear();
        } else if (answer) {
            n.reachable = false;
            n.error = first_line(answer->result);
            if (n.error.empty()) {
                n.error = "the coordinator could not run a statement there";
            }
        } else if (!n.reachable.has_value()) {
            n.error = round_error ? "the reachability check failed: " + *round_error
                                  : "run_command_on_all_nodes did not reach it (another "
                                    "citus.cluster_name?)";
        }
    }
}

void mark_version_mismatches(std::vector<NodeReachability>& nodes, const std::string& expected) {
    for (NodeReachability& n : nodes) {
        if (n.reachable != true || !n.extension_version || *n.extension_version == expected) {
            continue;
        }
        n.version_mismatch = true;
        const std::string mine =
            expected.empty() ? "pg_trickle is not installed" : "pg_trickle is at " + expected;
        n.error =
            (n.extension_version->empty() ? "pg_trickle is not installed there"
                                          : "pg_trickle is at " + *n.extension_version + " there") +
            ", while " + mine +
            " on the node the CLI connected to (every node needs the same version: "
            "run pgtrickle migrate against the coordinator)";
    }
}

std::vector<NodeReachability> probe_nodes(Node& node, const NodeProbeOptions& options) {
    if (!has_citus(node)) {
        return {};
    }
    std::vector<NodeReachability> nodes = active_nodes(node);
    if (nodes.empty()) {
        return nodes;
    }
    // A node that fails is asked again (a blip is not an outage), with jittered backoff,
    // within options.total_timeout_ms for the whole check.
    const retry::Policy policy;
    const auto deadline = Clock::now() + std::chrono::milliseconds(options.total_timeout_ms);
    std::mt19937 rng(std::random_device{}());
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    for (int attempt = 1;; ++attempt) {
        const auto remaining = [&] {
            return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now())
                .count();
        };
        std::optional<std::string> error;
        const auto answers = probe_round(
            node, options, std::max<int64_t>(remaining(), policy.min_attempt_ms), error);
        apply_probe_round(nodes, answers, error);
        const bool all_reached =
            std::all_of(nodes.begin(), nodes.end(),
                        [](const NodeReachability& n) { return n.reachable == true; });
        const int64_t delay = retry::delay_ms(policy, attempt, unit(rng));
        if (all_reached || !retry::another_attempt(policy, attempt, remaining(), delay)) {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    }
    const std::optional<std::string> local = read_extension_info(node).installed;
    mark_version_mismatches(nodes, local.value_or(""));
    return nodes;
}

std::vector<NodeReachability> nodes_of_slots(const std::vector<NodeReachability>& nodes,
                                             const json::Value& slots) {
    std::set<std::string> workers;
    for (const json::Value& s : slots.as_array()) {
        if (s["worker"].is_string()) {
            workers.insert(s["worker"].as_string());
        }
    }
    std::vector<NodeReachability> out;
    for (const NodeReachability& n : nodes) {
        if (workers.count(n.node)) {
            out.push_back(n);
        }
    }
    return out;
}

}  // namespace pgt::client
