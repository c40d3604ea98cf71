// Internal to the delta SQL generator (delta_sql_*.cpp): the Z-set rules that turn an operator
// tree and a change window into delta terms, and the small SQL helpers they share. Not a
// public API: callers use delta_sql.h.
//
// Delta rules (Z-sets: rows with integer weights; X_new is the current state, ΔX the change
// window of X, X_old = X_new - ΔX):
//
//   base table T      ΔT = buffer rows in the window, weight +1 ('I') or -1 ('D')
//   σ, π              applied to each delta row, weight kept
//   L ⋈ R             ΔL ⋈ R_new + L_new ⋈ ΔR - ΔL ⋈ ΔR          (bilinear, new states only)
//   L ⟕ R             L ⋈ R, plus the anti part A(l) = [no r in R matches l]:
//                     ΔA = Σ_{l∈ΔL} w·A_old(l) + Σ_{l∈L_new, l matches ΔR} (A_new(l) - A_old(l))
//   L ⋉ R, L ▷ R      the same with P(l) = [exists] / [not exists] over all semi-joins
//   UNION ALL         concatenation
//   grouped block     below the top: touched groups recomputed in the new state (+1) and the
//                     old state (-1); at the top see delta_sql_apply.cpp.
//
// A delta is a list of Terms. A term is a FROM clause in which every range variable keeps the
// alias the expressions use (bound to the current relation, to its delta, or to an all-NULL
// row), extra conditions, and a weight expression. Projection, filters and grouping are then
// written once over every term.
#pragma once

#include <string>
#include <vector>

#include "core/delta_sql.h"

namespace pgt::ivm::detail {

/// Column holding a delta row's weight.
extern const char* const kWeightColumn;

/// " OPERATOR(pg_catalog.<o>) ", search_path-proof.
std::string op(const char* o);

/// Conjunction of conditions, each parenthesised; "true" when there are none.
std::string and_all(const std::vector<std::string>& conds);

/// Name of a generated column, e.g. hidden_name("nn", 0) = "__pgt_nn_1".
std::string hidden_name(const char* what, size_t i);

/// Row id of a group from its grouping values (the same expression in full and delta SQL).
std::string group_row_id(const std::vector<std::string>& values);

/// Image id of a row from its values (`pgtrickle.row_image_id`): equal only when every value
/// has the same binary image, so equal but differently spelled rows differ.
std::string row_image_id(const std::vector<std::string>& values);

/// The GROUP BY list that consolidates rows of columns `cols`: the image id first (with
/// RowIdentity::image), then the columns (their equality; a hash collision of image ids never
/// merges unequal rows).
std::vector<std::string> consolidation_keys(const std::vector<std::string>& cols,
                                            RowIdentity identity);

/// The rendered grouping expressions of a block.
std::vector<std::string> group_key_exprs(const Block& b);

/// The columns "__pgt_g_1".. that carry a block's grouping values, with `prefix`.
std::vector<std::string> group_value_columns(const Block& b, const std::string& prefix);

/// `select_from_where` (ending in a WHERE clause) restricted to the groups listed in the CTE
/// `touched_groups` (columns __pgt_g_1..), `tail` (GROUP BY / HAVING) appended to each branch.
std::string restrict_to_groups(const std::string& select_from_where,
                               const std::vector<GroupKey>& keys, const std::string& touched_groups,
                               const std::string& tail);

/// One term of a delta: FROM pieces (cross-joined), conditions, weight factors.
struct Term {
    std::vector<std::string> from;
    std::vector<std::string> conds;
    std::vector<std::string> weight;  ///< factors, multiplied
    bool negate = false;

    std::string weight_sql() const;
};

/// Renders the current state and the delta of every part of an operator tree for one change
/// window.
class DeltaGenerator {
  public:
    explicit DeltaGenerator(const ChangeWindow* window, RowIdentity identity = RowIdentity::image)
        : window_(window), identity_(identity) {}

    RowIdentity identity() const { return identity_; }

    // Relations: one FROM item bound to its alias.
    std::string current_rel(const FromItem& item) const;
    std::string delta_rel(const FromItem& item) const;
    static std::string null_rel(const FromItem& item);
    bool item_changed(const FromItem& item) const;

    // Join trees.
    std::string tree_new(const SpjCore& c, const JoinTree& t) const;
    bool tree_changed(const SpjCore& c, const JoinTree& t) const;
    std::vector<Term> tree_delta(const SpjCore& c, const JoinTree& t) const;

    // SPJ cores.
    std::vector<std::string> core_from_new(const SpjCore& c) const;
    std::vector<std::string> core_where_new(const SpjCore& c) const;
    bool core_changed(const SpjCore& c) const;
    std::vector<Term> core_delta(const SpjCore& c) const;

    // Blocks and queries.
    std::string query_new(const Query& q) const;
    bool query_changed(const Query& q) const;
    /// Rows of an ungrouped block's delta: `select_list` plus "__pgt_w".
    std::string block_delta(const Block& b, const std::vector<std::string>& select_list) const;
    /// Rows of the delta of a query (output columns plus "__pgt_w").
    std::string query_delta(const Query& q) const;

  private:
    std::string semijoin_new(const SemiJoin& s) const;
    std::string block_new(const Block& b) const;
    std::string grouped_block_delta(const Block& b,
                                    const std::vector<std::string>& select_list) const;
    void tree_nulls(const SpjCore& c, const JoinTree& t, std::vector<std::string>& out) const;

    const ChangeWindow* window_;
    RowIdentity identity_;
};

}  // namespace pgt::ivm::detail
