// Delta rules (Z-sets: rows with integer weights; X_new is the current state, ΔX the
// change window of X, X_old = X_new - ΔX):
//
//   base table T      ΔT = buffer rows in the window, weight +1 ('I') or -1 ('D')
//   σ, π              applied to each delta row, weight kept
//   L ⋈ R             ΔL ⋈ R_new + L_new ⋈ ΔR - ΔL ⋈ ΔR          (bilinear, new states only)
//   L ⟕ R             L ⋈ R, plus the anti part A(l) = [no r in R matches l]:
//                     ΔA = Σ_{l∈ΔL} w·A_old(l) + Σ_{l∈L_new, l matches ΔR} (A_new(l) - A_old(l))
//   L ⋉ R, L ▷ R      the same with P(l) = [exists] / [not exists] over all semi-joins
//   UNION ALL         concatenation
//   GROUP BY          groups touched by the delta: algebraic aggregates (count, sum, avg over
//                     exact types) from old value + delta; min/max likewise unless the group
//                     lost rows, then rescanned; anything else (HAVING, other aggregates,
//                     expressions over aggregates) recomputed for the touched groups only.
//
// A delta is produced as a list of Terms. A term is a FROM clause in which every range
// variable keeps the alias the expressions use (bound to the current relation, to its
// delta, or to an all-NULL row), extra conditions, and a weight expression. Projection,
// filters and grouping are then written once over every term.
#include "core/delta_sql.h"

#include <functional>
#include <sstream>
#include <stdexcept>

#include "core/frontier.h"
#include "core/sql_ident.h"

namespace pgt::ivm {
namespace {

using sql::join;
using sql::quote_ident;
using sql::quote_literal;

const char* const kW = "\"__pgt_w\"";

std::string op(const char* o) {
    return std::string(" OPERATOR(pg_catalog.") + o + ") ";
}

std::string and_all(const std::vector<std::string>& conds) {
    if (conds.empty()) {
        return "true";
    }
    std::vector<std::string> wrapped;
    wrapped.reserve(conds.size());
    for (const auto& c : conds) {
        wrapped.push_back("(" + c + ")");
    }
    return join(wrapped, " AND ");
}

struct Term {
    std::vector<std::string> from;
    std::vector<std::string> conds;
    std::vector<std::string> weight;  ///< factors, multiplied
    bool negate = false;

    std::string weight_sql() const {
        std::string w = weight.empty() ? "1" : join(weight, op("*"));
        return negate ? "(0" + op("-") + "(" + w + "))" : "(" + w + ")";
    }
};

std::string hidden_name(const char* what, size_t i);
std::string group_row_id(const std::vector<std::string>& values);
std::string restrict_to_groups(const std::string& select_from_where,
                               const std::vector<std::string>& ge, const std::string& aff,
                               const std::string& tail);

/// Everything the generator needs from the refresh: the window.
class Generator {
  public:
    explicit Generator(const ChangeWindow* win) : win_(win) {}

    // ---- relations -------------------------------------------------------------------
    std::string current_rel(const FromItem& it) const {
        if (it.kind == FromItem::Kind::table) {
            return std::string(it.table.only ? "ONLY " : "") +
                   sql::qualified(it.table.schema, it.table.name) + " AS " + quote_ident(it.alias);
        }
        return "(" + query_new(*it.query) + ") AS " + quote_ident(it.alias);
    }

    std::string delta_rel(const FromItem& it) const {
        if (it.kind == FromItem::Kind::subquery) {
            return "(" + query_delta(*it.query) + ") AS " + quote_ident(it.alias);
        }
        const BaseTable& t = it.table;
        std::vector<std::string> cols;
        for (size_t i = 0; i < t.columns.size(); ++i) {
            cols.push_back("b." + quote_ident(t.buffer_columns[i]) + " AS " +
                           quote_ident(t.columns[i].name));
        }
        cols.push_back("CASE WHEN b.\"__pgt_op\"" + op("=") + "'I' THEN 1 ELSE -1 END AS " + kW);
        return "(SELECT " + join(cols, ", ") + " FROM " + t.buffer + " AS b WHERE b.\"__pgt_op\"" +
               op("<>") + "'T' AND " + frontier::window_condition("b.", win_->frontier) +
               ") AS " + quote_ident(it.alias);
    }

    static std::string null_rel(const FromItem& it) {
        std::vector<std::string> cols;
        for (const auto& c : it.columns) {
            cols.push_back("NULL::" + c.type + " AS " + quote_ident(c.name));
        }
        if (cols.empty()) {
            cols.push_back("NULL AS \"__pgt_none\"");
        }
        return "(SELECT " + join(cols, ", ") + ") AS " + quote_ident(it.alias);
    }

    bool item_changed(const FromItem& it) const {
        if (it.kind == FromItem::Kind::table) {
            return win_->changed.count(it.table.stable_name) > 0;
        }
        return query_changed(*it.query);
    }

    // ---- join trees ------------------------------------------------------------------
    std::string tree_new(const SpjCore& c, const JoinTree& t) const {
        switch (t.kind) {
            case JoinTree::Kind::item:
                return current_rel(c.items[t.item]);
            case JoinTree::Kind::inner:
                return "(" + tree_new(c, *t.left) + " JOIN " + tree_new(c, *t.right) + " ON (" +
                       t.on + "))";
            case JoinTree::Kind::left:
                return "(" + tree_new(c, *t.left) + " LEFT JOIN " + tree_new(c, *t.right) +
                       " ON (" + t.on + "))";
        }
        throw std::logic_error("join tree kind");
    }

    void tree_nulls(const SpjCore& c, const JoinTree& t, std::vector<std::string>& out) const {
        if (t.kind == JoinTree::Kind::item) {
            out.push_back(null_rel(c.items[t.item]));
            return;
        }
        tree_nulls(c, *t.left, out);
        tree_nulls(c, *t.right, out);
    }

    bool tree_changed(const SpjCore& c, const JoinTree& t) const {
        if (t.kind == JoinTree::Kind::item) {
            return item_changed(c.items[t.item]);
        }
        return tree_changed(c, *t.left) || tree_changed(c, *t.right);
    }

