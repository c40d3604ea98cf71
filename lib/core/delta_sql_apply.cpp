// Apply statements: the storage layouts (rows, groups), the full refresh that fills them, and
// the statement that applies one change window's delta to them.
//
//   rows     the query's delta consolidated per distinct row (per binary image: 'alice' and
//            'ALICE' are different rows even where they are equal); row ids that lose copies
//            have all their copies deleted and the survivors inserted back, a lost copy taking
//            one of its own image first; rows that gain copies are inserted. Rows are
//            addressed by __pgt_row_id only (never ctid).
//   groups   the new state of every group the delta touches, as a relation of storage rows
//            with a keep flag ("__pgt_new"), written by MERGE (local) or by DELETE + INSERT
//            ... ON CONFLICT (distributed). Algebraic aggregates (count, sum, avg over exact
//            types) come from stored value + delta; min/max likewise unless the group lost
//            rows, then rescanned; sum/avg over numeric keep per group their finite sum, the
//            counts of NaN, +Infinity and -Infinity, and (numeric without a declared scale)
//            the multiset of display scales, so that the result is the query's (special
//            values, display scale) without a rescan; anything else (HAVING, other
//            aggregates, expressions over aggregates, float sums) is recomputed for the
//            touched groups.
#include <stdexcept>

#include "core/delta_sql.h"
#include "core/delta_sql_terms.h"
#include "core/sql_ident.h"

