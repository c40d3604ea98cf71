// Direct connections from the CLI to the other nodes of a Citus cluster, for the commands
// that must run a transaction of their own on every node (`pgtrickle migrate`): the nodes
// come from the coordinator's pg_dist_node (client/node_probe.h), the connection settings
// from the coordinator's own (user, password, TLS, service...), with the node's host and
// port and the coordinator's database. Connecting is retried with jittered backoff,
// bounded by attempts and time (core/retry.h).
#pragma once

#include <memory>
#include <string>

#include "client/connection.h"
#include "core/retry.h"

namespace pgt::client {

/// The connection string that reaches `host`:`port`, database `dbname`, with every other
/// setting of `coordinator` (user, password, sslmode, application_name, options, ...).
/// Its host, hostaddr, port and dbname are replaced. What it does not set is added:
/// `connect_timeout_s` as connect_timeout (a node that does not answer costs that long per
/// attempt) and the extension's defaults for connections between nodes (TCP keepalives,
/// tcp_user_timeout: node_conninfo::connection_defaults), so that a node that vanishes from
/// the network in the middle of its migration is noticed rather than waited for.
/// Its origin is DsnOrigin::cluster_node. Throws InvalidDsn when the coordinator's string is
/// malformed.
ConnectionSpec node_connection(const ConnectionSpec& coordinator, const std::string& host, int port,
                               const std::string& dbname, int connect_timeout_s);

/// How patiently connect_with_retry tries.
struct ConnectRetry {
    retry::Policy policy;      ///< attempts and delays
    int64_t total_ms = 15000;  ///< the deadline of all attempts together
};

/// Connects to `spec` (Node::connect), retrying a ConnectionError with jittered backoff
/// within `retry`'s attempts and deadline; `on_retry` (may be empty) hears of each failed
/// attempt that will be retried. Throws the last ConnectionError (or InvalidDsn at once).
std::unique_ptr<Node> connect_with_retry(const ConnectionSpec& spec, const Diagnostics& diag,
                                         const ConnectRetry& retry,
                                         const std::function<void(const std::string&)>& on_retry);

}  // namespace pgt::client