    /// Inner join of two deltas/new states: ΔL⋈R_new + L_new⋈ΔR - ΔL⋈ΔR.
    static std::vector<Term> combine_inner(const std::vector<std::string>& l_new,
                                           const std::vector<Term>& l_delta,
                                           const std::vector<std::string>& r_new,
                                           const std::vector<Term>& r_delta,
                                           const std::string& on) {
        std::vector<Term> out;
        auto add_on = [&](Term& t) {
            if (!on.empty()) {
                t.conds.push_back(on);
            }
        };
        for (const auto& tl : l_delta) {
            Term t = tl;
            t.from.insert(t.from.end(), r_new.begin(), r_new.end());
            add_on(t);
            out.push_back(std::move(t));
        }
        for (const auto& tr : r_delta) {
            Term t = tr;
            t.from.insert(t.from.begin(), l_new.begin(), l_new.end());
            add_on(t);
            out.push_back(std::move(t));
        }
        for (const auto& tl : l_delta) {
            for (const auto& tr : r_delta) {
                Term t = tl;
                t.from.insert(t.from.end(), tr.from.begin(), tr.from.end());
                t.conds.insert(t.conds.end(), tr.conds.begin(), tr.conds.end());
                t.weight.insert(t.weight.end(), tr.weight.begin(), tr.weight.end());
                // ΔL⋈ΔR is subtracted: sign = -(sign_l * sign_r).
                t.negate = tl.negate == tr.negate;
                add_on(t);
                out.push_back(std::move(t));
            }
        }
        return out;
    }

    /// [exists an r in (new pieces, new conds) with cond] in the old state, given the delta
    /// terms of that relation: count_new - Σ weights of matching delta rows > 0.
    static std::string exists_old(const std::vector<std::string>& new_from,
                                  const std::vector<std::string>& new_conds,
                                  const std::vector<Term>& delta, const std::string& cond) {
        std::vector<std::string> nc = new_conds;
        if (!cond.empty()) {
            nc.push_back(cond);
        }
        std::string s = "((SELECT pg_catalog.count(*) FROM " + join(new_from, ", ") + " WHERE " +
                        and_all(nc) + ")";
        for (const auto& t : delta) {
            std::vector<std::string> tc = t.conds;
            if (!cond.empty()) {
                tc.push_back(cond);
            }
            s += op("-") + "(SELECT COALESCE(pg_catalog.sum(" + t.weight_sql() + "), 0) FROM " +
                 join(t.from, ", ") + " WHERE " + and_all(tc) + ")";
        }
        return s + op(">") + "0)";
    }

    static std::string exists_new(const std::vector<std::string>& new_from,
                                  const std::vector<std::string>& new_conds,
                                  const std::string& cond) {
        std::vector<std::string> nc = new_conds;
        if (!cond.empty()) {
            nc.push_back(cond);
        }
        return "EXISTS (SELECT 1 FROM " + join(new_from, ", ") + " WHERE " + and_all(nc) + ")";
    }

    static std::string any_delta_match(const std::vector<Term>& delta, const std::string& cond) {
        std::vector<std::string> ex;
        for (const auto& t : delta) {
            std::vector<std::string> tc = t.conds;
            if (!cond.empty()) {
                tc.push_back(cond);
            }
            ex.push_back("EXISTS (SELECT 1 FROM " + join(t.from, ", ") + " WHERE " + and_all(tc) +
                         ")");
        }
        return "(" + join(ex, " OR ") + ")";
    }

    static std::string as_int(const std::string& pred) {
        return "(CASE WHEN " + pred + " THEN 1 ELSE 0 END)";
    }

    std::vector<Term> tree_delta(const SpjCore& c, const JoinTree& t) const {
        if (t.kind == JoinTree::Kind::item) {
            const FromItem& it = c.items[t.item];
            if (!item_changed(it)) {
                return {};
            }
            Term term;
            term.from.push_back(delta_rel(it));
            term.weight.push_back(quote_ident(it.alias) + "." + kW);
            return {term};
        }
        const std::vector<std::string> l_new{tree_new(c, *t.left)};
        const std::vector<std::string> r_new{tree_new(c, *t.right)};
        const std::vector<Term> dl = tree_delta(c, *t.left);
        const std::vector<Term> dr = tree_delta(c, *t.right);
        std::vector<Term> out = combine_inner(l_new, dl, r_new, dr, t.on);
        if (t.kind == JoinTree::Kind::inner) {
            return out;
        }

        // Anti part of the left join: rows of L with no match in R, R bound to NULLs.
        std::vector<std::string> nulls;
        tree_nulls(c, *t.right, nulls);
        const std::string a_new = as_int("NOT " + exists_new(r_new, {}, t.on));
        const std::string a_old =
            dr.empty() ? a_new : as_int("NOT " + exists_old(r_new, {}, dr, t.on));
        for (const auto& tl : dl) {
            Term term = tl;
            term.from.insert(term.from.end(), nulls.begin(), nulls.end());
            term.weight.push_back(a_old);
            out.push_back(std::move(term));
        }
        if (!dr.empty()) {
            Term term;
            term.from = l_new;
            term.from.insert(term.from.end(), nulls.begin(), nulls.end());
            term.conds.push_back(any_delta_match(dr, t.on));
            term.weight.push_back("(" + a_new + op("-") + a_old + ")");
            out.push_back(std::move(term));
        }
        return out;
    }

    // ---- SPJ cores -------------------------------------------------------------------
    std::vector<std::string> core_from_new(const SpjCore& c) const {
        std::vector<std::string> from;
        for (const auto& t : c.from) {
            from.push_back(tree_new(c, t));
        }
        return from;
    }

    std::string semijoin_new(const SemiJoin& s) const {
        const std::string e = "EXISTS (SELECT 1 FROM " + join(core_from_new(*s.sub), ", ") +
                              " WHERE " + and_all(core_where_new(*s.sub)) + ")";
        return s.anti ? "NOT " + e : e;
    }

    std::vector<std::string> core_where_new(const SpjCore& c) const {
        std::vector<std::string> w = c.quals;
        for (const auto& s : c.semijoins) {
            w.push_back(semijoin_new(s));
        }
        return w;
    }

    bool core_changed(const SpjCore& c) const {
        for (const auto& t : c.from) {
            if (tree_changed(c, t)) {
                return true;
            }
        }
        for (const auto& s : c.semijoins) {
            if (core_changed(*s.sub)) {
                return true;
            }
        }
        return false;
    }