namespace pgt::ivm {
namespace {

using detail::and_all;
using detail::DeltaGenerator;
using detail::group_key_exprs;
using detail::group_row_id;
using detail::group_value_columns;
using detail::hidden_name;
using detail::kWeightColumn;
using detail::op;
using detail::restrict_to_groups;
using detail::row_image_id;
using sql::join;
using sql::quote_ident;

const char* const kNumericSpecials = "'{NaN,Infinity,-Infinity}'::pg_catalog.numeric[]";

using NumericState = StorageLayout::NumericState;

/// The special numeric values whose per-group counts a numeric sum/avg keeps: the hidden
/// column's kind (hidden_name) and the value.
struct NumericSpecial {
    const char* kind;
    const char* value;
};
const NumericSpecial kSpecials[] = {{"nan", "'NaN'::pg_catalog.numeric"},
                                    {"pinf", "'Infinity'::pg_catalog.numeric"},
                                    {"ninf", "'-Infinity'::pg_catalog.numeric"}};

/// Display scales of 1000 and more share the top digit of a scale multiset; a group holding
/// such a value is rescanned (its sum's display scale is not kept).
constexpr int kScaleTop = 1000;
/// Decimal digits per scale in a scale multiset: a count below 10^19 fits any bigint count.
constexpr int kScaleDigits = 19;

/// The display scale of the numeric `x` as one digit of a scale multiset: 10^(19 * scale).
/// A group's sum of them counts its values of each scale in base 10^19, so the largest scale
/// present is (digits - 1) / 19 (largest_scale). NULL for NULL, NaN and the infinities
/// (pg_catalog.scale is NULL for them); the common scales are array constants.
std::string scale_digit(const std::string& x) {
    std::string powers = "'{1";
    for (int i = 1; i <= 20; ++i) {
        powers += ",1e" + std::to_string(i * kScaleDigits);
    }
    powers += "}'::pg_catalog.numeric[]";
    const std::string scale = "pg_catalog.scale(" + x + ")";
    const std::string top = std::to_string(kScaleTop);
    // Not LEAST: it skips NULLs, and NaN would count as a value of the top scale.
    return "COALESCE((" + powers + ")[" + scale + op("+") + "1], pg_catalog.textcat('1e', (" +
           std::to_string(kScaleDigits) + op("*") + "CASE WHEN " + scale + op("<") + top +
           " THEN " + scale + " WHEN " + scale + op(">=") + top + " THEN " + top +
           " END)::pg_catalog.text)::pg_catalog.numeric)";
}

/// The largest display scale in the scale multiset `multiset` (0 when empty).
std::string largest_scale(const std::string& multiset) {
    return "((pg_catalog.length((" + multiset + ")::pg_catalog.text)" + op("-") + "1)" + op("/") +
           std::to_string(kScaleDigits) + ")";
}

/// Whether the scale multiset holds a value of scale kScaleTop or more.
std::string holds_top_scale(const std::string& multiset) {
    return "(" + multiset + op(">=") + "1e" + std::to_string(kScaleTop * kScaleDigits) + ")";
}

/// Whether a sum/avg target keeps the numeric per-group counts in this layout.
bool keeps_numeric_counts(const Aggregate& a, const StorageLayout& layout) {
    return a.numeric_arg && layout.numeric == NumericState::counts;
}

/// The hidden state of one sum/avg target (index `i` among the targets), in the order of
/// layout.hidden: the non-null count, the exact (finite) sum where the visible column cannot
/// give it back, the counts of NaN and the infinities, the scale multiset. `full` is the
/// state's expression over the block's rows (full refresh).
struct AggregateState {
    HiddenColumn column;
    std::string full;
};
std::vector<AggregateState> sum_state(const Aggregate& a, size_t i, NumericState numeric) {
    std::vector<AggregateState> out;
    const bool counts = a.numeric_arg && numeric == NumericState::counts;
    const std::string x = "(" + a.arg + ")::pg_catalog.numeric";
    out.push_back({{hidden_name("nn", i), "bigint"}, "pg_catalog.count(" + a.arg + ")"});
    if (a.kind == Aggregate::Kind::avg || counts) {
        // A group whose values are all NULL (or special) has no sum; the column is NOT NULL.
        const std::string finite = counts ? "CASE WHEN " + x + op("<>") + "ALL (" +
                                                kNumericSpecials + ") THEN " + x + " END"
                                          : x;
        out.push_back(
            {{hidden_name("sum", i), "numeric"}, "COALESCE(pg_catalog.sum(" + finite + "), 0)"});
    }
    if (counts) {
        for (const auto& sp : kSpecials) {
            out.push_back(
                {{hidden_name(sp.kind, i), "bigint"},
                 "pg_catalog.count(CASE WHEN " + x + op("=") + sp.value + " THEN 1 END)"});
        }
        if (a.varying_scale) {
            out.push_back({{hidden_name("scales", i), "numeric"},
                           "COALESCE(pg_catalog.sum(" + scale_digit(x) + "), 0)"});
        }
    }
    return out;
}

std::string column_list(const std::vector<Column>& cols, const std::string& prefix = "") {
    std::vector<std::string> out;
    out.reserve(cols.size());
    for (const auto& c : cols) {
        out.push_back(prefix + quote_ident(c.name));
    }
    return join(out, ", ");
}

std::vector<std::string> positions(size_t n) {
    std::vector<std::string> out;
    for (size_t i = 0; i < n; ++i) {
        out.push_back(std::to_string(i + 1));
    }
    return out;
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

/// Hidden aggregate state of a groups layout, in the order of layout.hidden[1..]: the row
/// count, then (algebraic) per sum/avg target its sum_state.
std::vector<std::string> hidden_aggregate_exprs(const Block& b, const StorageLayout& layout) {
    std::vector<std::string> out{"pg_catalog.count(*)"};
    if (!layout.algebraic) {
        return out;
    }
    for (size_t i = 0; i < b.targets.size(); ++i) {
        const Target& t = b.targets[i];
        if (t.kind != Target::Kind::aggregate) {
            continue;
        }
        const Aggregate& a = b.aggs[t.ref];
        if (a.kind == Aggregate::Kind::sum || a.kind == Aggregate::Kind::avg) {
            for (const auto& st : sum_state(a, i, layout.numeric)) {
                out.push_back(st.full);
            }
        }
    }
    return out;
}

std::string rows_full(const StorageLayout& layout, const std::string& target,
                      const std::string& view) {
    const std::string cols = column_list(layout.visible, "q.");
    return "INSERT INTO " + target + " (" + column_list(layout.visible) +
           ", \"__pgt_row_id\") SELECT " + cols + ", pgtrickle.row_id(" + cols + ") FROM " + view +
           " AS q";
}

std::string groups_full(const DeltaGenerator& gen, const Block& b, const StorageLayout& layout,
                        const std::string& target) {
    std::vector<std::string> sel;
    for (const auto& t : b.targets) {
        sel.push_back(t.expr);
    }
    sel.push_back(group_row_id(group_key_exprs(b)));
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
        s += " GROUP BY " + join(group_key_exprs(b), ", ");
    }
    if (!b.having.empty()) {
        s += " HAVING " + b.having;
    }
    return s;
}

/// Survivors of the deleted copies (CTE "__pgt_del": visible columns, "__pgt_row_id") once
/// the lost copies (negative rows of "__pgt_dr") are taken away: visible columns,
/// "__pgt_row_id" and the number of copies to insert back ("__pgt_n").
///
/// equality: consolidated per row content under the columns' equality (distinct rows may
/// share a row id: NaN and the infinities hash alike).
///
/// image: a lost copy takes a stored copy of its own image (its exact spelling) first, so
/// deleting 'alice' never deletes 'ALICE'. A lost copy whose image is not stored (a group
/// below the top whose spelling PostgreSQL chose differently this time: 1.0 or 1.00) takes
/// a copy of another image of its equality class (same row id, equal columns), in image
/// order. Every row id and image id here is a bigint, so classes are formed by grouping:
/// columns without ordering or hash operators are never sorted or joined on.
std::string rows_survivors(const StorageLayout& layout) {
    const size_t n = layout.visible.size();
    const std::string cols = column_list(layout.visible);
    const std::string removed_cols = column_list(layout.visible, "k.");
    const std::string change_cols = column_list(layout.visible, "r.");
    const std::string w = kWeightColumn;
    if (layout.identity == RowIdentity::equality) {
        return "\"__pgt_rest\" AS (SELECT " + cols + ", \"__pgt_row_id\", pg_catalog.sum(" + w +
               ") AS \"__pgt_n\" FROM (SELECT " + removed_cols + ", k.\"__pgt_row_id\", 1 AS " + w +
               " FROM \"__pgt_del\" AS k UNION ALL SELECT " + change_cols +
               ", r.\"__pgt_rid\", r.\"__pgt_dw\" FROM \"__pgt_dr\" AS r WHERE r.\"__pgt_dw\"" +
               op("<") + "0) AS \"__pgt_u\" GROUP BY " + join(positions(n + 1), ", ") +
               " HAVING pg_catalog.sum(" + w + ")" + op(">") + "0)";
    }
    const std::string net_cols = column_list(layout.visible, "e.");
    // Per image: stored copies minus lost copies.
    std::string s =
        "\"__pgt_net\" AS (SELECT \"__pgt_row_id\", \"__pgt_img\", " + cols + ", pg_catalog.sum(" +
        w + ") AS \"__pgt_net\" FROM (SELECT k.\"__pgt_row_id\", " + row_image_id({removed_cols}) +
        " AS \"__pgt_img\", " + removed_cols + ", 1 AS " + w +
        " FROM \"__pgt_del\" AS k UNION ALL SELECT r.\"__pgt_rid\", r.\"__pgt_img\", " +
        change_cols + ", r.\"__pgt_dw\" FROM \"__pgt_dr\" AS r WHERE r.\"__pgt_dw\"" + op("<") +
        "0) AS \"__pgt_u\" GROUP BY " + join(positions(n + 2), ", ") + " HAVING pg_catalog.sum(" +
        w + ")" + op("<>") + "0), ";
    // Per equality class: the copies lost by images that are not stored, and every image's
    // surplus, in image order.
    const std::string kept = "GREATEST(e.\"__pgt_net\", 0)";
    const std::string lost = "GREATEST(0" + op("-") + "e.\"__pgt_net\", 0)";
    s += "\"__pgt_cls\" AS (SELECT e.\"__pgt_row_id\", pg_catalog.sum(" + lost +
         ") AS \"__pgt_lost\", pg_catalog.array_agg(e.\"__pgt_img\" ORDER BY e.\"__pgt_img\") AS "
         "\"__pgt_imgs\", pg_catalog.array_agg(" +
         kept + " ORDER BY e.\"__pgt_img\") AS \"__pgt_kept\" FROM \"__pgt_net\" AS e GROUP BY " +
         "e.\"__pgt_row_id\", " + net_cols + " HAVING pg_catalog.sum(" + kept + ")" + op(">") +
         "pg_catalog.sum(" + lost + ")), ";
    // The first "__pgt_lost" surplus copies of a class, in image order, go too.
    s += "\"__pgt_rest\" AS (SELECT " + net_cols +
         ", e.\"__pgt_row_id\", i.\"__pgt_n\" FROM \"__pgt_cls\" AS c CROSS JOIN LATERAL (SELECT "
         "j.\"__pgt_img\", GREATEST(0, LEAST(j.\"__pgt_k\", pg_catalog.sum(j.\"__pgt_k\") OVER "
         "(ORDER BY j.\"__pgt_img\")" +
         op("-") +
         "c.\"__pgt_lost\")) AS \"__pgt_n\" FROM ROWS FROM (pg_catalog.unnest(c.\"__pgt_imgs\"), "
         "pg_catalog.unnest(c.\"__pgt_kept\")) AS j(\"__pgt_img\", \"__pgt_k\")) AS i JOIN "
         "\"__pgt_net\" AS e ON e.\"__pgt_row_id\"" +
         op("=") + "c.\"__pgt_row_id\" AND e.\"__pgt_img\"" + op("=") + "i.\"__pgt_img\" WHERE " +
         "i.\"__pgt_n\"" + op(">") + "0)";
    return s;
}

/// Apply for the rows layout, for every apply target: consolidate the delta per distinct row
/// (per image, with RowIdentity::image); for row ids that lose copies, delete every stored
/// copy and insert back all but the lost ones (rows_survivors); insert n copies of rows whose
/// weight is positive. No ctid, no MERGE: a distributed table can run it as well. Rows
/// written = copies removed + copies added.
std::string rows_apply(const DeltaGenerator& gen, const Query& q, const StorageLayout& layout,
                       const std::string& target) {
    const bool image = layout.identity == RowIdentity::image;
    const size_t n = layout.visible.size();
    const std::string cols = column_list(layout.visible);
    const std::string delta_cols = column_list(layout.visible, "d.");
    const std::string change_cols = column_list(layout.visible, "r.");
    const std::string removed_cols = column_list(layout.visible, "k.");  // deleted copies
    const std::string target_cols = column_list(layout.visible, "t.");
    const std::string w = kWeightColumn;
    // The delta per distinct row (per image): its net weight.
    std::string s = image ? "WITH \"__pgt_d\" AS (SELECT \"__pgt_img\", " + cols +
                                ", pg_catalog.sum(" + w + ") AS \"__pgt_dw\" FROM (SELECT " +
                                row_image_id({column_list(layout.visible, "x.")}) +
                                " AS \"__pgt_img\", x.* FROM (" + gen.query_delta(q) +
                                ") AS x) AS \"__pgt_x\" GROUP BY " + join(positions(n + 1), ", ")
                          : "WITH \"__pgt_d\" AS (SELECT " + cols + ", pg_catalog.sum(" + w +
                                ") AS \"__pgt_dw\" FROM (" + gen.query_delta(q) +
                                ") AS \"__pgt_x\" GROUP BY " + join(positions(n), ", ");
    s += " HAVING pg_catalog.sum(" + w + ")" + op("<>") + "0), ";
    // Each distinct changed row with its row id and net weight.
    s += "\"__pgt_dr\" AS MATERIALIZED (SELECT " + delta_cols + ", d.\"__pgt_dw\", " +
         (image ? std::string("d.\"__pgt_img\", ") : std::string()) + "pgtrickle.row_id(" +
         delta_cols + ") AS \"__pgt_rid\" FROM \"__pgt_d\" AS d), ";
    // Row ids that lose copies: every stored copy is deleted, the survivors inserted back.
    s += "\"__pgt_shrink\" AS MATERIALIZED (SELECT DISTINCT r.\"__pgt_rid\" FROM \"__pgt_dr\" AS "
         "r WHERE r.\"__pgt_dw\"" +
         op("<") + "0), \"__pgt_del\" AS (DELETE FROM " + target +
         " AS t WHERE t.\"__pgt_row_id\"" + op("=") +
         "ANY (SELECT s.\"__pgt_rid\" FROM \"__pgt_shrink\" AS s) "
         "RETURNING " +
         target_cols + ", t.\"__pgt_row_id\"), " + rows_survivors(layout) + ", ";
    s += "\"__pgt_keep\" AS (INSERT INTO " + target + " (" + cols + ", \"__pgt_row_id\") SELECT " +
         removed_cols +
         ", k.\"__pgt_row_id\" FROM \"__pgt_rest\" AS k CROSS JOIN LATERAL "
         "pg_catalog.generate_series(1::bigint, k.\"__pgt_n\"::bigint) AS n RETURNING 1), "
         "\"__pgt_ins\" AS (INSERT INTO " +
         target + " (" + cols + ", \"__pgt_row_id\") SELECT " + change_cols +
         ", r.\"__pgt_rid\" FROM \"__pgt_dr\" AS r CROSS JOIN LATERAL "
         "pg_catalog.generate_series(1::bigint, r.\"__pgt_dw\"::bigint) AS n WHERE "
         "r.\"__pgt_dw\"" +
         op(">") + "0 RETURNING 1) SELECT (SELECT pg_catalog.count(*) FROM \"__pgt_del\")" +
         op("-") + "(SELECT pg_catalog.count(*) FROM \"__pgt_keep\")" + op("+") +
         "(SELECT pg_catalog.count(*) FROM \"__pgt_ins\")";
    return s;
}

/// Terms of a grouped block's delta projected to grouping values (and aggregate args).
std::string grouped_delta_rows(const DeltaGenerator& gen, const Block& b, bool with_args) {
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

/// NULL-safe match of grouping expressions against the grouping values of `source` (a
/// correlated rescan), index-friendly when no key is NULL.
std::string group_match(const Block& b, const std::string& source) {
    std::vector<std::string> equal, null_safe, not_null;
    for (size_t i = 0; i < b.group_by.size(); ++i) {
        const auto& k = b.group_by[i];
        const std::string value = source + "." + quote_ident(hidden_name("g", i));
        equal.push_back("(" + k.expr + ")" + k.eq_op + value);
        null_safe.push_back("((" + k.expr + ")" + k.eq_op + value + " OR ((" + k.expr +
                            ") IS NULL AND " + value + " IS NULL))");
        not_null.push_back(value + " IS NOT NULL");
    }
    return "(CASE WHEN " + and_all(not_null) + " THEN " + and_all(equal) + " ELSE " +
           and_all(null_safe) + " END)";
}

/// The storage columns of a groups layout, in order: visible, then hidden but the row id.
std::vector<std::string> groups_storage_columns(const StorageLayout& layout) {
    std::vector<std::string> cols;
    for (const auto& c : layout.visible) {
        cols.push_back(quote_ident(c.name));
    }
    for (size_t i = 1; i < layout.hidden.size(); ++i) {
        cols.push_back(quote_ident(layout.hidden[i].name));
    }
    return cols;
}

/// Writes the CTE "__pgt_new" (one row per touched group: "__pgt_rid", "__pgt_keep" and every
/// storage column but the row id), defined by `prelude` (a WITH list ending in it), to
/// `target`. Groups not kept are deleted, the others updated or inserted.
std::string write_groups(const std::string& prelude, const StorageLayout& layout,
                         const std::string& target, ApplyTarget apply_target) {
    const std::vector<std::string> cols = groups_storage_columns(layout);
    std::vector<std::string> source_cols, excluded_set, merge_set;
    const std::string dist =
        layout.distribution_column.empty() ? "" : quote_ident(layout.distribution_column);
    for (const auto& c : cols) {
        source_cols.push_back("s." + c);
        if (c != dist) {  // Citus refuses to modify a row's distribution value
            excluded_set.push_back(c + " = EXCLUDED." + c);
        }
        merge_set.push_back(c + " = s." + c);
    }
    if (apply_target == ApplyTarget::local) {
        return prelude + " MERGE INTO " + target + " AS t USING \"__pgt_new\" AS s ON " +
               "t.\"__pgt_row_id\"" + op("=") + "s.\"__pgt_rid\"" +
               " WHEN MATCHED AND NOT s.\"__pgt_keep\" THEN DELETE WHEN MATCHED THEN UPDATE SET " +
               join(merge_set, ", ") + " WHEN NOT MATCHED AND s.\"__pgt_keep\" THEN INSERT (" +
               join(cols, ", ") + ", \"__pgt_row_id\") VALUES (" + join(source_cols, ", ") +
               ", s.\"__pgt_rid\")";
    }
    return prelude + ", \"__pgt_del\" AS (DELETE FROM " + target +
           " AS t WHERE t.\"__pgt_row_id\"" + op("=") +
           "ANY (SELECT s.\"__pgt_rid\" FROM \"__pgt_new\" AS s "
           "WHERE NOT s.\"__pgt_keep\") RETURNING 1), \"__pgt_up\" AS (INSERT INTO " +
           target + " AS t (" + join(cols, ", ") + ", \"__pgt_row_id\") SELECT " +
           join(source_cols, ", ") +
           ", s.\"__pgt_rid\" FROM \"__pgt_new\" AS s WHERE s.\"__pgt_keep\" ON CONFLICT (" +
           (dist.empty() ? "" : dist + ", ") + "\"__pgt_row_id\") DO UPDATE SET " +
           join(excluded_set, ", ") +
           " RETURNING 1) SELECT (SELECT pg_catalog.count(*) FROM \"__pgt_del\")" + op("+") +
           "(SELECT pg_catalog.count(*) FROM \"__pgt_up\")";
}

/// New state of the touched groups of an algebraic layout: the delta consolidated per
/// (group, argument values), folded per group, combined with the stored row.
std::string groups_algebraic_new(const DeltaGenerator& gen, const Block& b,
                                 const StorageLayout& layout, const std::string& target) {
    const std::vector<std::string> group_cols = group_value_columns(b, "");
    std::vector<std::string> consolidated = group_cols;
    for (size_t j = 0; j < b.aggs.size(); ++j) {
        if (b.aggs[j].kind != Aggregate::Kind::count_star) {
            consolidated.push_back(quote_ident(hidden_name("a", j)));
        }
    }
    // Rows of equal arguments but different images (1.0 and 1.00) stay apart: a sum shows the
    // largest scale of its values, and a change of spelling only is a change (min/max rescan).
    std::vector<std::string> consolidate_by = positions(consolidated.size());
    if (layout.identity == RowIdentity::image && !consolidated.empty()) {
        consolidate_by.insert(consolidate_by.begin(), row_image_id(consolidated));
    }
    const std::string w = kWeightColumn;
    std::string s =
        "WITH \"__pgt_c\" AS (SELECT " +
        (consolidated.empty() ? std::string("1 AS \"__pgt_one\"") : join(consolidated, ", ")) +
        ", pg_catalog.sum(" + w + ") AS " + w + " FROM (" + grouped_delta_rows(gen, b, true) +
        ") AS \"__pgt_x\"" +
        (consolidated.empty() ? "" : " GROUP BY " + join(consolidate_by, ", ")) +
        " HAVING pg_catalog.sum(" + w + ")" + op("<>") + "0), ";

    // Per group: net row count, whether rows were lost, and per aggregate its delta.
    std::vector<std::string> fold = group_cols;
    fold.push_back("pg_catalog.sum(" + w + ") AS \"__pgt_dcount\"");
    fold.push_back("pg_catalog.bool_or(" + w + op("<") + "0) AS \"__pgt_dneg\"");
    for (size_t j = 0; j < b.aggs.size(); ++j) {
        const Aggregate& a = b.aggs[j];
        const std::string arg = quote_ident(hidden_name("a", j));
        // num_nonnulls: a composite whose fields are all NULL is a value (count counts it).
        const std::string non_null_weight = "pg_catalog.sum(CASE WHEN pg_catalog.num_nonnulls(" +
                                            arg + ")" + op("=") + "1 THEN " + w + " ELSE 0 END)";
        switch (a.kind) {
            case Aggregate::Kind::count_star:
                break;
            case Aggregate::Kind::count:
                fold.push_back(non_null_weight + " AS " + quote_ident(hidden_name("dnn", j)));
                break;
            case Aggregate::Kind::sum:
            case Aggregate::Kind::avg:
                fold.push_back(non_null_weight + " AS " + quote_ident(hidden_name("dnn", j)));
                if (keeps_numeric_counts(a, layout)) {
                    const std::string x = "(" + arg + ")::pg_catalog.numeric";
                    fold.push_back("pg_catalog.sum(CASE WHEN " + x + op("<>") + "ALL (" +
                                   kNumericSpecials + ") THEN " + x + op("*") + w + " END) AS " +
                                   quote_ident(hidden_name("dsum", j)));
                    for (const auto& sp : kSpecials) {
                        fold.push_back(
                            "pg_catalog.sum(CASE WHEN " + x + op("=") + sp.value + " THEN " + w +
                            " ELSE 0 END) AS " +
                            quote_ident(hidden_name((std::string("d") + sp.kind).c_str(), j)));
                    }
                    if (a.varying_scale) {
                        fold.push_back("pg_catalog.sum(" + scale_digit(x) + op("*") + w + ") AS " +
                                       quote_ident(hidden_name("dscales", j)));
                    }
                    break;
                }
                fold.push_back("pg_catalog.sum((" + arg + ")::pg_catalog.numeric" + op("*") + w +
                               ") AS " + quote_ident(hidden_name("dsum", j)));
                if (a.numeric_arg) {
                    fold.push_back("COALESCE(pg_catalog.bool_or((" + arg + ")::pg_catalog.numeric" +
                                   op("=") + "ANY (" + kNumericSpecials + ")), false) AS " +
                                   quote_ident(hidden_name("dspecial", j)));
                }
                break;
            case Aggregate::Kind::min:
            case Aggregate::Kind::max:
                fold.push_back(std::string(a.kind == Aggregate::Kind::min ? "pg_catalog.min("
                                                                          : "pg_catalog.max(") +
                               arg + ") FILTER (WHERE " + w + op(">") + "0) AS " +
                               quote_ident(hidden_name("dext", j)));
                break;
            case Aggregate::Kind::other:
                throw std::logic_error("non-algebraic aggregate on algebraic path");
        }
    }
    // Without GROUP BY an empty input still folds to one row (of NULLs): a delta that was
    // filtered out or cancelled must leave the stored row alone.
    s += "\"__pgt_d\" AS (SELECT " + join(fold, ", ") + " FROM \"__pgt_c\"" +
         (group_cols.empty() ? " HAVING pg_catalog.count(*)" + op(">") + "0"
                             : " GROUP BY " + join(group_cols, ", ")) +
         "), ";

    // The delta's alias is seen inside the rescans (correlated subqueries over the query's
    // own FROM items, whose aliases, "s" say, must not hide it).
    const std::string stored = "t", delta = "\"__pgt_sd\"";
    auto stored_col = [&](const std::string& name) { return stored + "." + quote_ident(name); };
    auto delta_col = [&](const std::string& name) { return delta + "." + quote_ident(name); };
    const std::string rescan_from = " FROM " + join(gen.core_from_new(b.core), ", ") + " WHERE " +
                                    and_all(gen.core_where_new(b.core)) + " AND " +
                                    group_match(b, delta);
    std::vector<std::string> values;  // "<expr> AS <storage column>"
    const std::string new_count = "(COALESCE(" + stored_col("__pgt_count") + ", 0)" + op("+") +
                                  delta_col("__pgt_dcount") + ")";
    std::vector<std::string> hidden_values;  // "<expr> AS <hidden column>" (sum_state)
    for (size_t i = 0; i < b.targets.size(); ++i) {
        const Target& t = b.targets[i];
        const std::string col = quote_ident(t.column.name);
        const std::string cast = "::" + t.column.type;
        if (t.kind == Target::Kind::group_key) {
            // A stored group keeps its key as stored (equal, maybe not identical: 1.0, 1.00).
            values.push_back("CASE WHEN " + stored + ".\"__pgt_row_id\" IS NULL THEN " +
                             delta_col(hidden_name("g", t.ref)) + " ELSE " + stored + "." + col +
                             " END AS " + col);
            continue;
        }
        const Aggregate& a = b.aggs[t.ref];
        const size_t j = t.ref;
        const std::string delta_nn = delta_col(hidden_name("dnn", j));
        switch (a.kind) {
            case Aggregate::Kind::count_star:
                values.push_back("(COALESCE(" + stored + "." + col + ", 0)" + op("+") +
                                 delta_col("__pgt_dcount") + ")" + cast + " AS " + col);
                break;
            case Aggregate::Kind::count:
                values.push_back("(COALESCE(" + stored + "." + col + ", 0)" + op("+") + delta_nn +
                                 ")" + cast + " AS " + col);
                break;
            case Aggregate::Kind::sum:
            case Aggregate::Kind::avg: {
                const std::string nn_name = hidden_name("nn", i);
                const std::string new_nn =
                    "(COALESCE(" + stored_col(nn_name) + ", 0)" + op("+") + delta_nn + ")";
                const std::string delta_sum =
                    "COALESCE(" + delta_col(hidden_name("dsum", j)) + ", 0)";
                hidden_values.push_back(new_nn + " AS " + quote_ident(nn_name));
                const std::string sum_name = hidden_name("sum", i);
                if (keeps_numeric_counts(a, layout)) {
                    // Stored state + delta, for the finite sum, the special values' counts
                    // and the scale multiset; the result is composed from them as numeric
                    // sum and avg compose theirs (NaN wins, +Infinity and -Infinity give NaN,
                    // the finite sum shows the largest display scale of its values).
                    auto added = [&](const std::string& kind, const std::string& delta_value) {
                        std::string v = "(COALESCE(" + stored_col(hidden_name(kind.c_str(), i)) +
                                        ", 0)" + op("+") + delta_value + ")";
                        hidden_values.push_back(v + " AS " +
                                                quote_ident(hidden_name(kind.c_str(), i)));
                        return v;
                    };
                    const std::string new_sum = added("sum", delta_sum);
                    std::string special_counts[3];
                    for (size_t k = 0; k < 3; ++k) {
                        const std::string kind = kSpecials[k].kind;
                        special_counts[k] =
                            added(kind, delta_col(hidden_name(("d" + kind).c_str(), j)));
                    }
                    std::string shown = new_sum, when_top;
                    if (a.varying_scale) {
                        const std::string scales = added(
                            "scales", "COALESCE(" + delta_col(hidden_name("dscales", j)) + ", 0)");
                        shown = "pg_catalog.round(" + new_sum + ", " + largest_scale(scales) + ")";
                        when_top = " WHEN " + holds_top_scale(scales) + " THEN (SELECT " + a.sql +
                                   rescan_from + ")";
                    }
                    if (a.kind == Aggregate::Kind::avg) {
                        shown = "(" + shown + op("/") + new_nn + "::pg_catalog.numeric)";
                    }
                    const std::string nan = special_counts[0], pinf = special_counts[1],
                                      ninf = special_counts[2];
                    values.push_back("(CASE WHEN " + new_nn + op("=") + "0 THEN NULL WHEN " + nan +
                                     op(">") + "0 OR (" + pinf + op(">") + "0 AND " + ninf +
                                     op(">") + "0) THEN " + kSpecials[0].value + " WHEN " + pinf +
                                     op(">") + "0 THEN " + kSpecials[1].value + " WHEN " + ninf +
                                     op(">") + "0 THEN " + kSpecials[2].value + when_top +
                                     " ELSE " + shown + " END)" + cast + " AS " + col);
                    break;
                }
                // The stored exact sum: the visible column for sum, the hidden one for avg.
                const std::string stored_sum = a.kind == Aggregate::Kind::sum
                                                   ? stored + "." + col + "::pg_catalog.numeric"
                                                   : stored_col(sum_name);
                // NaN and infinities do not cancel (Infinity - Infinity is NaN), and a sum of
                // numerics shows the largest scale of its values, which a deletion can lower:
                // such groups are rescanned.
                std::vector<std::string> rescan_when;
                if (a.numeric_arg) {
                    rescan_when.push_back(delta_col(hidden_name("dspecial", j)));
                    rescan_when.push_back("COALESCE(" + stored_sum + op("=") + "ANY (" +
                                          kNumericSpecials + "), false)");
                }
                if (a.varying_scale) {
                    rescan_when.push_back(delta_col("__pgt_dneg"));
                }
                // Without a rescan condition no rescan is written: the source is then not
                // read at all (and never-run subplans do not inflate the plan's cost).
                const std::string rescan =
                    rescan_when.empty() ? "" : "(" + join(rescan_when, " OR ") + ")";
                const std::string added =
                    "(COALESCE(" + stored_sum + ", 0)" + op("+") + delta_sum + ")";
                const std::string new_sum = rescan.empty()
                                                ? added
                                                : "CASE WHEN " + rescan +
                                                      " THEN (SELECT COALESCE(pg_catalog.sum((" +
                                                      a.arg + ")::pg_catalog.numeric), 0)" +
                                                      rescan_from + ") ELSE " + added + " END";
                const std::string when_rescan =
                    rescan.empty()
                        ? ""
                        : " WHEN " + rescan + " THEN (SELECT " + a.sql + rescan_from + ")";
                if (a.kind == Aggregate::Kind::sum) {
                    values.push_back("CASE WHEN " + new_nn + op("=") + "0 THEN NULL" + when_rescan +
                                     " ELSE (" + new_sum + ")" + cast + " END AS " + col);
                } else {
                    hidden_values.push_back(new_sum + " AS " + quote_ident(sum_name));
                    values.push_back("CASE WHEN " + new_nn + op("=") + "0 THEN NULL" + when_rescan +
                                     " ELSE ((" + new_sum + ")" + op("/") + new_nn +
                                     "::pg_catalog.numeric)" + cast + " END AS " + col);
                }
                break;
            }
            case Aggregate::Kind::min:
            case Aggregate::Kind::max: {
                const char* fn = a.kind == Aggregate::Kind::min ? "LEAST" : "GREATEST";
                values.push_back("CASE WHEN NOT " + delta_col("__pgt_dneg") + " THEN " + fn + "(" +
                                 stored + "." + col + ", " + delta_col(hidden_name("dext", j)) +
                                 ") ELSE (SELECT " + a.sql + rescan_from + ") END AS " + col);
                break;
            }
            case Aggregate::Kind::other:
                throw std::logic_error("non-algebraic aggregate on algebraic path");
        }
    }
    values.push_back(new_count + " AS \"__pgt_count\"");
    values.insert(values.end(), hidden_values.begin(), hidden_values.end());
    const std::string keep =
        layout.global_aggregate ? std::string("true") : new_count + op(">") + "0";
    s += "\"__pgt_s\" AS (SELECT d.*, " + group_row_id(group_value_columns(b, "d.")) +
         " AS \"__pgt_rid\" FROM \"__pgt_d\" AS d), \"__pgt_new\" AS MATERIALIZED (SELECT " +
         delta + ".\"__pgt_rid\", " + keep + " AS \"__pgt_keep\", " + join(values, ", ") +
         " FROM \"__pgt_s\" AS " + delta + " LEFT JOIN " + target + " AS " + stored + " ON " +
         stored + ".\"__pgt_row_id\"" + op("=") + delta + ".\"__pgt_rid\")";
    return s;
}

/// New state of the touched groups of a recomputed layout: the groups the delta touches,
/// aggregated again from the current state (absent: the group is gone).
std::string groups_recompute_new(const DeltaGenerator& gen, const Block& b,
                                 const StorageLayout& layout) {
    const std::vector<std::string> group_cols = group_value_columns(b, "");
    const std::vector<std::string> key_exprs = group_key_exprs(b);
    std::string s =
        "WITH \"__pgt_touched\" AS (SELECT DISTINCT " +
        (group_cols.empty() ? std::string("1 AS \"__pgt_one\"") : join(group_cols, ", ")) +
        " FROM (" + grouped_delta_rows(gen, b, false) + ") AS \"__pgt_x\"), ";
    std::vector<std::string> sel;
    for (const auto& t : b.targets) {
        sel.push_back(t.expr + " AS " + quote_ident(t.column.name));
    }
    const auto hidden_exprs = hidden_aggregate_exprs(b, layout);
    for (size_t i = 1; i < layout.hidden.size(); ++i) {
        sel.push_back(hidden_exprs[i - 1] + " AS " + quote_ident(layout.hidden[i].name));
    }
    sel.push_back(group_row_id(key_exprs) + " AS \"__pgt_rid\"");
    const std::string base = "SELECT " + join(sel, ", ") + " FROM " +
                             join(gen.core_from_new(b.core), ", ") + " WHERE " +
                             and_all(gen.core_where_new(b.core));
    const std::string tail =
        (key_exprs.empty() ? std::string() : " GROUP BY " + join(key_exprs, ", ")) +
        (b.having.empty() ? std::string() : " HAVING " + b.having);
    s += "\"__pgt_fresh\" AS (" + restrict_to_groups(base, b.group_by, "\"__pgt_touched\"", tail) +
         "), ";
    std::vector<std::string> fresh_cols;
    for (const auto& c : groups_storage_columns(layout)) {
        fresh_cols.push_back("n." + c);
    }
    s += "\"__pgt_new\" AS MATERIALIZED (SELECT a.\"__pgt_touched_rid\" AS \"__pgt_rid\", "
         "n.\"__pgt_rid\" "
         "IS NOT NULL AS \"__pgt_keep\", " +
         join(fresh_cols, ", ") + " FROM (SELECT " + group_row_id(group_cols) +
         " AS \"__pgt_touched_rid\" FROM \"__pgt_touched\") AS a LEFT JOIN \"__pgt_fresh\" AS n ON "
         "n.\"__pgt_rid\"" +
         op("=") + "a.\"__pgt_touched_rid\")";
    return s;
}

}  // namespace

StorageLayout full_layout(const std::vector<Column>& columns) {
    StorageLayout l;
    l.kind = StorageKind::rows;
    l.visible = columns;
    l.hidden.push_back({"__pgt_row_id", "bigint"});
    return l;
}

StorageLayout differential_layout(const Query& q, StorageLayout::NumericState numeric) {
    if (q.union_all || !q.block.grouped) {
        return full_layout(q.columns);
    }
    const Block& b = q.block;
    StorageLayout l;
    l.numeric = numeric;
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
                for (const auto& st : sum_state(a, i, numeric)) {
                    l.hidden.push_back(st.column);
                }
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
    const ChangeWindow none;
    const DeltaGenerator gen(&none);
    return groups_full(gen, q->block, layout, target);
}

std::string delta_apply_sql(const Query& q, const StorageLayout& layout, const std::string& target,
                            const ChangeWindow& window, ApplyTarget apply_target) {
    const DeltaGenerator gen(&window, layout.identity);
    if (layout.kind == StorageKind::rows) {
        return rows_apply(gen, q, layout, target);
    }
    const std::string prelude = layout.algebraic
                                    ? groups_algebraic_new(gen, q.block, layout, target)
                                    : groups_recompute_new(gen, q.block, layout);
    return write_groups(prelude, layout, target, apply_target);
}

}  // namespace pgt::ivm
