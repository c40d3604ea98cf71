// Preflight rules: pure functions from facts gathered on a node to pass/warn/fail checks,
// each with a detail and, when something is wrong, a hint that says what to do next.
// The client layer (lib/client/preflight.h) gathers the facts; the CLI renders checks.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgt::preflight {

/// Outcome of one check. skip: the check does not apply yet (e.g. it needs the extension
/// installed); it counts neither for nor against the node.
enum class Status { pass, warn, fail, skip };

/// "pass", "warn", "fail" or "skip".
const char* status_name(Status s);

/// One check on one node.
struct Check {
    std::string name;    ///< stable machine name, e.g. "shared_preload_libraries"
    Status status;       ///< pass, warn or fail
    std::string detail;  ///< what was found
    std::string hint;    ///< what to do about it (empty on pass)
};

/// What a node is in the deployment: a single server, or a Citus coordinator or worker.
enum class NodeRole { single, coordinator, worker };

/// "single", "coordinator" or "worker".
const char* role_name(NodeRole r);

/// Facts read from one node (and the database the CLI connected to on it).
struct NodeFacts {
    int server_version_num = 0;                    ///< server_version_num, e.g. 150004
    std::string server_version;                    ///< server_version, e.g. "15.4 (Debian ...)"
    std::string shared_preload_libraries;          ///< the setting as the server reports it
    std::string wal_level;                         ///< "minimal", "replica" or "logical"
    std::string database;                          ///< current_database()
    std::optional<std::string> extension_version;  ///< pg_extension.extversion, if installed
    bool extension_available = false;              ///< pg_trickle's control file is installed

    // Facts read on Citus nodes only (coordinator and workers).
    /// pg_available_extensions.default_version of pg_trickle (the installed files)
    std::optional<std::string> extension_default_version;
    std::optional<std::string> citus_version;  ///< pg_extension.extversion of citus
    int max_replication_slots = 0;             ///< the setting
    int used_replication_slots = 0;            ///< rows of pg_replication_slots
    int pgtrickle_replication_slots = 0;       ///< of those, named pgtrickle_*
    int max_wal_senders = 0;                   ///< the setting
    int used_wal_senders = 0;                  ///< walsender backends running
    /// output_plugin_libraries (Debian's PostgreSQL 15.19+); nullopt: no such setting,
    /// every output plugin may load
    std::optional<std::string> output_plugin_libraries;
    std::string citus_cdc;  ///< citus.enable_change_data_capture ("on"/"off", "" if unknown)
};

/// A distributed table (pg_dist_partition.partmethod 'h') that pg_trickle captures.
struct DistributedSource {
    std::string name;       ///< schema.table
    char replica_identity;  ///< pg_class.relreplident: 'd', 'n', 'f' or 'i'
};

/// Splits a list-valued setting such as shared_preload_libraries ("a, \"b c\",d") into
/// its elements, as PostgreSQL's SplitDirectoriesString does: commas separate, blanks
/// around elements are dropped, double quotes protect commas and blanks.
std::vector<std::string> split_setting_list(std::string_view value);

/// True if the list names the pg_trickle library ("pg_trickle", "$libdir/pg_trickle",
/// "pg_trickle.so" all count).
bool preloads_pg_trickle(std::string_view shared_preload_libraries);

/// True if the list names the library `lib` ("lib", "$libdir/lib", "lib.so" all count).
bool preloads_library(std::string_view shared_preload_libraries, std::string_view lib);

/// True if a failed run_command_on_workers result is a connection failure (the worker could
/// not be reached) rather than an error of the command on a reached worker.
bool is_connection_error(std::string_view result);

/// Compares dotted version strings numerically ("0.9.1" < "0.35.0"); non-numeric parts
/// compare as text. Returns <0, 0 or >0.
int compare_versions(std::string_view a, std::string_view b);

/// Check "server_version": PostgreSQL 15 is required.
Check check_server_version(const NodeFacts& f);
/// Check "shared_preload_libraries": must contain pg_trickle (scheduler, WAL capture).
Check check_preload(const NodeFacts& f);
/// Check "extension": installed in the database, at the CLI's version.
Check check_extension(const NodeFacts& f, std::string_view cli_version);
/// Check "wal_level": logical is needed for WAL-based capture only, so anything else warns.
Check check_wal_level(const NodeFacts& f);

/// All checks for a single (non-Citus) node, in a fixed order.
std::vector<Check> evaluate_single_node(const NodeFacts& f, std::string_view cli_version);

// Citus. Every node needs Citus at the coordinator's version, wal_level = logical,
// citus.enable_change_data_capture = on, pgoutput allowed as an output plugin, and a free
// replication slot for each distributed source; the coordinator also preloads pg_trickle
// and checks REPLICA IDENTITY FULL on the distributed sources.

/// Check "shared_preload_libraries" on a Citus node: citus everywhere, pg_trickle too on
/// the coordinator (its scheduler polls the workers).
Check check_citus_preload(const NodeFacts& f, NodeRole role);
/// Check "citus_version": a worker's Citus extension version equals the coordinator's.
Check check_citus_version(const NodeFacts& f, const NodeFacts& coordinator, NodeRole role);
/// Check "extension" on a worker: the pg_trickle version installed (or, when not installed,
/// available) equals the coordinator's, so CREATE/ALTER EXTENSION propagate.
Check check_worker_extension(const NodeFacts& worker, const NodeFacts& coordinator);
/// Check "wal_level" on a Citus node: logical is required (distributed sources are always
/// captured from the workers' WAL).
Check check_citus_wal_level(const NodeFacts& f);
/// Check "replication_slots": a free slot for new distributed sources. None free fails
/// when pg_trickle has no slot on the node yet, warns when it has (its sources work).
Check check_replication_slots(const NodeFacts& f);
/// Check "wal_senders": warns when none is free (pg_trickle reads slots over ordinary
/// connections; replicas and logical replication subscribers need senders).
Check check_wal_senders(const NodeFacts& f);
/// Check "output_plugins": when output_plugin_libraries exists, it must list pgoutput.
Check check_output_plugins(const NodeFacts& f);
/// Check "citus_cdc": citus.enable_change_data_capture = on, without which a worker's
/// changes are reported by shard name and shard moves replay as phantom rows.
Check check_citus_cdc(const NodeFacts& f);
/// Check "replica_identity" on the coordinator: every distributed source has REPLICA
/// IDENTITY FULL. nullopt: pg_trickle is not installed, so the check is skipped.
Check check_replica_identity(const std::optional<std::vector<DistributedSource>>& sources);
/// Check "reachable" of a worker: pass when run_command_on_workers reached it, else fail
/// with the coordinator's error.
Check check_reachable(const std::optional<std::string>& connection_error);

/// All checks of a Citus coordinator, in a fixed order.
std::vector<Check> evaluate_coordinator(
    const NodeFacts& f, const std::optional<std::vector<DistributedSource>>& sources,
    std::string_view cli_version);

/// All checks of a worker that was reached, compared with its coordinator, in a fixed
/// order ("reachable" first).
std::vector<Check> evaluate_worker(const NodeFacts& worker, const NodeFacts& coordinator);

/// Counts of checks by status.
struct Summary {
    int pass = 0;
    int warn = 0;
    int fail = 0;
    int skip = 0;
    void add(Status s);
};

}  // namespace pgt::preflight