    std::vector<Term> core_delta(const SpjCore& c) const {
        // The FROM list is a chain of cross joins.
        std::vector<std::string> acc_new;
        std::vector<Term> acc_delta;
        for (size_t i = 0; i < c.from.size(); ++i) {
            const std::vector<std::string> r_new{tree_new(c, c.from[i])};
            const std::vector<Term> r_delta = tree_delta(c, c.from[i]);
            if (i == 0) {
                acc_delta = r_delta;
            } else {
                acc_delta = combine_inner(acc_new, acc_delta, r_new, r_delta, "");
            }
            acc_new.insert(acc_new.end(), r_new.begin(), r_new.end());
        }
        for (auto& t : acc_delta) {
            t.conds.insert(t.conds.end(), c.quals.begin(), c.quals.end());
        }

        std::vector<const SemiJoin*> changed;
        for (const auto& s : c.semijoins) {
            if (core_changed(*s.sub)) {
                changed.push_back(&s);
            }
        }
        if (changed.empty()) {
            for (auto& t : acc_delta) {
                for (const auto& s : c.semijoins) {
                    t.conds.push_back(semijoin_new(s));
                }
            }
            return acc_delta;
        }
        // P(l) = conjunction of the semi-join predicates; see the header comment.
        std::vector<std::string> p_new, p_old, affected;
        for (const auto& s : c.semijoins) {
            const std::string pn = semijoin_new(s);
            p_new.push_back(pn);
            if (!core_changed(*s.sub)) {
                p_old.push_back(pn);
                continue;
            }
            const std::vector<Term> sd = core_delta(*s.sub);
            const std::string eo =
                exists_old(core_from_new(*s.sub), core_where_new(*s.sub), sd, "");
            p_old.push_back(s.anti ? "NOT " + eo : eo);
            affected.push_back(any_delta_match(sd, ""));
        }
        const std::string pn_int = as_int(and_all(p_new));
        const std::string po_int = as_int(and_all(p_old));
        for (auto& t : acc_delta) {
            t.weight.push_back(po_int);
        }
        Term term;
        term.from = acc_new;
        term.conds = c.quals;
        term.conds.push_back(join(affected, " OR "));
        term.weight.push_back("(" + pn_int + op("-") + po_int + ")");
        acc_delta.push_back(std::move(term));
        return acc_delta;
    }

    // ---- blocks and queries ------------------------------------------------------------
    std::string block_new(const Block& b) const {
        std::vector<std::string> sel;
        for (const auto& t : b.targets) {
            sel.push_back(t.expr + " AS " + quote_ident(t.column.name));
        }
        std::string s = std::string("SELECT ") + (b.distinct ? "DISTINCT " : "") + join(sel, ", ") +
                        " FROM " + join(core_from_new(b.core), ", ") + " WHERE " +
                        and_all(core_where_new(b.core));
        if (b.grouped && !b.group_by.empty()) {
            std::vector<std::string> g;
            for (const auto& k : b.group_by) {
                g.push_back(k.expr);
            }
            s += " GROUP BY " + join(g, ", ");
        }
        if (!b.having.empty()) {
            s += " HAVING " + b.having;
        }
        return s;
    }

    std::string query_new(const Query& q) const {
        if (!q.union_all) {
            return block_new(q.block);
        }
        std::vector<std::string> parts;
        for (const auto& br : q.branches) {
            parts.push_back("(" + query_new(*br) + ")");
        }
        return join(parts, " UNION ALL ");
    }

    bool query_changed(const Query& q) const {
        if (!q.union_all) {
            return core_changed(q.block.core);
        }
        for (const auto& br : q.branches) {
            if (query_changed(*br)) {
                return true;
            }
        }
        return false;
    }

    /// Rows of an ungrouped block's delta: its targets plus "__pgt_w".
    std::string block_delta(const Block& b, const std::vector<std::string>& select_list) const {
        std::vector<std::string> parts;
        for (const auto& t : core_delta(b.core)) {
            parts.push_back("SELECT " + join(select_list, ", ") + ", " + t.weight_sql() + " AS " +
                            kW + " FROM " + join(t.from, ", ") + " WHERE " + and_all(t.conds));
        }
        if (parts.empty()) {
            // Nothing changed under this block: an empty relation of the right shape.
            return "SELECT " + join(select_list, ", ") + ", 0 AS " + kW + " FROM " +
                   join(core_from_new(b.core), ", ") + " WHERE false";
        }
        return join(parts, " UNION ALL ");
    }

