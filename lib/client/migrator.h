// `pgtrickle migrate` against one node: gathers what the plan needs and applies it with
// ALTER EXTENSION pg_trickle UPDATE TO in a single transaction (all or nothing).
#pragma once

#include <functional>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "client/connection.h"
#include "core/migration.h"

namespace pgt::client {

/// What one node's catalog says, for planning.
struct MigrationFacts {
    std::string database;
    std::optional<std::string> installed;    ///< extension version, nullopt when not installed
    std::vector<std::string> available;      ///< versions whose scripts the server has
    std::vector<migration::Source> sources;  ///< captured sources
    int frontiers = 0;                       ///< stream tables with a frontier
};

/// Reads the facts; an absent extension is reported in `installed`, not thrown.
MigrationFacts read_migration_facts(Node& node);

/// Adds to plan.problems what makes it impossible on this node: the target version's
/// scripts are not installed, or a capture object the plan renames does not exist.
void check_plan(Node& node, migration::Plan& plan, const MigrationFacts& facts);

/// How long apply_migration retries for pg_trickle's catalog before giving up.
inline constexpr int64_t catalog_lock_wait_ms = 30000;

/// Thrown by apply_migration when pg_trickle's catalog stayed in use for
/// catalog_lock_wait_ms: nothing was changed on that node.
class CatalogBusy : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

/// Applies the plan in one transaction and verifies the result (version, renamed objects)
/// before committing. The transaction first takes every table of pg_trickle's catalog
/// (ACCESS EXCLUSIVE, NOWAIT, retried with jittered backoff within catalog_lock_wait_ms)
/// so that it never deadlocks with pg_trickle's own processes; CatalogBusy when that
/// never succeeds. `progress` receives one line per step. Throws on any failure, after
/// which the transaction is rolled back and nothing has changed. `this_node_only` (a node of
/// a Citus cluster, migrated in a transaction of its own) turns Citus's DDL propagation off
/// for the transaction: otherwise the coordinator would forward ALTER EXTENSION to every
/// worker in its own distributed transaction, and a worker would refuse it.
void apply_migration(Node& node, const migration::Plan& plan,
                     const std::function<void(const std::string&)>& progress,
                     bool this_node_only = false);

}  // namespace pgt::client
