// Health of stream tables, their sources and this database's scheduler, read from
// pgtrickle.pgt_status, pgtrickle.pgt_source_status, pgtrickle.pgt_refresh_history and
// pgtrickle.scheduler_pid(), and the rules that decide whether it is healthy.
// Citus: the worker slots of WAL-captured sources (client/slots.h) and whether the
// coordinator reaches every node (client/node_probe.h) are part of the snapshot.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "client/connection.h"
#include "client/node_probe.h"
#include "core/json.h"

namespace pgt::client {

/// What `pgtrickle status` reports.
struct StatusSnapshot {
    /// pgt_status rows (every column of the view) plus staleness_seconds and
    /// schedule_interval_seconds (NULL when unknown) and recent_refreshes (an object
    /// counting the rows of pgt_refresh_history by mode, e.g. {"differential": 12}),
    /// ordered by schema and name. Timestamps are ISO in UTC; intervals are ISO 8601.
    json::Value stream_tables = json::Value::array();
    /// pgt_source_status rows: all sources, or those read by the named stream table.
    json::Value sources = json::Value::array();
    /// pgt_worker_slots rows (client::read_worker_slots) of every source, or of the sources
    /// read by the named stream table; empty without Citus.
    json::Value worker_slots = json::Value::array();
    /// pgtrickle.scheduler_pid(): the PID of this database's scheduler, if one runs.
    std::optional<long long> scheduler_pid;
    /// pg_trickle.enabled: a disabled scheduler runs but refreshes nothing.
    bool scheduler_enabled = true;
    /// pg_is_in_recovery(): a hot standby, where no scheduler runs (the primary refreshes
    /// and the stream tables arrive by replication).
    bool in_recovery = false;
    /// Citus: the active primary nodes and whether the coordinator reaches them (all of
    /// them, or with a stream table named, those its worker slots are on); empty without
    /// Citus.
    std::vector<NodeReachability> nodes;
};

/// Reads the snapshot for every stream table, or for one stream table named as SQL would
/// name it (resolved with the user's search_path, quoted parts kept), and probes the Citus
/// nodes within `probe`'s time. Throws NotFound when that stream table does not exist,
/// ExtensionMissing when pg_trickle is not installed.
StatusSnapshot read_status(Node& node, const std::optional<std::string>& name,
                           const NodeProbeOptions& probe = {});

/// Limits beyond the catalog's own view of health.
struct HealthRules {
    /// A stream table refreshed longer ago than this is unhealthy (--max-staleness).
    std::optional<double> max_staleness_seconds;
};

/// One reason for being unhealthy.
struct Problem {
    /// "schema.name" of a stream table, "scheduler", "source@host:port" of a worker slot, or
    /// "host:port" of a node.
    std::string subject;
    /// error, suspended, stale (the view's stale column), max_staleness (older than
    /// HealthRules::max_staleness_seconds), scheduler_not_running, scheduler_disabled,
    /// worker_slot_failing, worker_slot_not_capturable, node_unreachable or node_unknown.
    std::string reason;
    std::string message;  ///< "public.b (error: division by zero)"
};

/// The verdict on a snapshot.
struct Health {
    bool healthy = true;
    /// Stream tables first (one each), then the scheduler, the worker slots (one each) and
    /// the nodes (one each).
    std::vector<Problem> problems;
    std::string message;  ///< one-line summary for humans and status.message
};

/// A stream table is unhealthy when its status is "error" or "suspended", when the view
/// marks it stale, or when its staleness exceeds rules.max_staleness_seconds (a stream
/// table never refreshed has no staleness). The scheduler is unhealthy when it is not
/// running while any stream table of the snapshot has a schedule. A worker slot is
/// unhealthy as worker_slot_status says, a node as node_status says.
Health assess_health(const StatusSnapshot& snap, const HealthRules& rules = {});

/// The health of one thing, as a JSON status object says it: code "ok" when healthy.
struct ItemStatus {
    std::string code;
    std::string message;
    bool ok() const { return code == "ok"; }
};

/// The health of a worker slot (a read_worker_slots row), from the columns the extension
/// keeps: "not_capturable" when it has no worker_frontier (the node cannot capture the
/// source; last_error says why), else "failing" when consecutive_failures > 0 (polls failed
/// since the last success, which resets it; failing_since and last_error say since when and
/// why), else "ok" (a last_error left with no failure is the note of a recovery, such as a
/// lost slot recreated, which the next successful poll clears).
ItemStatus worker_slot_status(const json::Value& slot);

/// The health of a node: "ok" when the coordinator reached it and it has the connected
/// node's pg_trickle version, "version_mismatch" when reached with another version (or
/// none), "unreachable" when it could not be reached, "unknown" when the probe failed (the
/// error says why).
ItemStatus node_status(const NodeReachability& node);

/// "source@worker" of a worker slot row, for messages.
std::string worker_slot_label(const json::Value& slot);

/// "schema.name" of a pgt_status row, for messages and metric labels.
std::string stream_table_label(const json::Value& row);

}  // namespace pgt::client
