// The preflight runner: gathers facts on every node of the deployment and applies the
// rules of core/preflight_rules.h. A single server is checked alone. A Citus coordinator
// is checked with its active primary workers (pg_dist_node), each read through the
// coordinator's own backend with run_command_on_workers: the way pg_trickle's poller
// reaches them (Citus's credentials), and before pg_trickle is installed anywhere.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "client/connection.h"
#include "core/json.h"
#include "core/preflight_rules.h"

namespace pgt::client {

/// The checks of one node.
struct NodeReport {
    std::string node;  ///< "host:port"
    preflight::NodeRole role = preflight::NodeRole::single;
    std::vector<preflight::Check> checks;
    /// The coordinator could not reach this worker (its "reachable" check failed).
    bool unreachable = false;
};

/// The checks of every node.
struct PreflightReport {
    std::vector<NodeReport> nodes;
    /// Counts over all checks of all nodes.
    preflight::Summary summary() const;
    /// The nodes that could not be reached, "host:port" each.
    std::vector<std::string> unreachable() const;
};

/// Thrown when preflight is pointed at a node it cannot check the deployment from (a
/// Citus worker); hint() says where to point it instead.
class PreflightError : public std::runtime_error {
  public:
    PreflightError(const std::string& message, std::string hint)
        : std::runtime_error(message), hint_(std::move(hint)) {}
    const std::string& hint() const { return hint_; }

  private:
    std::string hint_;
};

/// Reads the facts the single-node rules need from a node.
preflight::NodeFacts gather_facts(Node& node);

/// The SQL that reads a Citus node's facts as one JSON text (one row, one column), run
/// on the coordinator directly and on each worker through run_command_on_workers.
const std::string& citus_facts_sql();

/// NodeFacts from the JSON text citus_facts_sql() returns. Throws json::ParseError.
preflight::NodeFacts parse_citus_facts(std::string_view json_text);

/// How long preflight asks again for a worker the coordinator could not connect to (up to
/// retry::Policy's attempts, jittered backoff) before reporting it unreachable.
inline constexpr int64_t worker_retry_ms = 5000;

/// Runs all checks on every node reachable from the entry node. Throws PreflightError
/// when the entry node is a Citus worker.
PreflightReport run_preflight(Node& entry, std::string_view cli_version);

}  // namespace pgt::client
