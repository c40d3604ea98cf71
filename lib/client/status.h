// Health of stream tables and their sources, read from pgtrickle.pgt_status and
// pgtrickle.pgt_source_status, and the rule that decides whether it is healthy.
// Later collectors (worker slots, leases, Prometheus) add fields to StatusSnapshot.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "client/connection.h"
#include "core/json.h"

namespace pgt::client {

/// What `pgtrickle status` reports.
struct StatusSnapshot {
    /// pgt_status rows (every column of the view, plus staleness_seconds), ordered by
    /// schema and name. Timestamps are ISO in UTC; staleness is an ISO 8601 interval.
    json::Value stream_tables = json::Value::array();
    /// pgt_source_status rows: all sources, or those read by the named stream table.
    json::Value sources = json::Value::array();
};

/// Reads the snapshot for every stream table, or for one stream table named as SQL would
/// name it (resolved with the search_path, quoted parts kept). Throws NotFound when that
/// stream table does not exist, ExtensionMissing when pg_trickle is not installed.
StatusSnapshot read_status(Node& node, const std::optional<std::string>& name);

/// The verdict on a snapshot.
struct Health {
    bool healthy = true;
    std::vector<std::string> problems;  ///< "schema.name (status: last_error)" per bad table
    std::string message;                ///< one-line summary for humans and status.message
};

/// A stream table is unhealthy when its status is "error" or "suspended".
Health assess_health(const json::Value& stream_tables);

}  // namespace pgt::client
