// Preflight rules: pure functions from facts gathered on a node to pass/warn/fail checks,
// each with a detail and, when something is wrong, a hint that says what to do next.
// The client layer (lib/client/preflight.h) gathers the facts; the CLI renders checks.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgt::preflight {

/// Outcome of one check.
enum class Status { pass, warn, fail };

/// "pass", "warn" or "fail".
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
};

/// Splits a list-valued setting such as shared_preload_libraries ("a, \"b c\",d") into
/// its elements, as PostgreSQL's SplitDirectoriesString does: commas separate, blanks
/// around elements are dropped, double quotes protect commas and blanks.
std::vector<std::string> split_setting_list(std::string_view value);

/// True if the list names the pg_trickle library ("pg_trickle", "$libdir/pg_trickle",
/// "pg_trickle.so" all count).
bool preloads_pg_trickle(std::string_view shared_preload_libraries);

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

/// Counts of checks by status.
struct Summary {
    int pass = 0;
    int warn = 0;
    int fail = 0;
    void add(Status s);
};

}  // namespace pgt::preflight
