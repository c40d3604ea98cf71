// The delta generator, without a server: term pruning, storage layouts, quoting.
#include <gtest/gtest.h>

#include "core/delta_sql.h"
#include "core/sql_ident.h"

namespace pgt::ivm {
namespace {

FromItem table(const std::string& alias, const std::string& name) {
    FromItem it;
    it.alias = alias;
    it.table.schema = "public";
    it.table.name = name;
    it.table.stable_name = "sn_" + name;
    it.table.buffer = "\"pgtrickle_changes\".\"changes_sn_" + name + "\"";
    it.table.columns = {{"k", "pg_catalog.int4"}, {"v", "pg_catalog.int4"}};
    it.table.buffer_columns = {"c1", "c2"};
    it.columns = it.table.columns;
    return it;
}

Query join_query() {
    Query q;
    Block& b = q.block;
    b.core.items = {table("a", "a"), table("b", "b")};
    JoinTree l, r;
    l.item = 0;
    r.item = 1;
    JoinTree j;
    j.kind = JoinTree::Kind::inner;
    j.left = std::make_shared<JoinTree>(l);
    j.right = std::make_shared<JoinTree>(r);
    j.on = "\"a\".\"k\" OPERATOR(pg_catalog.=) \"b\".\"k\"";
    b.core.from = {j};
    Target t;
    t.expr = "\"a\".\"v\"";
    t.column = {"v", "pg_catalog.int4"};
    b.targets = {t};
    q.columns = {t.column};
    return q;
}

size_t count(const std::string& s, const std::string& needle) {
    size_t n = 0;
    for (size_t p = s.find(needle); p != std::string::npos; p = s.find(needle, p + 1)) {
        ++n;
    }
    return n;
}

TEST(DeltaSql, join_terms_are_pruned_to_changed_sources) {
    const Query q = join_query();
    ChangeWindow one{{"10:20:", {}, {}}, {"sn_a"}, std::nullopt};
    const std::string d1 = delta_rows_sql(q, one);
    EXPECT_EQ(count(d1, "changes_sn_a"), 1u);
    EXPECT_EQ(count(d1, "changes_sn_b"), 0u);
    ChangeWindow both{{"10:20:", {}, {}}, {"sn_a", "sn_b"}, std::nullopt};
    const std::string d2 = delta_rows_sql(q, both);
    // ΔA⋈B + A⋈ΔB - ΔA⋈ΔB: three terms, each delta read twice.
    EXPECT_EQ(count(d2, " UNION ALL "), 2u);
    EXPECT_EQ(count(d2, "changes_sn_a"), 2u);
    EXPECT_EQ(count(d2, "changes_sn_b"), 2u);
    EXPECT_NE(d2.find("pg_visible_in_snapshot"), std::string::npos);
    EXPECT_NE(d2.find("'10:20:'::pg_catalog.pg_snapshot"), std::string::npos);
    // The refresh's own point bounds each buffer read from above.
    EXPECT_EQ(count(d2, "'20:30:'::pg_catalog.pg_snapshot"), 0u);
    both.upto = pgt::frontier::SourceFrontier{"20:30:", {}, {}};
    EXPECT_EQ(count(delta_rows_sql(q, both), "'20:30:'::pg_catalog.pg_snapshot"), 4u);
}

TEST(DeltaSql, a_source_with_a_state_copy_is_read_from_the_copy) {
    Query q = join_query();
    q.block.core.items[1].table.state = "\"pgtrickle_changes\".\"state_sn_b\"";
    const ChangeWindow a_changed{{"10:20:", {}, {}}, {"sn_a"}, std::nullopt};
    const std::string d = delta_rows_sql(q, a_changed);
    // ΔA ⋈ B reads B's rows from its copy, in buffer columns named as the table's.
    EXPECT_NE(d.find("(SELECT s.\"c1\" AS \"k\", s.\"c2\" AS \"v\" FROM "
                     "\"pgtrickle_changes\".\"state_sn_b\" AS s WHERE s.\"__pgt_image\" IS "
                     "NOT NULL) AS \"b\""),
              std::string::npos)
        << d;
    EXPECT_EQ(count(d, "\"public\".\"b\""), 0u) << d;
    // A has no copy: read in place.
    const ChangeWindow b_changed{{"10:20:", {}, {}}, {"sn_b"}, std::nullopt};
    const std::string d2 = delta_rows_sql(q, b_changed);
    EXPECT_EQ(count(d2, "ONLY \"public\".\"a\" AS \"a\""), 1u) << d2;
    EXPECT_EQ(count(d2, "state_sn_b"), 0u) << d2;
}

TEST(DeltaSql, rows_layout_hides_only_the_row_id) {
    const auto l = differential_layout(join_query());
    EXPECT_EQ(l.kind, StorageKind::rows);
    ASSERT_EQ(l.hidden.size(), 1u);
    EXPECT_EQ(l.hidden[0].name, "__pgt_row_id");
}

TEST(DeltaSql, algebraic_groups_keep_counts_for_sum_and_avg) {
    Query q = join_query();
    Block& b = q.block;
    b.grouped = true;
    b.group_by = {{"\"a\".\"k\"", "pg_catalog.int4", " OPERATOR(pg_catalog.=) "}};
    Aggregate sum;
    sum.kind = Aggregate::Kind::sum;
    sum.algebraic = true;
    sum.arg = "\"a\".\"v\"";
    sum.sql = "pg_catalog.sum(\"a\".\"v\")";
    Aggregate avg = sum;
    avg.kind = Aggregate::Kind::avg;
    b.aggs = {sum, avg};
    Target g, ts, ta;
    g.kind = Target::Kind::group_key;
    g.ref = 0;
    g.expr = "\"a\".\"k\"";
    g.column = {"k", "pg_catalog.int4"};
    ts.kind = Target::Kind::aggregate;
    ts.ref = 0;
    ts.column = {"s", "pg_catalog.int8"};
    ta.kind = Target::Kind::aggregate;
    ta.ref = 1;
    ta.column = {"a", "pg_catalog.numeric"};
    b.targets = {g, ts, ta};
    q.columns = {g.column, ts.column, ta.column};
    const auto l = differential_layout(q);
    EXPECT_EQ(l.kind, StorageKind::groups);
    EXPECT_TRUE(l.algebraic);
    std::vector<std::string> names;
    for (const auto& h : l.hidden) {
        names.push_back(h.name);
    }
    EXPECT_EQ(names, (std::vector<std::string>{"__pgt_row_id", "__pgt_count", "__pgt_nn_2",
                                               "__pgt_nn_3", "__pgt_sum_3"}));
    const std::string sql =
        delta_apply_sql(q, l, "\"public\".\"st\"", {{"1:2:", {}, {}}, {"sn_a"}, std::nullopt});
    EXPECT_EQ(sql.rfind("WITH", 0), 0u);
    EXPECT_NE(sql.find("MERGE INTO \"public\".\"st\""), std::string::npos);
    b.having = "pg_catalog.count(*) OPERATOR(pg_catalog.>) 1";
    EXPECT_FALSE(differential_layout(q).algebraic);  // HAVING: touched groups are recomputed
}

Query grouped_query(bool recomputed, bool global) {
    Query q = join_query();
    Block& b = q.block;
    b.grouped = true;
    if (!global) {
        b.group_by = {{"\"a\".\"k\"", "pg_catalog.int4", " OPERATOR(pg_catalog.=) "}};
    }
    Aggregate sum;
    sum.kind = recomputed ? Aggregate::Kind::other : Aggregate::Kind::sum;
    sum.algebraic = !recomputed;
    sum.arg = "\"a\".\"v\"";
    sum.sql = "pg_catalog.sum(\"a\".\"v\")";
    Aggregate mx = sum;
    mx.kind = Aggregate::Kind::max;
    mx.algebraic = true;
    mx.sql = "pg_catalog.max(\"a\".\"v\")";
    b.aggs = {sum, mx};
    b.targets.clear();
    q.columns.clear();
    if (!global) {
        Target g;
        g.kind = Target::Kind::group_key;
        g.ref = 0;
        g.expr = "\"a\".\"k\"";
        g.column = {"k", "pg_catalog.int4"};
        b.targets.push_back(g);
    }
    for (int i = 0; i < 2; ++i) {
        Target t;
        t.kind = Target::Kind::aggregate;
        t.ref = i;
        t.expr = b.aggs[i].sql;
        t.column = {i == 0 ? "s" : "m", "pg_catalog.int8"};
        b.targets.push_back(t);
    }
    for (const auto& t : b.targets) {
        q.columns.push_back(t.column);
    }
    return q;
}

TEST(DeltaSql, no_layout_addresses_rows_by_ctid) {
    const ChangeWindow w{{"1:2:", {}, {}}, {"sn_a", "sn_b"}, std::nullopt};
    const Query rows = join_query();
    for (ApplyTarget target : {ApplyTarget::local, ApplyTarget::distributed}) {
        const std::string r = delta_apply_sql(rows, differential_layout(rows), "\"st\"", w, target);
        EXPECT_EQ(r.find("ctid"), std::string::npos);
        EXPECT_EQ(r.find("MERGE"), std::string::npos);
        for (bool recomputed : {false, true}) {
            for (bool global : {false, true}) {
                const Query q = grouped_query(recomputed, global);
                const std::string g =
                    delta_apply_sql(q, differential_layout(q), "\"st\"", w, target);
                EXPECT_EQ(g.find("ctid"), std::string::npos);
            }
        }
    }
}

TEST(DeltaSql, distributed_groups_are_written_without_merge) {
    const ChangeWindow w{{"1:2:", {}, {}}, {"sn_a"}, std::nullopt};
    for (bool recomputed : {false, true}) {
        for (bool global : {false, true}) {
            const Query q = grouped_query(recomputed, global);
            const auto l = differential_layout(q);
            EXPECT_EQ(l.algebraic, !recomputed);
            const std::string local = delta_apply_sql(q, l, "\"st\"", w);
            EXPECT_NE(local.find("MERGE INTO \"st\""), std::string::npos);
            const std::string dist = delta_apply_sql(q, l, "\"st\"", w, ApplyTarget::distributed);
            EXPECT_EQ(dist.find("MERGE"), std::string::npos) << dist;
            EXPECT_NE(dist.find("DELETE FROM \"st\" AS t WHERE t.\"__pgt_row_id\" "
                                "OPERATOR(pg_catalog.=) ANY (SELECT"),
                      std::string::npos);
            EXPECT_NE(dist.find("ON CONFLICT (\"__pgt_row_id\") DO UPDATE SET"), std::string::npos);
            // IN looks "=" up on the search_path (the apply runs with the owner's).
            EXPECT_EQ(dist.find(" IN ("), std::string::npos) << dist;
            EXPECT_EQ(local.find(" IN ("), std::string::npos) << local;
            // Every storage column but the row id is set from the new group row.
            for (const auto& c : l.visible) {
                EXPECT_NE(
                    dist.find(sql::quote_ident(c.name) + " = EXCLUDED." + sql::quote_ident(c.name)),
                    std::string::npos);
            }
        }
    }
}

TEST(DeltaSql, storage_distributed_by_a_group_key_conflicts_on_it_and_never_sets_it) {
    const ChangeWindow w{{"1:2:", {}, {}}, {"sn_a"}, std::nullopt};
    const Query q = grouped_query(false, false);
    auto l = differential_layout(q);
    l.distribution_column = "k";
    const std::string dist = delta_apply_sql(q, l, "\"st\"", w, ApplyTarget::distributed);
    EXPECT_NE(dist.find("ON CONFLICT (\"k\", \"__pgt_row_id\") DO UPDATE SET"), std::string::npos)
        << dist;
    EXPECT_EQ(dist.find("\"k\" = EXCLUDED.\"k\""), std::string::npos) << dist;
    EXPECT_NE(dist.find("\"__pgt_count\" = EXCLUDED.\"__pgt_count\""), std::string::npos);
}

TEST(DeltaSql, global_aggregate_ignores_an_empty_fold) {
    const Query q = grouped_query(false, true);
    const std::string sql = delta_apply_sql(q, differential_layout(q), "\"st\"",
                                            {{"1:2:", {}, {}}, {"sn_a"}, std::nullopt});
    // Without GROUP BY, an empty delta folds to one row of NULLs: it must be dropped.
    EXPECT_NE(sql.find("FROM \"__pgt_c\" HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>) 0"),
              std::string::npos);
}

TEST(DeltaSql, numeric_sums_keep_counts_and_read_no_source) {
    const ChangeWindow w{{"1:2:", {}, {}}, {"sn_a"}, std::nullopt};
    for (bool varying : {false, true}) {
        Query q = grouped_query(false, false);
        q.block.aggs.resize(1);  // sum only: max would rescan groups that lose rows
        q.block.targets.resize(2);
        q.columns.resize(2);
        q.block.aggs[0].numeric_arg = true;
        q.block.aggs[0].varying_scale = varying;
        const StorageLayout l = differential_layout(q);
        std::vector<std::string> hidden;
        for (const auto& h : l.hidden) {
            hidden.push_back(h.name);
        }
        std::vector<std::string> expected{"__pgt_row_id", "__pgt_count", "__pgt_nn_2",
                                          "__pgt_sum_2",  "__pgt_nan_2", "__pgt_pinf_2",
                                          "__pgt_ninf_2"};
        if (varying) {
            expected.push_back("__pgt_scales_2");
        }
        EXPECT_EQ(hidden, expected);
        const std::string sql = delta_apply_sql(q, l, "\"st\"", w);
        EXPECT_EQ(sql.find("\"__pgt_dspecial_1\""), std::string::npos);
        // The source is read only where a value of display scale 1000 or more is held.
        const std::string rescan = "(SELECT pg_catalog.sum(\"a\".\"v\") FROM";
        const size_t reads = count(sql, rescan);
        EXPECT_EQ(reads, varying ? 1u : 0u) << sql;
        if (varying) {
            EXPECT_NE(sql.find("OPERATOR(pg_catalog.>=) 1e19000) THEN " + rescan),
                      std::string::npos)
                << sql;
        }
        // Storage created before the counts: groups with special values are rescanned.
        const std::string old = delta_apply_sql(
            q, differential_layout(q, StorageLayout::NumericState::rescan), "\"st\"", w);
        EXPECT_NE(old.find("\"__pgt_dspecial_1\""), std::string::npos);
        EXPECT_GT(count(old, rescan), 0u);
    }
}

// Every call of `fn(` in `sql` is schema-qualified.
void expect_qualified(const std::string& sql, const std::string& fn, const std::string& schema) {
    EXPECT_EQ(count(sql, fn + "("), count(sql, schema + "." + fn + "(")) << fn << " in " << sql;
}

TEST(DeltaSql, rows_layout_consolidates_the_delta_by_image_and_keeps_equality_row_ids) {
    const Query q = join_query();
    const ChangeWindow w{{"1:2:", {}, {}}, {"sn_a"}, std::nullopt};
    auto l = differential_layout(q);
    EXPECT_EQ(l.identity, RowIdentity::image);
    const std::string sql = delta_apply_sql(q, l, "\"st\"", w);
    // The delta per image: 'alice' and 'ALICE' never cancel or merge.
    EXPECT_NE(sql.find("SELECT pgtrickle.row_image_id(x.\"v\") AS \"__pgt_img\", x.* FROM ("),
              std::string::npos);
    EXPECT_NE(sql.find(") AS x) AS \"__pgt_x\" GROUP BY 1, 2 HAVING"), std::string::npos);
    // Stored rows keep the equality row id; survivors are counted per image, then per class.
    EXPECT_NE(sql.find("pgtrickle.row_id(d.\"v\") AS \"__pgt_rid\""), std::string::npos);
    EXPECT_NE(sql.find("pgtrickle.row_image_id(k.\"v\") AS \"__pgt_img\""), std::string::npos);
    EXPECT_NE(sql.find("\"__pgt_cls\" AS (SELECT e.\"__pgt_row_id\""), std::string::npos);
    EXPECT_NE(sql.find("GROUP BY e.\"__pgt_row_id\", e.\"v\""), std::string::npos);
    for (const char* fn : {"sum", "array_agg", "unnest", "generate_series", "count"}) {
        expect_qualified(sql, fn, "pg_catalog");
    }
    expect_qualified(sql, "row_image_id", "pgtrickle");
    expect_qualified(sql, "row_id", "pgtrickle");

    // A catalog without pgtrickle.row_image_id: consolidated by equality, as before.
    l.identity = RowIdentity::equality;
    const std::string old = delta_apply_sql(q, l, "\"st\"", w);
    EXPECT_EQ(old.find("row_image_id"), std::string::npos) << old;
    EXPECT_EQ(old.find("__pgt_cls"), std::string::npos);
    EXPECT_NE(old.find("pgtrickle.row_id(d.\"v\") AS \"__pgt_rid\""), std::string::npos);
}

TEST(DeltaSql, old_state_below_the_top_is_consolidated_by_image) {
    Query u;
    u.union_all = true;
    const Query branch = grouped_query(true, false);
    u.branches = {std::make_shared<Query>(branch)};
    u.columns = branch.columns;
    EXPECT_EQ(differential_layout(u).kind, StorageKind::rows);
    const ChangeWindow w{{"1:2:", {}, {}}, {"sn_a"}, std::nullopt};
    const std::string image = delta_rows_sql(u, w);
    EXPECT_NE(image.find("AS \"__pgt_u\" GROUP BY pgtrickle.row_image_id(\"a.k\", \"a.v\", "
                         "\"b.k\", \"b.v\"), \"a.k\", \"a.v\", \"b.k\", \"b.v\" HAVING"),
              std::string::npos)
        << image;
    const std::string equality = delta_rows_sql(u, w, RowIdentity::equality);
    EXPECT_EQ(equality.find("row_image_id"), std::string::npos);
    EXPECT_NE(equality.find("AS \"__pgt_u\" GROUP BY \"a.k\", \"a.v\", \"b.k\", \"b.v\" HAVING"),
              std::string::npos);
    // The apply statement passes the layout's identity down to the blocks below the top.
    auto l = differential_layout(u);
    l.identity = RowIdentity::equality;
    EXPECT_EQ(delta_apply_sql(u, l, "\"st\"", w).find("row_image_id"), std::string::npos);
}

TEST(DeltaSql, algebraic_groups_consolidate_arguments_by_image) {
    const Query q = grouped_query(false, false);
    const ChangeWindow w{{"1:2:", {}, {}}, {"sn_a"}, std::nullopt};
    auto l = differential_layout(q);
    ASSERT_TRUE(l.algebraic);
    // 1.0 and 1.00 stay apart (a sum shows the largest scale); the group id is still row_id.
    const std::string sql = delta_apply_sql(q, l, "\"st\"", w);
    EXPECT_NE(sql.find("GROUP BY pgtrickle.row_image_id(\"__pgt_g_1\", \"__pgt_a_1\", "
                       "\"__pgt_a_2\"), 1, 2, 3 HAVING"),
              std::string::npos)
        << sql;
    EXPECT_NE(sql.find("pgtrickle.row_id(d.\"__pgt_g_1\") AS \"__pgt_rid\""), std::string::npos);
    l.identity = RowIdentity::equality;
    const std::string old = delta_apply_sql(q, l, "\"st\"", w);
    EXPECT_EQ(old.find("row_image_id"), std::string::npos);
    EXPECT_NE(old.find("GROUP BY 1, 2, 3 HAVING"), std::string::npos);
}

TEST(SqlIdent, quotes_everything_and_doubles_quotes) {
    EXPECT_EQ(sql::quote_ident("orders"), "\"orders\"");
    EXPECT_EQ(sql::quote_ident("we\"ird"), "\"we\"\"ird\"");
    EXPECT_EQ(sql::qualified("My Schema", "t"), "\"My Schema\".\"t\"");
    EXPECT_EQ(sql::quote_literal("it's"), "'it''s'");
    EXPECT_EQ(sql::quote_literal("a\\b"), "E'a\\\\b'");
}

}  // namespace
}  // namespace pgt::ivm
