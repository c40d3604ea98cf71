// Migration planning (pure): which catalog steps and which object renames move an
// installation from one extension version to another. `pgtrickle migrate` shows this plan
// and then applies it with ALTER EXTENSION pg_trickle UPDATE TO, in one transaction per node.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "core/exit_codes.h"

namespace pgt::migration {

/// Versions that can be installed or reached, oldest first.
const std::vector<std::string>& known_versions();

/// Whether `v` is one of known_versions().
bool is_known(const std::string& v);

/// One catalog step (an upgrade or a downgrade script) and what it changes.
struct Step {
    std::string from, to;
    std::vector<std::string> changes;
};

/// The steps from `from` to `to` (upgrade or downgrade), in order; empty when equal.
std::vector<Step> steps(const std::string& from, const std::string& to);

/// A captured source as the catalog describes it.
struct Source {
    std::string relid;                       ///< OID, as text
    std::string schema, table;               ///< current names
    std::optional<std::string> stable_name;  ///< stored (0.32.0 and later)
    bool wal = false;  ///< captured through WAL (cdc_mode 'wal'): no triggers, a slot
};

struct Rename {
    std::string kind;  ///< "table", "index", "function", "trigger", "slot"
    std::string from;  ///< qualified object name (triggers, slots: the name)
    std::string to;
    std::string on;  ///< triggers, slots: the table, qualified
};

struct Plan {
    std::string node;
    std::string from, to;
    std::vector<Step> steps;
    std::vector<Rename> renames;
    int frontier_rekeys = 0;            ///< stream tables whose frontier keys change
    std::vector<std::string> problems;  ///< reasons the plan cannot be applied
    bool nothing_to_do() const { return from == to; }
};

/// A WAL-captured source's slot "rename" is no rename: after the catalog update, the old
/// slot's unread changes are drained into the buffer, the new slot takes over exactly where
/// the old one ends, and the old slot and its publication are dropped (done by the
/// extension's provision_worker_slots, which `pgtrickle migrate` calls).
///
/// Plan the move of one node's installation. `database` is its database name (part of the
/// stable name); `stream_tables_with_frontier` how many frontiers need rekeying.
Plan plan(const std::string& node, const std::string& database, const std::string& from,
          const std::string& to, const std::vector<Source>& sources,
          int stream_tables_with_frontier);

/// The order in which `pgtrickle migrate` updates `nodes` nodes of a Citus cluster, as
/// indexes into a list whose entry 0 is the coordinator and the rest the workers (in their
/// order). Workers first when `target` is the coordinator's installed version or newer,
/// the coordinator first on the way down: the coordinator acts on the workers (its
/// scheduler and WAL poller connect to them), so it is never newer than they are; and its
/// catalog, which holds all the state, changes only once every worker has succeeded.
std::vector<std::size_t> apply_order(const std::string& coordinator_version,
                                     const std::string& target, std::size_t nodes);

/// What became of one node in a run of `pgtrickle migrate`.
enum class Outcome {
    planned,        ///< dry run: its plan has something to do
    up_to_date,     ///< already at the target
    migrated,       ///< this run updated it
    failed,         ///< its update failed (rolled back, or unknown when COMMIT was cut)
    not_attempted,  ///< the run was refused or stopped before it
    unreachable,    ///< the CLI could not connect to it
};

/// "planned", "up_to_date", ... (as the JSON output has it).
const char* outcome_name(Outcome o);

/// The exit code of a run that stopped at a failed node, whose own code is `failure`:
/// partial_failure when another node is at the target (migrated now or before), since the
/// nodes then run different catalogs; else `failure` (nothing is at the target: as if one
/// node had failed alone).
ExitCode stopped_run_code(const std::vector<Outcome>& outcomes, ExitCode failure);

}  // namespace pgt::migration