    /// Delta of a grouped block below the top (a FROM subquery, a UNION ALL branch): the
    /// groups the core's delta touches, recomputed in the new state (+1) and in the old
    /// state (-1). The old state of the core is the multiset C_new - ΔC restricted to those
    /// groups, consolidated over every column of its range variables; each range variable
    /// is then rebound to those columns (LATERAL), so the block's own expressions apply.
    std::string grouped_block_delta(const Block& b,
                                    const std::vector<std::string>& select_list) const {
        const std::vector<Term> terms = core_delta(b.core);
        const std::string targets = join(select_list, ", ");
        std::vector<std::string> ge, gsel, cols, col_names, rebinds;
        for (const auto& k : b.group_by) {
            ge.push_back(k.expr);
        }
        if (terms.empty()) {
            // Nothing changed below: an empty relation of the right shape (a global aggregate
            // yields one row, with weight 0).
            return "SELECT " + targets + ", 0 AS " + kW + " FROM " +
                   join(core_from_new(b.core), ", ") + " WHERE false" +
                   (ge.empty() ? std::string() : " GROUP BY " + join(ge, ", "));
        }
        for (size_t i = 0; i < b.group_by.size(); ++i) {
            gsel.push_back(b.group_by[i].expr + " AS " + quote_ident(hidden_name("g", i)));
        }
        for (const auto& it : b.core.items) {
            std::vector<std::string> back;
            for (const auto& c : it.columns) {
                const std::string flat = quote_ident(it.alias + "." + c.name);
                cols.push_back(quote_ident(it.alias) + "." + quote_ident(c.name) + " AS " + flat);
                col_names.push_back(flat);
                back.push_back("\"__pgt_c\"." + flat + " AS " + quote_ident(c.name));
            }
            if (back.empty()) {
                back.push_back("NULL AS \"__pgt_none\"");
            }
            rebinds.push_back("LATERAL (SELECT " + join(back, ", ") + ") AS " +
                              quote_ident(it.alias));
        }
        std::vector<std::string> aff_parts, old_parts;
        for (const auto& t : terms) {
            aff_parts.push_back(
                "SELECT " + (gsel.empty() ? std::string("1 AS \"__pgt_one\"") : join(gsel, ", ")) +
                " FROM " + join(t.from, ", ") + " WHERE " + and_all(t.conds));
            old_parts.push_back("SELECT " + join(cols, ", ") + ", (0" + op("-") + t.weight_sql() +
                                ") AS " + kW + " FROM " + join(t.from, ", ") + " WHERE " +
                                and_all(t.conds));
        }
        const std::string tail = (ge.empty() ? std::string() : " GROUP BY " + join(ge, ", ")) +
                                 (b.having.empty() ? std::string() : " HAVING " + b.having);
        const std::string from_new = " FROM " + join(core_from_new(b.core), ", ") + " WHERE " +
                                     and_all(core_where_new(b.core));
        const std::string aff = "\"__pgt_aff\"";
        const std::string new_rows =
            restrict_to_groups("SELECT " + targets + ", 1 AS " + kW + from_new, ge, aff, tail);
        const std::string old_core =
            restrict_to_groups("SELECT " + join(cols, ", ") + ", 1 AS " + kW + from_new, ge, aff,
                               "") +
            " UNION ALL " + join(old_parts, " UNION ALL ");
        const std::string old_rows = "SELECT " + targets + ", -1 AS " + kW + " FROM (SELECT " +
                                     join(col_names, ", ") + ", pg_catalog.sum(" + kW +
                                     ") AS \"__pgt_n\" FROM (" + old_core +
                                     ") AS \"__pgt_u\" GROUP BY " + join(col_names, ", ") +
                                     " HAVING pg_catalog.sum(" + kW + ")" + op(">") +
                                     "0) AS \"__pgt_c\" CROSS JOIN LATERAL "
                                     "pg_catalog.generate_series(1::bigint, "
                                     "\"__pgt_c\".\"__pgt_n\"::bigint) AS \"__pgt_rep\", " +
                                     join(rebinds, ", ") + tail;
        return "WITH " + aff + " AS (SELECT DISTINCT * FROM (" + join(aff_parts, " UNION ALL ") +
               ") AS \"__pgt_k\") (" + new_rows + ") UNION ALL (" + old_rows + ")";
    }

    std::string query_delta(const Query& q) const {
        if (!q.union_all) {
            if (q.block.grouped || q.block.distinct) {
                std::vector<std::string> sel;
                for (const auto& t : q.block.targets) {
                    sel.push_back(t.expr + " AS " + quote_ident(t.column.name));
                }
                return grouped_block_delta(q.block, sel);
            }
            std::vector<std::string> sel;
            for (const auto& t : q.block.targets) {
                sel.push_back(t.expr + " AS " + quote_ident(t.column.name));
            }
            return block_delta(q.block, sel);
        }
        std::vector<std::string> parts;
        for (const auto& br : q.branches) {
            parts.push_back("(" + query_delta(*br) + ")");
        }
        return join(parts, " UNION ALL ");
    }

