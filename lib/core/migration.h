// Migration planning (pure): which catalog steps and which object renames move an
// installation from one extension version to another. `pgtrickle migrate` shows this plan
// and then applies it with ALTER EXTENSION pg_trickle UPDATE TO, in one transaction per node.
#pragma once

#include <optional>
#include <string>
#include <vector>

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

}  // namespace pgt::migration
