// Citus: can the coordinator reach every node of its cluster? The active primary nodes of
// pg_dist_node (the coordinator's own row included) are probed the way preflight reaches
// the workers: through the coordinator's backend (run_command_on_all_nodes, all nodes in
// parallel, over Citus's connections and credentials, from the node whose scheduler polls
// the slots), each with a short connection timeout and the whole probe bounded by a
// statement timeout. Used by `pgtrickle status`.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "client/connection.h"
#include "core/json.h"

namespace pgt::client {

/// How long the probe may take.
struct NodeProbeOptions {
    /// citus.node_connection_timeout of the probe: how long a node may take to accept a
    /// connection (milliseconds).
    int connect_timeout_ms = 2000;
    /// statement_timeout of the whole probe (milliseconds): every node is probed at once, so
    /// this bounds a node that accepts the connection and then hangs.
    int total_timeout_ms = 5000;
};

/// One node of pg_dist_node and whether the coordinator reached it.
struct NodeReachability {
    long long nodeid = 0;
    std::string node;  ///< "host:port" as pg_dist_node names it
    std::string host;  ///< pg_dist_node.nodename
    int port = 0;      ///< pg_dist_node.nodeport
    std::string role;  ///< "coordinator" (group 0) or "worker"
    /// true when the coordinator ran a statement there, false when it could not, nullopt
    /// when the probe itself failed (timed out, not permitted, ...) and the node is unknown.
    std::optional<bool> reachable;
    /// Reached nodes: pg_trickle's version there ("" when it is not installed there);
    /// nullopt when the node was not reached.
    std::optional<std::string> extension_version;
    /// Reached, and its pg_trickle version differs from the connected node's (a migration
    /// that did not finish, or a node added without it); `error` says which versions.
    bool version_mismatch = false;
    std::string error;  ///< why it is not reachable or has another version, or why the probe failed
};

/// A Citus worker as it knows itself: its group and where its coordinator is.
struct WorkerSelf {
    long long group = 0;      ///< pg_dist_local_group.groupid (not 0)
    std::string coordinator;  ///< "host:port" of group 0 in its pg_dist_node, "" if unknown
};

/// The connected node's place when it is a Citus worker; nullopt on a coordinator, a
/// server without Citus, or a Citus node without a group yet. For commands that only make
/// sense on the coordinator (stream tables live there).
std::optional<WorkerSelf> citus_worker_self(Node& node);

/// The active primary nodes of the Citus cluster (pg_dist_node: isactive AND noderole =
/// 'primary'), coordinator (group 0) first, then the workers in group order, without
/// probing them (reachable nullopt). Needs Citus installed (has_citus).
std::vector<NodeReachability> active_nodes(Node& node);

/// The active primary nodes of the Citus cluster (pg_dist_node: isactive AND noderole =
/// 'primary'), coordinator first, whether the coordinator could run a statement on each
/// within the options' time, and pg_trickle's version on each (compared with the connected
/// node's: mark_version_mismatches). Empty when Citus is not installed or has no nodes. Throws
/// pqxx::broken_connection when the connection to the coordinator is lost; a failing probe
/// is reported in the nodes (reachable nullopt), not thrown.
std::vector<NodeReachability> probe_nodes(Node& node, const NodeProbeOptions& options = {});

/// One row of run_command_on_all_nodes.
struct ProbeAnswer {
    long long nodeid = 0;
    bool success = false;
    std::string result;  ///< the command's result, or Citus's error
};

/// Applies one round of the probe to `nodes`: a node that answered is reachable (its answer
/// is its pg_trickle version, "" when not installed); one whose
/// answer is a failure and that no earlier round reached becomes unreachable with Citus's
/// message. When the round failed as a whole (`round_error`: timed out, ...), nodes no
/// round has answered yet stay unknown with that error. Pure (for the tests).
void apply_probe_round(std::vector<NodeReachability>& nodes,
                       const std::vector<ProbeAnswer>& answers,
                       const std::optional<std::string>& round_error);

/// Marks the reached nodes whose pg_trickle version is not `expected` (the connected
/// node's), with an error naming both versions. Pure (for the tests).
void mark_version_mismatches(std::vector<NodeReachability>& nodes, const std::string& expected);

/// The nodes (in their order) that hold one of `slots` (read_worker_slots rows: worker is
/// "host:port").
std::vector<NodeReachability> nodes_of_slots(const std::vector<NodeReachability>& nodes,
                                             const json::Value& slots);

}  // namespace pgt::client
