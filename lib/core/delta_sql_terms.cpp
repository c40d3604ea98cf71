// The Z-set rules: current states and deltas of relations, join trees, SPJ cores, blocks and
// queries (see delta_sql_terms.h for the rules).
#include "core/delta_sql_terms.h"

#include <stdexcept>

#include "core/frontier.h"
#include "core/sql_ident.h"

namespace pgt::ivm {
namespace detail {

using sql::join;
using sql::quote_ident;

const char* const kWeightColumn = "\"__pgt_w\"";

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

std::string hidden_name(const char* what, size_t i) {
    return std::string("__pgt_") + what + "_" + std::to_string(i + 1);
}

std::string group_row_id(const std::vector<std::string>& values) {
    if (values.empty()) {
        return "0::bigint";
    }
    return "pgtrickle.row_id(" + join(values, ", ") + ")";
}

std::string row_image_id(const std::vector<std::string>& values) {
    if (values.empty()) {
        return "0::bigint";
    }
    return "pgtrickle.row_image_id(" + join(values, ", ") + ")";
}

std::vector<std::string> consolidation_keys(const std::vector<std::string>& cols,
                                            RowIdentity identity) {
    std::vector<std::string> keys;
    if (identity == RowIdentity::image && !cols.empty()) {
        keys.push_back(row_image_id(cols));
    }
    keys.insert(keys.end(), cols.begin(), cols.end());
    return keys;
}

std::vector<std::string> group_key_exprs(const Block& b) {
    std::vector<std::string> keys;
    for (const auto& k : b.group_by) {
        keys.push_back(k.expr);
    }
    return keys;
}

std::vector<std::string> group_value_columns(const Block& b, const std::string& prefix) {
    std::vector<std::string> cols;
    for (size_t i = 0; i < b.group_by.size(); ++i) {
        cols.push_back(prefix + quote_ident(hidden_name("g", i)));
    }
    return cols;
}

// Keys without NULLs: a hashable, index-friendly semi-join (EXISTS, each key compared with
// its type's own equality operator, schema-qualified: `IN` would look "=" up on the
// search_path). Keys with a NULL (for a composite: with a NULL field, where `=` is not true):
// matched on the row id, only when such a group was touched (a one-time filter otherwise).
// "every key IS NOT NULL" and its negation split the groups, so the two branches are disjoint.
std::string restrict_to_groups(const std::string& select_from_where,
                               const std::vector<GroupKey>& keys, const std::string& touched_groups,
                               const std::string& tail) {
    if (keys.empty()) {
        return select_from_where + tail;
    }
    std::vector<std::string> key_exprs, key_cols, keys_equal, stored_not_null, source_not_null;
    for (size_t i = 0; i < keys.size(); ++i) {
        const std::string eq = keys[i].eq_op.empty() ? op("=") : keys[i].eq_op;
        key_exprs.push_back(keys[i].expr);
        key_cols.push_back("\"__pgt_tg\"." + quote_ident(hidden_name("g", i)));
        keys_equal.push_back(key_cols[i] + eq + "(" + keys[i].expr + ")");
        stored_not_null.push_back(key_cols[i] + " IS NOT NULL");
        source_not_null.push_back("(" + keys[i].expr + ") IS NOT NULL");
    }
    const std::string touched = touched_groups + " AS \"__pgt_tg\"";
    return select_from_where + " AND EXISTS (SELECT 1 FROM " + touched + " WHERE " +
           and_all(stored_not_null) + " AND " + and_all(keys_equal) + ")" + tail + " UNION ALL " +
           select_from_where + " AND NOT (" + and_all(source_not_null) +
           ") AND EXISTS (SELECT 1 FROM " + touched + " WHERE NOT (" + and_all(stored_not_null) +
           ")) AND " + group_row_id(key_exprs) + op("=") + "ANY (SELECT " + group_row_id(key_cols) +
           " FROM " + touched + ")" + tail;
}

std::string Term::weight_sql() const {
    std::string w = weight.empty() ? "1" : join(weight, op("*"));
    return negate ? "(0" + op("-") + "(" + w + "))" : "(" + w + ")";
}

namespace {

/// Inner join of two deltas/new states: ΔL⋈R_new + L_new⋈ΔR - ΔL⋈ΔR.
std::vector<Term> combine_inner(const std::vector<std::string>& left_new,
                                const std::vector<Term>& left_delta,
                                const std::vector<std::string>& right_new,
                                const std::vector<Term>& right_delta, const std::string& on) {
    std::vector<Term> out;
    auto add_on = [&](Term& t) {
        if (!on.empty()) {
            t.conds.push_back(on);
        }
    };
    for (const auto& tl : left_delta) {
        Term t = tl;
        t.from.insert(t.from.end(), right_new.begin(), right_new.end());
        add_on(t);
        out.push_back(std::move(t));
    }
    for (const auto& tr : right_delta) {
        Term t = tr;
        t.from.insert(t.from.begin(), left_new.begin(), left_new.end());
        add_on(t);
        out.push_back(std::move(t));
    }
    for (const auto& tl : left_delta) {
        for (const auto& tr : right_delta) {
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

/// [exists an r in (new pieces, new conds) with cond] in the old state, given the delta terms
/// of that relation: count_new - Σ weights of matching delta rows > 0.
std::string exists_old(const std::vector<std::string>& new_from,
                       const std::vector<std::string>& new_conds, const std::vector<Term>& delta,
                       const std::string& cond) {
    std::vector<std::string> conds = new_conds;
    if (!cond.empty()) {
        conds.push_back(cond);
    }
    std::string s = "((SELECT pg_catalog.count(*) FROM " + join(new_from, ", ") + " WHERE " +
                    and_all(conds) + ")";
    for (const auto& t : delta) {
        std::vector<std::string> term_conds = t.conds;
        if (!cond.empty()) {
            term_conds.push_back(cond);
        }
        s += op("-") + "(SELECT COALESCE(pg_catalog.sum(" + t.weight_sql() + "), 0) FROM " +
             join(t.from, ", ") + " WHERE " + and_all(term_conds) + ")";
    }
    return s + op(">") + "0)";
}

std::string exists_new(const std::vector<std::string>& new_from,
                       const std::vector<std::string>& new_conds, const std::string& cond) {
    std::vector<std::string> conds = new_conds;
    if (!cond.empty()) {
        conds.push_back(cond);
    }
    return "EXISTS (SELECT 1 FROM " + join(new_from, ", ") + " WHERE " + and_all(conds) + ")";
}

std::string any_delta_match(const std::vector<Term>& delta, const std::string& cond) {
    std::vector<std::string> exists;
    for (const auto& t : delta) {
        std::vector<std::string> term_conds = t.conds;
        if (!cond.empty()) {
            term_conds.push_back(cond);
        }
        exists.push_back("EXISTS (SELECT 1 FROM " + join(t.from, ", ") + " WHERE " +
                         and_all(term_conds) + ")");
    }
    return "(" + join(exists, " OR ") + ")";
}

/// The user columns of `t` read from a table in buffer columns (its buffer, its state copy)
/// through `prefix`. A domain's values are held as its base type: cast back, so that the
/// query's expressions see the column's own type (its CHECK runs here, in the apply, as the
/// stream table's owner).
std::vector<std::string> buffered_columns(const BaseTable& t, const std::string& prefix) {
    std::vector<std::string> cols;
    for (size_t i = 0; i < t.columns.size(); ++i) {
        const bool domain = i < t.domain_columns.size() && t.domain_columns[i];
        cols.push_back(prefix + quote_ident(t.buffer_columns[i]) +
                       (domain ? "::" + t.columns[i].type : std::string()) + " AS " +
                       quote_ident(t.columns[i].name));
    }
    return cols;
}

std::string as_int(const std::string& pred) {
    return "(CASE WHEN " + pred + " THEN 1 ELSE 0 END)";
}

std::vector<std::string> select_targets(const Block& b) {
    std::vector<std::string> sel;
    for (const auto& t : b.targets) {
        sel.push_back(t.expr + " AS " + quote_ident(t.column.name));
    }
    return sel;
}

}  // namespace

// ---- relations -------------------------------------------------------------------------------
std::string DeltaGenerator::current_rel(const FromItem& item) const {
    if (item.kind == FromItem::Kind::table && !item.table.state.empty()) {
        // The source's rows as its buffer's frontier describes them: the copy its drains
        // keep, read under the same snapshot as the buffer's window.
        // (Its one row with a NULL image only says it is filled.)
        return "(SELECT " + join(buffered_columns(item.table, "s."), ", ") + " FROM " +
               item.table.state + " AS s WHERE s.\"__pgt_image\" IS NOT NULL) AS " +
               quote_ident(item.alias);
    }
    if (item.kind == FromItem::Kind::table) {
        return std::string(item.table.only ? "ONLY " : "") +
               sql::qualified(item.table.schema, item.table.name) + " AS " +
               quote_ident(item.alias);
    }
    return "(" + query_new(*item.query) + ") AS " + quote_ident(item.alias);
}

std::string DeltaGenerator::delta_rel(const FromItem& item) const {
    if (item.kind == FromItem::Kind::subquery) {
        return "(" + query_delta(*item.query) + ") AS " + quote_ident(item.alias);
    }
    const BaseTable& t = item.table;
    std::vector<std::string> cols = buffered_columns(t, "b.");
    cols.push_back("CASE WHEN b.\"__pgt_op\"" + op("=") + "'I' THEN 1 ELSE -1 END AS " +
                   kWeightColumn);
    return "(SELECT " + join(cols, ", ") + " FROM " + t.buffer + " AS b WHERE b.\"__pgt_op\"" +
           op("<>") + "'T' AND " + frontier::window_condition("b.", window_->frontier) +
           (window_->upto ? " AND " + frontier::upto_condition("b.", *window_->upto)
                          : std::string()) +
           ") AS " + quote_ident(item.alias);
}

std::string DeltaGenerator::null_rel(const FromItem& item) {
    std::vector<std::string> cols;
    for (const auto& c : item.columns) {
        cols.push_back("NULL::" + c.type + " AS " + quote_ident(c.name));
    }
    if (cols.empty()) {
        cols.push_back("NULL AS \"__pgt_none\"");
    }
    return "(SELECT " + join(cols, ", ") + ") AS " + quote_ident(item.alias);
}

bool DeltaGenerator::item_changed(const FromItem& item) const {
    if (item.kind == FromItem::Kind::table) {
        return window_->changed.count(item.table.stable_name) > 0;
    }
    return query_changed(*item.query);
}

// ---- join trees ------------------------------------------------------------------------------
std::string DeltaGenerator::tree_new(const SpjCore& c, const JoinTree& t) const {
    switch (t.kind) {
        case JoinTree::Kind::item:
            return current_rel(c.items[t.item]);
        case JoinTree::Kind::inner:
            return "(" + tree_new(c, *t.left) + " JOIN " + tree_new(c, *t.right) + " ON (" + t.on +
                   "))";
        case JoinTree::Kind::left:
            return "(" + tree_new(c, *t.left) + " LEFT JOIN " + tree_new(c, *t.right) + " ON (" +
                   t.on + "))";
    }
    throw std::logic_error("join tree kind");
}

void DeltaGenerator::tree_nulls(const SpjCore& c, const JoinTree& t,
                                std::vector<std::string>& out) const {
    if (t.kind == JoinTree::Kind::item) {
        out.push_back(null_rel(c.items[t.item]));
        return;
    }
    tree_nulls(c, *t.left, out);
    tree_nulls(c, *t.right, out);
}

bool DeltaGenerator::tree_changed(const SpjCore& c, const JoinTree& t) const {
    if (t.kind == JoinTree::Kind::item) {
        return item_changed(c.items[t.item]);
    }
    return tree_changed(c, *t.left) || tree_changed(c, *t.right);
}

std::vector<Term> DeltaGenerator::tree_delta(const SpjCore& c, const JoinTree& t) const {
    if (t.kind == JoinTree::Kind::item) {
        const FromItem& item = c.items[t.item];
        if (!item_changed(item)) {
            return {};
        }
        Term term;
        term.from.push_back(delta_rel(item));
        term.weight.push_back(quote_ident(item.alias) + "." + kWeightColumn);
        return {term};
    }
    const std::vector<std::string> left_new{tree_new(c, *t.left)};
    const std::vector<std::string> right_new{tree_new(c, *t.right)};
    const std::vector<Term> left_delta = tree_delta(c, *t.left);
    const std::vector<Term> right_delta = tree_delta(c, *t.right);
    std::vector<Term> out = combine_inner(left_new, left_delta, right_new, right_delta, t.on);
    if (t.kind == JoinTree::Kind::inner) {
        return out;
    }

    // Anti part of the left join: rows of L with no match in R, R bound to NULLs.
    std::vector<std::string> right_nulls;
    tree_nulls(c, *t.right, right_nulls);
    const std::string unmatched_new = as_int("NOT " + exists_new(right_new, {}, t.on));
    const std::string unmatched_old =
        right_delta.empty() ? unmatched_new
                            : as_int("NOT " + exists_old(right_new, {}, right_delta, t.on));
    for (const auto& tl : left_delta) {
        Term term = tl;
        term.from.insert(term.from.end(), right_nulls.begin(), right_nulls.end());
        term.weight.push_back(unmatched_old);
        out.push_back(std::move(term));
    }
    if (!right_delta.empty()) {
        Term term;
        term.from = left_new;
        term.from.insert(term.from.end(), right_nulls.begin(), right_nulls.end());
        term.conds.push_back(any_delta_match(right_delta, t.on));
        term.weight.push_back("(" + unmatched_new + op("-") + unmatched_old + ")");
        out.push_back(std::move(term));
    }
    return out;
}

// ---- SPJ cores -------------------------------------------------------------------------------
std::vector<std::string> DeltaGenerator::core_from_new(const SpjCore& c) const {
    std::vector<std::string> from;
    for (const auto& t : c.from) {
        from.push_back(tree_new(c, t));
    }
    return from;
}

std::string DeltaGenerator::semijoin_new(const SemiJoin& s) const {
    const std::string e = "EXISTS (SELECT 1 FROM " + join(core_from_new(*s.sub), ", ") + " WHERE " +
                          and_all(core_where_new(*s.sub)) + ")";
    return s.anti ? "NOT " + e : e;
}

std::vector<std::string> DeltaGenerator::core_where_new(const SpjCore& c) const {
    std::vector<std::string> where = c.quals;
    for (const auto& s : c.semijoins) {
        where.push_back(semijoin_new(s));
    }
    return where;
}

bool DeltaGenerator::core_changed(const SpjCore& c) const {
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

std::vector<Term> DeltaGenerator::core_delta(const SpjCore& c) const {
    // The FROM list is a chain of cross joins.
    std::vector<std::string> joined_new;
    std::vector<Term> joined_delta;
    for (size_t i = 0; i < c.from.size(); ++i) {
        const std::vector<std::string> next_new{tree_new(c, c.from[i])};
        const std::vector<Term> next_delta = tree_delta(c, c.from[i]);
        if (i == 0) {
            joined_delta = next_delta;
        } else {
            joined_delta = combine_inner(joined_new, joined_delta, next_new, next_delta, "");
        }
        joined_new.insert(joined_new.end(), next_new.begin(), next_new.end());
    }
    for (auto& t : joined_delta) {
        t.conds.insert(t.conds.end(), c.quals.begin(), c.quals.end());
    }

    bool any_semijoin_changed = false;
    for (const auto& s : c.semijoins) {
        any_semijoin_changed = any_semijoin_changed || core_changed(*s.sub);
    }
    if (!any_semijoin_changed) {
        for (auto& t : joined_delta) {
            for (const auto& s : c.semijoins) {
                t.conds.push_back(semijoin_new(s));
            }
        }
        return joined_delta;
    }
    // P(l) = conjunction of the semi-join predicates; see the header comment.
    std::vector<std::string> pred_new, pred_old, sub_delta_matches;
    for (const auto& s : c.semijoins) {
        const std::string now = semijoin_new(s);
        pred_new.push_back(now);
        if (!core_changed(*s.sub)) {
            pred_old.push_back(now);
            continue;
        }
        const std::vector<Term> sub_delta = core_delta(*s.sub);
        const std::string existed =
            exists_old(core_from_new(*s.sub), core_where_new(*s.sub), sub_delta, "");
        pred_old.push_back(s.anti ? "NOT " + existed : existed);
        sub_delta_matches.push_back(any_delta_match(sub_delta, ""));
    }
    const std::string pred_new_int = as_int(and_all(pred_new));
    const std::string pred_old_int = as_int(and_all(pred_old));
    for (auto& t : joined_delta) {
        t.weight.push_back(pred_old_int);
    }
    Term term;
    term.from = joined_new;
    term.conds = c.quals;
    term.conds.push_back(join(sub_delta_matches, " OR "));
    term.weight.push_back("(" + pred_new_int + op("-") + pred_old_int + ")");
    joined_delta.push_back(std::move(term));
    return joined_delta;
}

// ---- blocks and queries ------------------------------------------------------------------------
std::string DeltaGenerator::block_new(const Block& b) const {
    std::string s = std::string("SELECT ") + (b.distinct ? "DISTINCT " : "") +
                    join(select_targets(b), ", ") + " FROM " + join(core_from_new(b.core), ", ") +
                    " WHERE " + and_all(core_where_new(b.core));
    if (b.grouped && !b.group_by.empty()) {
        s += " GROUP BY " + join(group_key_exprs(b), ", ");
    }
    if (!b.having.empty()) {
        s += " HAVING " + b.having;
    }
    return s;
}

std::string DeltaGenerator::query_new(const Query& q) const {
    if (!q.union_all) {
        return block_new(q.block);
    }
    std::vector<std::string> parts;
    for (const auto& br : q.branches) {
        parts.push_back("(" + query_new(*br) + ")");
    }
    return join(parts, " UNION ALL ");
}

bool DeltaGenerator::query_changed(const Query& q) const {
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

std::string DeltaGenerator::block_delta(const Block& b,
                                        const std::vector<std::string>& select_list) const {
    std::vector<std::string> parts;
    for (const auto& t : core_delta(b.core)) {
        parts.push_back("SELECT " + join(select_list, ", ") + ", " + t.weight_sql() + " AS " +
                        kWeightColumn + " FROM " + join(t.from, ", ") + " WHERE " +
                        and_all(t.conds));
    }
    if (parts.empty()) {
        // Nothing changed under this block: an empty relation of the right shape.
        return "SELECT " + join(select_list, ", ") + ", 0 AS " + kWeightColumn + " FROM " +
               join(core_from_new(b.core), ", ") + " WHERE false";
    }
    return join(parts, " UNION ALL ");
}

// Delta of a grouped block below the top (a FROM subquery, a UNION ALL branch): the groups the
// core's delta touches, recomputed in the new state (+1) and in the old state (-1). The old
// state of the core is the multiset C_new - ΔC restricted to those groups, consolidated over
// every column of its range variables, by image first: rows equal under a column's equality
// but spelled differently ('alice', 'ALICE' under a case-insensitive collation) stay apart,
// since the block's expressions can tell them apart (`name COLLATE "C"`, a numeric's scale).
// Each range variable is then rebound to those columns (LATERAL), so the block's own
// expressions apply.
std::string DeltaGenerator::grouped_block_delta(const Block& b,
                                                const std::vector<std::string>& select_list) const {
    const std::vector<Term> terms = core_delta(b.core);
    const std::string targets = join(select_list, ", ");
    const std::vector<std::string> key_exprs = group_key_exprs(b);
    const std::string group_by =
        key_exprs.empty() ? std::string() : " GROUP BY " + join(key_exprs, ", ");
    if (terms.empty()) {
        // Nothing changed below: an empty relation of the right shape (a global aggregate
        // yields one row, with weight 0).
        return "SELECT " + targets + ", 0 AS " + kWeightColumn + " FROM " +
               join(core_from_new(b.core), ", ") + " WHERE false" + group_by;
    }
    std::vector<std::string> key_select, flat_select, flat_names, rebinds;
    for (size_t i = 0; i < b.group_by.size(); ++i) {
        key_select.push_back(b.group_by[i].expr + " AS " + quote_ident(hidden_name("g", i)));
    }
    for (const auto& item : b.core.items) {
        std::vector<std::string> back;
        for (const auto& c : item.columns) {
            const std::string flat = quote_ident(item.alias + "." + c.name);
            flat_select.push_back(quote_ident(item.alias) + "." + quote_ident(c.name) + " AS " +
                                  flat);
            flat_names.push_back(flat);
            back.push_back("\"__pgt_c\"." + flat + " AS " + quote_ident(c.name));
        }
        if (back.empty()) {
            back.push_back("NULL AS \"__pgt_none\"");
        }
        rebinds.push_back("LATERAL (SELECT " + join(back, ", ") + ") AS " +
                          quote_ident(item.alias));
    }
    std::vector<std::string> touched_parts, old_parts;
    for (const auto& t : terms) {
        touched_parts.push_back(
            "SELECT " +
            (key_select.empty() ? std::string("1 AS \"__pgt_one\"") : join(key_select, ", ")) +
            " FROM " + join(t.from, ", ") + " WHERE " + and_all(t.conds));
        old_parts.push_back("SELECT " + join(flat_select, ", ") + ", (0" + op("-") +
                            t.weight_sql() + ") AS " + kWeightColumn + " FROM " +
                            join(t.from, ", ") + " WHERE " + and_all(t.conds));
    }
    const std::string tail = group_by + (b.having.empty() ? std::string() : " HAVING " + b.having);
    const std::string from_new =
        " FROM " + join(core_from_new(b.core), ", ") + " WHERE " + and_all(core_where_new(b.core));
    const std::string touched = "\"__pgt_touched\"";
    const std::string new_rows = restrict_to_groups(
        "SELECT " + targets + ", 1 AS " + kWeightColumn + from_new, b.group_by, touched, tail);
    const std::string old_core = restrict_to_groups("SELECT " + join(flat_select, ", ") +
                                                        ", 1 AS " + kWeightColumn + from_new,
                                                    b.group_by, touched, "") +
                                 " UNION ALL " + join(old_parts, " UNION ALL ");
    const std::string old_rows =
        "SELECT " + targets + ", -1 AS " + kWeightColumn + " FROM (SELECT " +
        join(flat_names, ", ") + ", pg_catalog.sum(" + kWeightColumn + ") AS \"__pgt_n\" FROM (" +
        old_core + ") AS \"__pgt_u\" GROUP BY " +
        join(consolidation_keys(flat_names, identity_), ", ") + " HAVING pg_catalog.sum(" +
        kWeightColumn + ")" + op(">") +
        "0) AS \"__pgt_c\" CROSS JOIN LATERAL pg_catalog.generate_series(1::bigint, "
        "\"__pgt_c\".\"__pgt_n\"::bigint) AS \"__pgt_rep\", " +
        join(rebinds, ", ") + tail;
    return "WITH " + touched + " AS (SELECT DISTINCT * FROM (" +
           join(touched_parts, " UNION ALL ") + ") AS \"__pgt_k\") (" + new_rows + ") UNION ALL (" +
           old_rows + ")";
}

std::string DeltaGenerator::query_delta(const Query& q) const {
    if (!q.union_all) {
        if (q.block.grouped || q.block.distinct) {
            return grouped_block_delta(q.block, select_targets(q.block));
        }
        return block_delta(q.block, select_targets(q.block));
    }
    std::vector<std::string> parts;
    for (const auto& br : q.branches) {
        parts.push_back("(" + query_delta(*br) + ")");
    }
    return join(parts, " UNION ALL ");
}

}  // namespace detail

std::string delta_rows_sql(const Query& q, const ChangeWindow& window, RowIdentity identity) {
    const detail::DeltaGenerator gen(&window, identity);
    return gen.query_delta(q);
}

}  // namespace pgt::ivm
