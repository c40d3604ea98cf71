// SQL generation for stream-table maintenance: storage layout, full refresh, and the
// differential apply statement of one refresh.
//
// The delta of a query is a Z-set: rows with integer weights (+n inserted, -n deleted).
// Change buffers give the delta of each base table; every operator turns the deltas of its
// inputs into its own (see delta_sql_terms.h for the rules; delta_sql_apply.cpp writes them
// into the storage layouts; delta_sql_explain.cpp renders the operator tree). Terms read the base
// tables in their *current* state (the refresh snapshot), so no copy of an old state is ever
// materialised.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/frontier.h"
#include "core/ivm_plan.h"

namespace pgt::ivm {

/// What one refresh consumes: buffer rows in the frontier's change window
/// (frontier::window_condition; the refresh snapshot's side is implicit: the SQL runs
/// under it).
struct ChangeWindow {
    frontier::SourceFrontier frontier;  ///< where the previous refresh left off
    std::set<std::string> changed;      ///< stable names of sources with rows in the window
    /// Where this refresh stands (frontier::upto_condition); none: every buffer row the
    /// refresh's snapshot shows (explain).
    std::optional<frontier::SourceFrontier> upto;
};

/// How the delta's consolidations tell rows apart (docs/architecture.md "Row identity").
enum class RowIdentity {
    /// By the values' binary images (`pgtrickle.row_image_id`, catalog 0.35.0): values that
    /// are equal but spelled differently ('alice' and 'ALICE' under a case-insensitive
    /// collation, numeric 1.0 and 1.00, float -0 and 0, bpchar 'a' and 'a  ') stay apart, so
    /// a row never cancels, merges with or replaces a differently spelled one.
    image,
    /// By the values' equality: catalogs before 0.35.0, which lack `pgtrickle.row_image_id`.
    equality,
};

/// The storage table's columns and how it is maintained.
struct StorageLayout {
    StorageKind kind = StorageKind::rows;
    bool global_aggregate = false;  ///< aggregates without GROUP BY: exactly one row
    bool algebraic = false;         ///< groups updated from deltas alone (else recomputed)
    std::vector<Column> visible;    ///< the query's output columns
    std::vector<HiddenColumn> hidden;
    /// What the catalog provides to tell rows apart; the storage (`__pgt_row_id`) is the same
    /// either way.
    RowIdentity identity = RowIdentity::image;
    /// sum/avg over numeric keep, per group, their finite sum, the counts of NaN, +Infinity
    /// and -Infinity and (without a declared scale) the multiset of display scales, so that
    /// no group is ever rescanned for them. Storage created before 0.35.0 lacks those hidden
    /// columns: such groups are rescanned instead (NumericState::rescan).
    enum class NumericState { counts, rescan };
    NumericState numeric = NumericState::counts;
    /// The visible column the storage is distributed by (Citus), when it is one: groups are
    /// then identified by it and "__pgt_row_id" together (the unique index and ON CONFLICT
    /// include it, as Citus requires), and it is never updated in place (a group's key does
    /// not change). Empty for local, reference and row-id-distributed storage.
    std::string distribution_column;
};

/// Layout for a differentially maintained query. `numeric` = rescan: the layout of storage
/// created before numeric sum/avg kept their per-group counts.
StorageLayout differential_layout(
    const Query& q, StorageLayout::NumericState numeric = StorageLayout::NumericState::counts);

/// Layout for a query maintained by full refresh only: rows with a content row id.
StorageLayout full_layout(const std::vector<Column>& columns);

/// INSERT that fills an empty storage table `target` from the current state. For the rows
/// layout it reads `query_view` (the defining query kept as a view); for groups it renders
/// the aggregation itself so that the hidden columns are filled too.
std::string full_refresh_sql(const Query* q, const StorageLayout& layout, const std::string& target,
                             const std::string& query_view);

/// Where the storage table lives; it decides the statements that write it. Neither form
/// uses `ctid`: rows are addressed by `__pgt_row_id` only.
enum class ApplyTarget {
    /// A table of this server: groups are written with one MERGE on __pgt_row_id.
    local,
    /// A table whose rows cannot be addressed physically or MERGEd (a Citus distributed or
    /// reference table): groups are written with DELETE ... WHERE __pgt_row_id IN (...) and
    /// INSERT ... ON CONFLICT ([distribution column,] __pgt_row_id) DO UPDATE of the other
    /// columns. Correct on any table with the storage layout's unique index.
    distributed,
};

/// One statement that applies the window's delta to `target`. It returns one row with one
/// bigint column (rows written) or is a MERGE (rows written = processed count). The rows
/// layout is written the same way for both targets (delete the copies of row ids that lose
/// copies, insert back the survivors and the new copies).
std::string delta_apply_sql(const Query& q, const StorageLayout& layout, const std::string& target,
                            const ChangeWindow& window,
                            ApplyTarget apply_target = ApplyTarget::local);

/// The rows of the query's delta (output columns + "__pgt_w"), for tests and explain.
std::string delta_rows_sql(const Query& q, const ChangeWindow& window,
                           RowIdentity identity = RowIdentity::image);

/// Human-readable operator tree, one operator a line, indented by depth.
std::string explain_tree(const Query& q, const StorageLayout& layout);

}  // namespace pgt::ivm