  private:
    const ChangeWindow* win_;
};

std::string col_list(const std::vector<Column>& cols, const std::string& prefix = "") {
    std::vector<std::string> out;
    out.reserve(cols.size());
    for (const auto& c : cols) {
        out.push_back(prefix + quote_ident(c.name));
    }
    return join(out, ", ");
}

std::string hidden_name(const char* what, size_t i) {
    return std::string("__pgt_") + what + "_" + std::to_string(i + 1);
}

bool is_algebraic(const Block& b) {
    if (!b.having.empty()) {
        return false;
    }
    for (const auto& t : b.targets) {
        if (t.kind == Target::Kind::expr) {
            return false;
        }
        if (t.kind == Target::Kind::aggregate && !b.aggs[t.ref].algebraic) {
            return false;
        }
    }
    return true;
}

/// Row id of a group from the grouping values (same expression in full and delta SQL).
std::string group_row_id(const std::vector<std::string>& values) {
    if (values.empty()) {
        return "0::bigint";
    }
    return "pgtrickle.row_id(" + join(values, ", ") + ")";
}

/// `select_from_where` (ending in a WHERE clause) restricted to the groups listed in the
/// CTE `aff` (columns __pgt_g1..), `tail` (GROUP BY / HAVING) appended to each branch.
/// Keys without NULLs: a hashable, index-friendly semi-join. Keys with a NULL: matched on
/// the row id, only when such a group was touched (a one-time filter otherwise). Groups
/// with and without NULL keys are disjoint, so the two branches are too.
std::string restrict_to_groups(const std::string& select_from_where,
                               const std::vector<std::string>& ge, const std::string& aff,
                               const std::string& tail) {
    if (ge.empty()) {
        return select_from_where + tail;
    }
    std::vector<std::string> gc, nn, anynull_aff, anynull_src;
    for (size_t i = 0; i < ge.size(); ++i) {
        gc.push_back(quote_ident(hidden_name("g", i)));
        nn.push_back(gc[i] + " IS NOT NULL");
        anynull_aff.push_back(gc[i] + " IS NULL");
        anynull_src.push_back("(" + ge[i] + ") IS NULL");
    }
    return select_from_where + " AND (" + join(ge, ", ") + ") IN (SELECT " + join(gc, ", ") +
           " FROM " + aff + " WHERE " + and_all(nn) + ")" + tail + " UNION ALL " +
           select_from_where + " AND (" + join(anynull_src, " OR ") +
           ") AND EXISTS (SELECT 1 FROM " + aff + " WHERE " + join(anynull_aff, " OR ") + ") AND " +
           group_row_id(ge) + " IN (SELECT " + group_row_id(gc) + " FROM " + aff + ")" + tail;
}

std::vector<std::string> group_exprs(const Block& b) {
    std::vector<std::string> g;
    for (const auto& k : b.group_by) {
        g.push_back(k.expr);
    }
    return g;
}

std::vector<std::string> g_cols(const Block& b, const std::string& prefix) {
    std::vector<std::string> g;
    for (size_t i = 0; i < b.group_by.size(); ++i) {
        g.push_back(prefix + quote_ident(hidden_name("g", i)));
    }
    return g;
}

/// Hidden aggregate state for one target of an algebraic groups layout.
std::vector<std::string> hidden_aggregate_exprs(const Block& b, const StorageLayout& layout) {
    std::vector<std::string> out{"pg_catalog.count(*)"};
    if (!layout.algebraic) {
        return out;
    }
    for (const auto& t : b.targets) {
        if (t.kind != Target::Kind::aggregate) {
            continue;
        }
        const Aggregate& a = b.aggs[t.ref];
        if (a.kind == Aggregate::Kind::sum || a.kind == Aggregate::Kind::avg) {
            out.push_back("pg_catalog.count(" + a.arg + ")");
        }
        if (a.kind == Aggregate::Kind::avg) {
            out.push_back("pg_catalog.sum((" + a.arg + ")::pg_catalog.numeric)");
        }
    }
    return out;
}

std::string rows_full(const StorageLayout& layout, const std::string& target,
                      const std::string& view) {
    std::vector<std::string> q;
    for (const auto& c : layout.visible) {
        q.push_back("q." + quote_ident(c.name));
    }
    return "INSERT INTO " + target + " (" + col_list(layout.visible) +
           ", \"__pgt_row_id\") SELECT " + join(q, ", ") + ", pgtrickle.row_id(" + join(q, ", ") +
           ") FROM " + view + " AS q";
}

std::string groups_full(const Generator& gen, const Block& b, const StorageLayout& layout,
                        const std::string& target) {
    std::vector<std::string> sel;
    for (const auto& t : b.targets) {
        sel.push_back(t.expr);
    }
    sel.push_back(group_row_id(group_exprs(b)));
    for (const auto& h : hidden_aggregate_exprs(b, layout)) {
        sel.push_back(h);
    }
    std::vector<std::string> cols;
    for (const auto& c : layout.visible) {
        cols.push_back(quote_ident(c.name));
    }
    for (const auto& h : layout.hidden) {
        cols.push_back(quote_ident(h.name));
    }
    std::string s = "INSERT INTO " + target + " (" + join(cols, ", ") + ") SELECT " +
                    join(sel, ", ") + " FROM " + join(gen.core_from_new(b.core), ", ") + " WHERE " +
                    and_all(gen.core_where_new(b.core));
    if (!b.group_by.empty()) {
        s += " GROUP BY " + join(group_exprs(b), ", ");
    }
    if (!b.having.empty()) {
        s += " HAVING " + b.having;
    }
    return s;
}

/// Apply for the rows layout: consolidate the delta per distinct row, delete |n| copies of
/// rows whose weight is negative (by ctid, matched on the row id), insert n copies of rows
/// whose weight is positive.
std::string rows_apply(const Generator& gen, const Query& q, const StorageLayout& layout,
                       const std::string& target) {
    std::vector<std::string> pos;
    for (size_t i = 0; i < layout.visible.size(); ++i) {
        pos.push_back(std::to_string(i + 1));
    }
    const std::string cols = col_list(layout.visible);
    const std::string dcols = col_list(layout.visible, "d.");
    const std::string rcols = col_list(layout.visible, "r.");
    return "WITH \"__pgt_d\" AS (SELECT " + cols + ", pg_catalog.sum(" + kW +
           ") AS \"__pgt_dw\" FROM (" + gen.query_delta(q) + ") AS \"__pgt_x\" GROUP BY " +
           join(pos, ", ") + " HAVING pg_catalog.sum(" + kW + ")" + op("<>") + "0), " +
           "\"__pgt_dr\" AS MATERIALIZED (SELECT " + dcols + ", d.\"__pgt_dw\", pgtrickle.row_id(" +
           dcols + ") AS \"__pgt_rid\" FROM \"__pgt_d\" AS d), " +
           "\"__pgt_del\" AS (DELETE FROM " + target +
           // For each row id losing copies, |weight| of its stored copies: an index probe with
           // LIMIT per row id (no sort of all matched rows).
           " AS t USING (SELECT z.tid FROM \"__pgt_dr\" AS r CROSS JOIN LATERAL (SELECT t2.ctid AS "
           "tid FROM " +
           target + " AS t2 WHERE t2.\"__pgt_row_id\"" + op("=") + "r.\"__pgt_rid\" LIMIT (0" +
           op("-") + "r.\"__pgt_dw\")) AS z WHERE r.\"__pgt_dw\"" + op("<") +
           "0) AS k WHERE t.ctid" + op("=") + "k.tid RETURNING 1), " +
           "\"__pgt_ins\" AS (INSERT INTO " + target + " (" + cols + ", \"__pgt_row_id\") SELECT " +
           rcols +
           ", r.\"__pgt_rid\" FROM \"__pgt_dr\" AS r CROSS JOIN LATERAL "
           "pg_catalog.generate_series(1::bigint, "
           "r.\"__pgt_dw\"::bigint) AS n WHERE r.\"__pgt_dw\"" +
           op(">") + "0 RETURNING 1) " + "SELECT (SELECT pg_catalog.count(*) FROM \"__pgt_del\")" +
           op("+") + "(SELECT pg_catalog.count(*) FROM \"__pgt_ins\")";
}

/// Terms of a grouped block's delta projected to grouping values (and aggregate args).
std::string grouped_delta_rows(const Generator& gen, const Block& b, bool with_args) {
    std::vector<std::string> sel;
    for (size_t i = 0; i < b.group_by.size(); ++i) {
        sel.push_back(b.group_by[i].expr + " AS " + quote_ident(hidden_name("g", i)));
    }
    if (with_args) {
        for (size_t j = 0; j < b.aggs.size(); ++j) {
            if (b.aggs[j].kind == Aggregate::Kind::count_star) {
                continue;
            }
            sel.push_back(b.aggs[j].arg + " AS " + quote_ident(hidden_name("a", j)));
        }
    }
    if (sel.empty()) {
        sel.push_back("1 AS \"__pgt_one\"");
    }
    return gen.block_delta(b, sel);
}

/// NULL-safe match of grouping expressions against the source row `s` (correlated
/// rescan), index-friendly when no key is NULL.
std::string group_match(const Block& b, const std::string& s) {
    std::vector<std::string> eq, nullsafe, notnull;
    for (size_t i = 0; i < b.group_by.size(); ++i) {
        const auto& k = b.group_by[i];
        const std::string sv = s + "." + quote_ident(hidden_name("g", i));
        eq.push_back("(" + k.expr + ")" + k.eq_op + sv);
        nullsafe.push_back("((" + k.expr + ")" + k.eq_op + sv + " OR ((" + k.expr +
                           ") IS NULL AND " + sv + " IS NULL))");
        notnull.push_back(sv + " IS NOT NULL");
    }
    return "(CASE WHEN " + and_all(notnull) + " THEN " + and_all(eq) + " ELSE " +
           and_all(nullsafe) + " END)";
}

std::string groups_algebraic_apply(const Generator& gen, const Block& b,
                                   const StorageLayout& layout, const std::string& target) {
    // 1. consolidate the delta per (group, argument values); 2. fold per group.
    std::vector<std::string> c_cols = g_cols(b, "");
    std::vector<std::string> a_cols;
    for (size_t j = 0; j < b.aggs.size(); ++j) {
        if (b.aggs[j].kind != Aggregate::Kind::count_star) {
            a_cols.push_back(quote_ident(hidden_name("a", j)));
        }
    }
    std::vector<std::string> all = c_cols;
    all.insert(all.end(), a_cols.begin(), a_cols.end());
    std::vector<std::string> pos;
    for (size_t i = 0; i < all.size(); ++i) {
        pos.push_back(std::to_string(i + 1));
    }
    std::string s = "WITH \"__pgt_c\" AS (SELECT " +
                    (all.empty() ? std::string("1 AS \"__pgt_one\"") : join(all, ", ")) +
                    ", pg_catalog.sum(" + kW + ") AS " + kW + " FROM (" +
                    grouped_delta_rows(gen, b, true) + ") AS \"__pgt_x\"" +
                    (all.empty() ? "" : " GROUP BY " + join(pos, ", ")) +
                    " HAVING pg_catalog.sum(" + kW + ")" + op("<>") + "0), ";
    std::vector<std::string> d = c_cols;
    d.push_back("pg_catalog.sum(" + std::string(kW) + ") AS \"__pgt_dcount\"");
    d.push_back("pg_catalog.bool_or(" + std::string(kW) + op("<") + "0) AS \"__pgt_dneg\"");
    for (size_t j = 0; j < b.aggs.size(); ++j) {
        const Aggregate& a = b.aggs[j];
        const std::string av = quote_ident(hidden_name("a", j));
        const std::string nn =
            "pg_catalog.sum(CASE WHEN " + av + " IS NOT NULL THEN " + kW + " ELSE 0 END)";
        switch (a.kind) {
            case Aggregate::Kind::count_star:
                break;
            case Aggregate::Kind::count:
                d.push_back(nn + " AS " + quote_ident(hidden_name("dnn", j)));
                break;
            case Aggregate::Kind::sum:
            case Aggregate::Kind::avg:
                d.push_back(nn + " AS " + quote_ident(hidden_name("dnn", j)));
                d.push_back("pg_catalog.sum((" + av + ")::pg_catalog.numeric" + op("*") + kW +
                            ") AS " + quote_ident(hidden_name("dsum", j)));
                break;
            case Aggregate::Kind::min:
            case Aggregate::Kind::max:
                d.push_back(std::string(a.kind == Aggregate::Kind::min ? "pg_catalog.min("
                                                                       : "pg_catalog.max(") +
                            av + ") FILTER (WHERE " + kW + op(">") + "0) AS " +
                            quote_ident(hidden_name("dext", j)));
                break;
            case Aggregate::Kind::other:
                throw std::logic_error("non-algebraic aggregate on algebraic path");
        }
    }
    s += "\"__pgt_d\" AS (SELECT " + join(d, ", ") + " FROM \"__pgt_c\"" +
         (c_cols.empty() ? "" : " GROUP BY " + join(c_cols, ", ")) + ") ";

    const std::string T = "\"__pgt_t\"", S = "\"__pgt_s\"";
    auto tcol = [&](const std::string& n) { return T + "." + quote_ident(n); };
    auto scol = [&](const std::string& n) { return S + "." + quote_ident(n); };
    std::vector<std::string> set;
    std::vector<std::pair<std::string, std::string>> ins;  // (column, value) of a new group
    // Hidden columns are laid out as: row id, count, then per sum/avg target nn (+ sum for avg).
    size_t hidden_i = 2;
    const std::string new_count = "(" + tcol("__pgt_count") + op("+") + scol("__pgt_dcount") + ")";
    set.push_back("\"__pgt_count\" = " + new_count);
    ins.emplace_back("\"__pgt_row_id\"", scol("__pgt_rid"));
    ins.emplace_back("\"__pgt_count\"", scol("__pgt_dcount"));
    for (const Target& t : b.targets) {
        const std::string col = quote_ident(t.column.name);
        const std::string cast = "::" + t.column.type;
        if (t.kind == Target::Kind::group_key) {
            ins.emplace_back(col, scol(hidden_name("g", t.ref)));
            continue;
        }
        const Aggregate& a = b.aggs[t.ref];
        const size_t j = t.ref;
        const std::string dnn = scol(hidden_name("dnn", j));
        switch (a.kind) {
            case Aggregate::Kind::count_star:
                set.push_back(col + " = " + T + "." + col + op("+") + scol("__pgt_dcount"));
                ins.emplace_back(col, scol("__pgt_dcount"));
                break;
            case Aggregate::Kind::count:
                set.push_back(col + " = " + T + "." + col + op("+") + dnn);
                ins.emplace_back(col, dnn);
                break;
            case Aggregate::Kind::sum:
            case Aggregate::Kind::avg: {
                const std::string nn_name = layout.hidden[hidden_i++].name;
                const std::string new_nn = "(" + tcol(nn_name) + op("+") + dnn + ")";
                const std::string dsum = "COALESCE(" + scol(hidden_name("dsum", j)) + ", 0)";
                set.push_back(quote_ident(nn_name) + " = " + new_nn);
                ins.emplace_back(quote_ident(nn_name), dnn);
                if (a.kind == Aggregate::Kind::sum) {
                    set.push_back(col + " = CASE WHEN " + new_nn + op("=") +
                                  "0 THEN NULL ELSE (COALESCE(" + T + "." + col +
                                  "::pg_catalog.numeric, 0)" + op("+") + dsum + ")" + cast +
                                  " END");
                    ins.emplace_back(col, "CASE WHEN " + dnn + op("=") + "0 THEN NULL ELSE (" +
                                              dsum + ")" + cast + " END");
                } else {
                    const std::string sum_name = layout.hidden[hidden_i++].name;
                    const std::string new_sum =
                        "(COALESCE(" + tcol(sum_name) + ", 0)" + op("+") + dsum + ")";
                    set.push_back(quote_ident(sum_name) + " = " + new_sum);
                    set.push_back(col + " = CASE WHEN " + new_nn + op("=") + "0 THEN NULL ELSE (" +
                                  new_sum + op("/") + new_nn + "::pg_catalog.numeric)" + cast +
                                  " END");
                    ins.emplace_back(quote_ident(sum_name), dsum);
                    ins.emplace_back(col, "CASE WHEN " + dnn + op("=") + "0 THEN NULL ELSE (" +
                                              dsum + op("/") + dnn + "::pg_catalog.numeric)" +
                                              cast + " END");
                }
                break;
            }
            case Aggregate::Kind::min:
            case Aggregate::Kind::max: {
                const char* fn = a.kind == Aggregate::Kind::min ? "LEAST" : "GREATEST";
                const std::string rescan = "(SELECT " + a.sql + " FROM " +
                                           join(gen.core_from_new(b.core), ", ") + " WHERE " +
                                           and_all(gen.core_where_new(b.core)) + " AND " +
                                           group_match(b, S) + ")";
                set.push_back(col + " = CASE WHEN NOT " + scol("__pgt_dneg") + " THEN " + fn + "(" +
                              T + "." + col + ", " + scol(hidden_name("dext", j)) + ") ELSE " +
                              rescan + " END");
                ins.emplace_back(col, scol(hidden_name("dext", j)));
                break;
            }
            case Aggregate::Kind::other:
                throw std::logic_error("non-algebraic aggregate on algebraic path");
        }
    }
    std::vector<std::string> ins_cols, ins_vals;
    for (const auto& [c, v] : ins) {
        ins_cols.push_back(c);
        ins_vals.push_back(v);
    }
    s += "MERGE INTO " + target + " AS " + T + " USING (SELECT d.*, " +
         group_row_id(g_cols(b, "d.")) + " AS \"__pgt_rid\" FROM \"__pgt_d\" AS d) AS " + S +
         " ON " + tcol("__pgt_row_id") + op("=") + scol("__pgt_rid");
    if (!layout.global_aggregate) {
        s += " WHEN MATCHED AND " + new_count + op("<=") + "0 THEN DELETE";
    }
    s += " WHEN MATCHED THEN UPDATE SET " + join(set, ", ");
    s +=
        " WHEN NOT MATCHED" +
        std::string(layout.global_aggregate ? "" : " AND " + scol("__pgt_dcount") + op(">") + "0") +
        " THEN INSERT (" + join(ins_cols, ", ") + ") VALUES (" + join(ins_vals, ", ") + ")";
    return s;
}

/// Apply for groups that are recomputed: the groups touched by the delta are aggregated
/// again from the current state and replace (or remove) their stored rows.
std::string groups_recompute_apply(const Generator& gen, const Block& b,
                                   const StorageLayout& layout, const std::string& target) {
    const std::vector<std::string> gc = g_cols(b, "");
    const std::vector<std::string> ge = group_exprs(b);
    std::string s = "WITH \"__pgt_aff\" AS (SELECT DISTINCT " +
                    (gc.empty() ? std::string("1 AS \"__pgt_one\"") : join(gc, ", ")) + " FROM (" +
                    grouped_delta_rows(gen, b, false) + ") AS \"__pgt_x\"), ";
    std::vector<std::string> sel;
    for (const auto& t : b.targets) {
        sel.push_back(t.expr + " AS " + quote_ident(t.column.name));
    }
    const auto hidden_exprs = hidden_aggregate_exprs(b, layout);
    for (size_t i = 1; i < layout.hidden.size(); ++i) {
        sel.push_back(hidden_exprs[i - 1] + " AS " + quote_ident(layout.hidden[i].name));
    }
    sel.push_back(group_row_id(ge) + " AS \"__pgt_rid\"");
    const std::string base = "SELECT " + join(sel, ", ") + " FROM " +
                             join(gen.core_from_new(b.core), ", ") + " WHERE " +
                             and_all(gen.core_where_new(b.core));
    const std::string tail = (ge.empty() ? std::string() : " GROUP BY " + join(ge, ", ")) +
                             (b.having.empty() ? std::string() : " HAVING " + b.having);
    const std::string newg = restrict_to_groups(base, ge, "\"__pgt_aff\"", tail);
    s += "\"__pgt_new\" AS (" + newg + ") ";
    const std::string T = "\"__pgt_t\"", S = "\"__pgt_s\"";
    std::vector<std::string> set, ins_cols, ins_vals;
    for (const auto& c : layout.visible) {
        set.push_back(quote_ident(c.name) + " = " + S + "." + quote_ident(c.name));
        ins_cols.push_back(quote_ident(c.name));
        ins_vals.push_back(S + "." + quote_ident(c.name));
    }
    ins_cols.push_back("\"__pgt_row_id\"");
    ins_vals.push_back(S + ".\"__pgt_rid\"");
    for (size_t i = 1; i < layout.hidden.size(); ++i) {
        const std::string h = quote_ident(layout.hidden[i].name);
        set.push_back(h + " = " + S + "." + h);
        ins_cols.push_back(h);
        ins_vals.push_back(S + "." + h);
    }
    s += "MERGE INTO " + target + " AS " + T +
         " USING (SELECT a.\"__pgt_arid\", n.* FROM (SELECT " + group_row_id(gc) +
         " AS \"__pgt_arid\" FROM \"__pgt_aff\") AS a LEFT JOIN \"__pgt_new\" AS n ON "
         "n.\"__pgt_rid\"" +
         op("=") + "a.\"__pgt_arid\") AS " + S + " ON " + T + ".\"__pgt_row_id\"" + op("=") + S +
         ".\"__pgt_arid\"" + " WHEN MATCHED AND " + S + ".\"__pgt_rid\" IS NULL THEN DELETE" +
         " WHEN MATCHED THEN UPDATE SET " + join(set, ", ") + " WHEN NOT MATCHED AND " + S +
         ".\"__pgt_rid\" IS NOT NULL THEN INSERT (" + join(ins_cols, ", ") + ") VALUES (" +
         join(ins_vals, ", ") + ")";
    return s;
}

// ---- explain -------------------------------------------------------------------------
void explain_query(const Query& q, int depth, std::ostringstream& os);

std::string indent(int depth) {
    return std::string(static_cast<size_t>(depth) * 2, ' ');
}

void explain_tree_node(const SpjCore& c, const JoinTree& t, int depth, std::ostringstream& os) {
    switch (t.kind) {
        case JoinTree::Kind::item: {
            const FromItem& it = c.items[t.item];
            if (it.kind == FromItem::Kind::table) {
                os << indent(depth) << "Scan " << it.table.schema << "." << it.table.name << " AS "
                   << it.alias << " (buffer changes_" << it.table.stable_name << ")\n";
            } else {
                os << indent(depth) << "Subquery AS " << it.alias << "\n";
                explain_query(*it.query, depth + 1, os);
            }
            return;
        }
        case JoinTree::Kind::inner:
            os << indent(depth) << "Inner Join ON " << t.on << "\n";
            break;
        case JoinTree::Kind::left:
            os << indent(depth) << "Left Join ON " << t.on << "\n";
            break;
    }
    explain_tree_node(c, *t.left, depth + 1, os);
    explain_tree_node(c, *t.right, depth + 1, os);
}

void explain_core(const SpjCore& c, int depth, std::ostringstream& os) {
    for (const auto& s : c.semijoins) {
        os << indent(depth) << (s.anti ? "Anti Join (NOT EXISTS)" : "Semi Join (EXISTS)") << "\n";
        explain_core(*s.sub, depth + 2, os);
        depth += 1;
    }
    if (!c.quals.empty()) {
        os << indent(depth) << "Filter " << and_all(c.quals) << "\n";
        depth += 1;
    }
    if (c.from.size() > 1) {
        os << indent(depth) << "Cross Join\n";
        depth += 1;
    }
    for (const auto& t : c.from) {
        explain_tree_node(c, t, depth, os);
    }
}

void explain_query(const Query& q, int depth, std::ostringstream& os) {
    if (q.union_all) {
        os << indent(depth) << "Union All\n";
        for (const auto& br : q.branches) {
            explain_query(*br, depth + 1, os);
        }
        return;
    }
    const Block& b = q.block;
    std::vector<std::string> cols;
    for (const auto& t : b.targets) {
        cols.push_back(t.column.name);
    }
    if (b.grouped) {
        std::vector<std::string> aggs;
        for (const auto& a : b.aggs) {
            aggs.push_back(a.sql + (a.algebraic ? "" : " [recomputed]"));
        }
        os << indent(depth) << (b.distinct ? "Distinct" : "Aggregate") << " (" << join(cols, ", ")
           << ")";
        if (!b.group_by.empty()) {
            os << " group by " << join(group_exprs(b), ", ");
        }
        if (!aggs.empty()) {
            os << ": " << join(aggs, ", ");
        }
        if (!b.having.empty()) {
            os << " having " << b.having;
        }
        os << "\n";
    } else {
        os << indent(depth) << "Project (" << join(cols, ", ") << ")\n";
    }
    explain_core(b.core, depth + 1, os);
}

}  // namespace

StorageLayout full_layout(const std::vector<Column>& columns) {
    StorageLayout l;
    l.kind = StorageKind::rows;
    l.visible = columns;
    l.hidden.push_back({"__pgt_row_id", "bigint"});
    return l;
}

StorageLayout differential_layout(const Query& q) {
    if (q.union_all || !q.block.grouped) {
        return full_layout(q.columns);
    }
    const Block& b = q.block;
    StorageLayout l;
    l.kind = StorageKind::groups;
    l.global_aggregate = b.group_by.empty();
    l.algebraic = is_algebraic(b);
    l.visible = q.columns;
    l.hidden.push_back({"__pgt_row_id", "bigint"});
    l.hidden.push_back({"__pgt_count", "bigint"});
    if (l.algebraic) {
        for (size_t i = 0; i < b.targets.size(); ++i) {
            const Target& t = b.targets[i];
            if (t.kind != Target::Kind::aggregate) {
                continue;
            }
            const Aggregate& a = b.aggs[t.ref];
            if (a.kind == Aggregate::Kind::sum || a.kind == Aggregate::Kind::avg) {
                l.hidden.push_back({hidden_name("nn", i), "bigint"});
            }
            if (a.kind == Aggregate::Kind::avg) {
                l.hidden.push_back({hidden_name("sum", i), "numeric"});
            }
        }
    }
    return l;
}

std::string full_refresh_sql(const Query* q, const StorageLayout& layout, const std::string& target,
                             const std::string& query_view) {
    if (layout.kind == StorageKind::rows) {
        return rows_full(layout, target, query_view);
    }
    if (q == nullptr || q->union_all) {
        throw std::logic_error("groups layout needs a grouped block");
    }
    ChangeWindow none;
    Generator gen(&none);
    return groups_full(gen, q->block, layout, target);
}

std::string delta_apply_sql(const Query& q, const StorageLayout& layout, const std::string& target,
                            const ChangeWindow& window) {
    Generator gen(&window);
    if (layout.kind == StorageKind::rows) {
        return rows_apply(gen, q, layout, target);
    }
    if (layout.algebraic) {
        return groups_algebraic_apply(gen, q.block, layout, target);
    }
    return groups_recompute_apply(gen, q.block, layout, target);
}

std::string delta_rows_sql(const Query& q, const ChangeWindow& window) {
    Generator gen(&window);
    return gen.query_delta(q);
}

std::string explain_tree(const Query& q, const StorageLayout& layout) {
    std::ostringstream os;
    explain_query(q, 0, os);
    os << "Storage: "
       << (layout.kind == StorageKind::rows ? "rows (duplicates kept, row id = content hash)"
           : layout.algebraic               ? "groups (algebraic: updated from deltas)"
                                            : "groups (touched groups recomputed)")
       << "\n";
    return os.str();
}

}  // namespace pgt::ivm
