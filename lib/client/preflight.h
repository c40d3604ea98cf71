// The preflight runner: gathers facts on every node of the deployment and applies the
// rules of core/preflight_rules.h. Today the deployment is the one server the CLI
// connected to; Citus support adds the coordinator's workers (from pg_dist_node) here.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "client/connection.h"
#include "core/preflight_rules.h"

namespace pgt::client {

/// The checks of one node.
struct NodeReport {
    std::string node;  ///< "host:port"
    preflight::NodeRole role = preflight::NodeRole::single;
    std::vector<preflight::Check> checks;
};

/// The checks of every node.
struct PreflightReport {
    std::vector<NodeReport> nodes;
    /// Counts over all checks of all nodes.
    preflight::Summary summary() const;
};

/// Reads the facts the rules need from a node.
preflight::NodeFacts gather_facts(Node& node);

/// Runs all checks on every node reachable from the entry node.
PreflightReport run_preflight(Node& entry, std::string_view cli_version);

}  // namespace pgt::client
