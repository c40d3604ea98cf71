// Edge cases of the differential engine, each against the query re-run: deltas that are empty
// or cancel out, functional dependencies below the top, special values (NaN, infinities, all
// NULL groups, composites, ordered aggregates, display scale, non-scalar types), and sources
// whose changes cannot be captured.
#include "pg_fixture.h"

namespace pgt::test {
namespace {

class EngineEdgeCases : public PgTest {
  protected:
    /// The stream table equals its query as text, row by row (display scale, array order and
    /// every other detail of the output representation included).
    void expect_same_text(const std::string& st, const std::string& query) {
        const std::string cols = visible_columns(st);
        EXPECT_EQ(rows("SELECT ROW(" + cols + ")::text FROM " + st),
                  rows("SELECT ROW(" + cols + ")::text FROM (" + query + ") AS q"))
            << "query: " << query;
    }

    void create(const std::string& query, const std::string& mode = "differential",
                const std::string& name = "st") {
        exec("CALL pgtrickle.create_stream_table(name => '" + name + "', query => $q$" + query +
             "$q$, refresh_mode => '" + mode + "')");
    }

    void refresh(const std::string& name = "st") {
        exec("CALL pgtrickle.refresh_stream_table('" + name + "')");
    }

    std::string last_mode(const std::string& name = "st") {
        return scalar(
            "SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables WHERE pgt_name = '" + name +
            "'");
    }

    /// Scans of `table` (sequential and index) that a refresh of `st` starts, counted in the
    /// refresh's transaction.
    int64_t scans_by_refresh(const std::string& table, const std::string& st) {
        exec("BEGIN");
        const auto count = [&]() {
            return std::stoll(
                scalar("SELECT pg_stat_get_xact_numscans('" + table + "'::regclass)"));
        };
        const int64_t before = count();
        refresh(st);
        const int64_t scans = count() - before;
        exec("COMMIT");
        return scans;
    }

    /// Apply `dml`, refresh, and check the stream table against its query (multiset and text).
    void step(const std::string& dml, const std::string& query) {
        if (!dml.empty()) {
            exec(dml);
        }
        refresh();
        expect_matches_query("st", query);
        expect_same_text("st", query);
    }
};

// ---- deltas that are empty or cancel out ---------------------------------------------------

TEST_F(EngineEdgeCases, global_aggregate_refreshes_when_the_delta_is_filtered_out_or_cancels) {
    exec("CREATE TABLE t (id int PRIMARY KEY, x int, y int)");
    exec("INSERT INTO t VALUES (1, 20, 0), (2, 30, 0)");
    const std::string q = "SELECT count(*) AS n, sum(x) AS s FROM t WHERE x > 10";
    create(q);
    step("INSERT INTO t VALUES (3, 5, 0)", q);       // filtered out
    step("UPDATE t SET y = y + 1 WHERE id = 1", q);  // a column the query does not read
    step("UPDATE t SET x = 7 WHERE id = 3", q);      // filtered out before and after
    step("INSERT INTO t VALUES (4, 50, 0); DELETE FROM t WHERE id = 4", q);  // nets to zero
    step("DELETE FROM t WHERE x > 10", q);  // the group becomes empty
    step("UPDATE t SET y = 9", q);
    step("INSERT INTO t VALUES (5, 11, 0)", q);
    EXPECT_EQ(last_mode(), "differential");
}

TEST_F(EngineEdgeCases, empty_and_cancelling_deltas_in_every_layout) {
    exec("CREATE TABLE t (id int PRIMARY KEY, k int, x int, y int)");
    exec("INSERT INTO t SELECT g, g % 3, g, 0 FROM generate_series(1, 12) g");
    const char* const queries[] = {
        "SELECT k, count(*) AS n, sum(x) AS s, avg(x) AS a, min(x) AS mi FROM t WHERE x > 4 "
        "GROUP BY k",
        "SELECT k, string_agg(x::text, ',' ORDER BY x) AS xs FROM t WHERE x > 4 GROUP BY k",
        "SELECT string_agg(x::text, ',' ORDER BY x) AS xs, count(*) AS n FROM t WHERE x > 4",
        "SELECT max(x) AS mx, min(x) AS mi FROM t WHERE x > 4",
        "SELECT id, x FROM t WHERE x > 4",
        "SELECT s.n FROM (SELECT count(*) AS n FROM t WHERE x > 4) AS s",
        "SELECT k, count(*) AS n FROM t WHERE x > 4 GROUP BY k UNION ALL SELECT 0, count(*) FROM "
        "t WHERE x > 100",
    };
    int i = 0;
    for (const char* q : queries) {
        const std::string name = "st" + std::to_string(++i);
        create(q, "differential", name);
        exec("INSERT INTO t VALUES (100, 1, 1, 0)");           // filtered out
        exec("UPDATE t SET y = y + 1 WHERE id IN (5, 6, 7)");  // unread column
        exec("INSERT INTO t VALUES (101, 1, 50, 0); DELETE FROM t WHERE id = 101");
        refresh(name);
        expect_matches_query(name, q);
        exec("DELETE FROM t WHERE id IN (100)");
        exec("UPDATE t SET x = x WHERE id = 8");
        refresh(name);
        expect_matches_query(name, q);
        EXPECT_EQ(last_mode(name), "differential") << q;
    }
}

// ---- functional dependency below the top ---------------------------------------------------

TEST_F(EngineEdgeCases, group_by_primary_key_with_dependent_columns_in_a_subquery) {
    exec("CREATE TABLE p (id int PRIMARY KEY, name text, grp int)");
    exec("CREATE TABLE o (id int, p_id int, amount int)");
    exec("INSERT INTO p SELECT g, 'p' || g, g % 2 FROM generate_series(1, 6) g");
    exec("INSERT INTO o SELECT g, 1 + g % 6, g FROM generate_series(1, 30) g");
    const std::string q =
        "SELECT x.id, x.name, x.n, x.total FROM (SELECT p.id, p.name, count(*) AS n, "
        "sum(o.amount) AS total FROM p JOIN o ON o.p_id = p.id GROUP BY p.id) AS x "
        "WHERE x.n > 1";
    create(q);
    // The same dependency at the top (groups layout, PostgreSQL sees the key itself).
    const std::string top =
        "SELECT p.id, p.name, count(*) AS n, sum(o.amount) AS total FROM p JOIN o ON o.p_id = "
        "p.id GROUP BY p.id";
    create(top, "differential", "st_top");
    for (const char* dml :
         {"INSERT INTO o VALUES (31, 2, 100)", "UPDATE p SET name = 'renamed' WHERE id = 3",
          "DELETE FROM o WHERE p_id = 4", "UPDATE o SET p_id = 5 WHERE p_id = 1"}) {
        step(dml, q);
        refresh("st_top");
        expect_matches_query("st_top", top);
    }
    EXPECT_EQ(last_mode(), "differential");
    EXPECT_EQ(last_mode("st_top"), "differential");
}

TEST_F(EngineEdgeCases, group_by_primary_key_with_dependent_columns_in_a_union_all_branch) {
    exec("CREATE TABLE p (id int PRIMARY KEY, name text)");
    exec("CREATE TABLE o (id int, p_id int, amount int)");
    exec("INSERT INTO p SELECT g, 'p' || g FROM generate_series(1, 4) g");
    exec("INSERT INTO o SELECT g, 1 + g % 4, g FROM generate_series(1, 12) g");
    const std::string q =
        "SELECT p.id, p.name, count(*) AS n FROM p JOIN o ON o.p_id = p.id GROUP BY p.id "
        "UNION ALL SELECT id, name, 0 FROM p WHERE id > 3";
    create(q);
    step("INSERT INTO o VALUES (13, 2, 1)", q);
    step("UPDATE p SET name = 'x' WHERE id = 2", q);
    step("DELETE FROM o WHERE p_id = 3", q);
    EXPECT_EQ(last_mode(), "differential");
}

// ---- values ----------------------------------------------------------------------------------

TEST_F(EngineEdgeCases, nan_and_infinities_enter_and_leave_sum_and_avg_groups) {
    exec("CREATE TABLE t (id int PRIMARY KEY, k int, v numeric)");
    exec("INSERT INTO t VALUES (1, 1, 1.5), (2, 1, 2.25), (3, 2, 10), (4, 3, NULL)");
    const std::string q =
        "SELECT k, sum(v) AS s, avg(v) AS a, count(v) AS c, min(v) AS mi, max(v) AS mx FROM t "
        "GROUP BY k";
    create(q);
    step("INSERT INTO t VALUES (5, 1, 'NaN')", q);
    step("DELETE FROM t WHERE id = 5", q);
    step("INSERT INTO t VALUES (6, 2, 'Infinity'), (7, 2, '-Infinity')", q);
    step("DELETE FROM t WHERE id = 7", q);
    step("UPDATE t SET v = 3 WHERE id = 6", q);
    step("INSERT INTO t VALUES (8, 3, 'Infinity'), (9, 3, 'Infinity')", q);
    step("DELETE FROM t WHERE id = 8", q);
    step("DELETE FROM t WHERE id = 9", q);
    EXPECT_EQ(last_mode(), "differential");
}

TEST_F(EngineEdgeCases, avg_over_a_group_whose_values_are_all_null) {
    exec("CREATE TABLE t (id int PRIMARY KEY, k int, v int)");
    exec("INSERT INTO t VALUES (1, 1, NULL), (2, 1, NULL), (3, 2, 4)");
    const std::string q = "SELECT k, avg(v) AS a, sum(v) AS s FROM t GROUP BY k";
    create(q);
    expect_matches_query("st", q);
    step("INSERT INTO t VALUES (4, 1, 6)", q);
    step("DELETE FROM t WHERE id = 4", q);
    step("UPDATE t SET v = NULL WHERE id = 3", q);
    const std::string g = "SELECT avg(v) AS a FROM t WHERE k = 1";
    create(g, "differential", "st_global");
    expect_matches_query("st_global", g);
}

TEST_F(EngineEdgeCases, float_aggregates_do_not_drift) {
    exec("CREATE TABLE t (id int PRIMARY KEY, k int, f float8)");
    exec("INSERT INTO t VALUES (1, 1, 1e16), (2, 1, 1), (3, 2, 0.1), (4, 2, 0.2)");
    const std::string q = "SELECT k, sum(f) AS s, avg(f) AS a, min(f) AS mi FROM t GROUP BY k";
    create(q);
    step("INSERT INTO t VALUES (5, 1, -1e16)", q);
    step("DELETE FROM t WHERE id = 1", q);
    step("UPDATE t SET f = 0.3 WHERE id = 3", q);
    step("INSERT INTO t VALUES (6, 2, 'NaN'::float8)", q);
    step("DELETE FROM t WHERE id = 6", q);
}

TEST_F(EngineEdgeCases, count_of_a_composite_counts_an_all_null_row) {
    exec("CREATE TYPE pair AS (a int, b int)");
    exec("CREATE TABLE t (id int PRIMARY KEY, k int, p pair)");
    exec("INSERT INTO t VALUES (1, 1, ROW(NULL, NULL)), (2, 1, NULL), (3, 2, ROW(1, NULL))");
    const std::string q = "SELECT k, count(p) AS c, count(*) AS n FROM t GROUP BY k";
    create(q);
    step("INSERT INTO t VALUES (4, 1, ROW(NULL, NULL))", q);
    step("DELETE FROM t WHERE id = 1", q);
    step("UPDATE t SET p = ROW(NULL, NULL) WHERE id = 2", q);
    step("UPDATE t SET k = 1 WHERE id = 3", q);
}

TEST_F(EngineEdgeCases, ordered_aggregates_keep_their_order_by) {
    exec("CREATE TABLE t (id int PRIMARY KEY, k int, x int, s text)");
    exec("INSERT INTO t SELECT g, g % 2, g % 5, 's' || g FROM generate_series(1, 12) g");
    const std::string q =
        "SELECT k, array_agg(DISTINCT x ORDER BY x DESC) AS xs, "
        "string_agg(DISTINCT s, ',' ORDER BY s DESC) AS ss, array_agg(x ORDER BY x DESC, id) AS "
        "all_x FROM t GROUP BY k";
    create(q);
    expect_same_text("st", q);
    step("INSERT INTO t VALUES (20, 0, 9, 'zz')", q);
    step("DELETE FROM t WHERE x = 0", q);
}

TEST_F(EngineEdgeCases, numeric_results_keep_the_display_scale_of_the_query) {
    exec("CREATE TABLE t (id int PRIMARY KEY, k int, v numeric(10,2), i int)");
    exec("INSERT INTO t VALUES (1, 1, 1.50, 1), (2, 1, 2.25, 2), (3, 2, 3.00, 3)");
    const std::string q =
        "SELECT k, sum(v) AS s, avg(v) AS a, avg(i) AS ai, sum(i) AS si FROM t GROUP BY k";
    create(q);
    expect_same_text("st", q);
    step("INSERT INTO t VALUES (4, 1, 0.25, 4)", q);
    step("DELETE FROM t WHERE id = 1", q);
    step("DELETE FROM t WHERE k = 2", q);
    step("INSERT INTO t VALUES (5, 2, 7, 5)", q);
    step("UPDATE t SET v = 1.1 WHERE id = 2", q);
}

TEST_F(EngineEdgeCases, unconstrained_numeric_keeps_the_scale_when_values_leave) {
    exec("CREATE TABLE t (id int PRIMARY KEY, k int, v numeric)");
    exec("INSERT INTO t VALUES (1, 1, 1.5), (2, 1, 2.25), (3, 1, 4), (4, 2, 0.125)");
    const std::string q = "SELECT k, sum(v) AS s, avg(v) AS a FROM t GROUP BY k";
    create(q);
    step("DELETE FROM t WHERE id = 2", q);  // 3.75 + 4 - 2.25 shows 5.50; the query shows 5.5
    step("INSERT INTO t VALUES (5, 1, 0.001)", q);
    step("DELETE FROM t WHERE id IN (1, 5)", q);
    step("UPDATE t SET v = 1 WHERE id = 4", q);
    EXPECT_EQ(last_mode(), "differential");
}

// Numeric sum/avg keep per group the finite sum, the counts of NaN and both infinities and
// the multiset of display scales: no group is rescanned for them, whatever leaves it.
TEST_F(EngineEdgeCases, numeric_groups_are_never_rescanned_for_special_values_or_scale) {
    exec("CREATE TABLE t (id int PRIMARY KEY, k int, v numeric, m numeric(10,2))");
    exec(
        "INSERT INTO t VALUES (1, 1, 1.5, 1), (2, 1, 2.25, 2), (3, 1, 4, 3), (4, 2, 0.125, 4), "
        "(5, 2, 'NaN', 5), (6, 3, 'Infinity', 'NaN'), (7, 3, '-Infinity', 7), "
        "(8, 4, 1.0000000000000000000001, 'NaN'), (9, 4, NULL, NULL)");
    const std::string q =
        "SELECT k, sum(v) AS s, avg(v) AS a, sum(m) AS sm, avg(m) AS am, count(*) AS n FROM t "
        "GROUP BY k";
    create(q);
    const std::string steps[] = {
        "DELETE FROM t WHERE id = 2",  // 1.5 + 4 shows 5.5: the largest scale leaves
        "DELETE FROM t WHERE id = 5",  // NaN leaves: 0.125 again
        "DELETE FROM t WHERE id = 7",  // -Infinity leaves: Infinity remains
        "DELETE FROM t WHERE id = 6; INSERT INTO t VALUES (10, 3, 2.50, 2.5)",
        "DELETE FROM t WHERE id = 8",  // scale 22 and NaN leave; only NULLs remain
        "INSERT INTO t VALUES (11, 4, 'Infinity', 'NaN'), (12, 4, '-Infinity', 1)",
        "UPDATE t SET v = 7.000 WHERE id = 1; UPDATE t SET m = 'NaN' WHERE id = 12",
        "UPDATE t SET m = 2 WHERE id IN (6, 11)",
        "DELETE FROM t WHERE k = 4",
    };
    for (const auto& dml : steps) {
        exec(dml);
        EXPECT_EQ(scans_by_refresh("t", "st"), 0) << "after: " << dml;
        expect_matches_query("st", q);
        expect_same_text("st", q);
    }
    EXPECT_EQ(last_mode(), "differential");
}

// Storage created before numeric sum/avg kept their counts lacks those hidden columns: its
// groups are rescanned as before (correct, and the source is read).
TEST_F(EngineEdgeCases, numeric_groups_of_storage_without_the_counts_are_rescanned) {
    exec("CREATE TABLE t (id int PRIMARY KEY, k int, v numeric)");
    exec("INSERT INTO t VALUES (1, 1, 1.5), (2, 1, 2.25), (3, 2, 'NaN'), (4, 2, 1)");
    const std::string q = "SELECT k, sum(v) AS s, avg(v) AS a FROM t GROUP BY k";
    create(q);
    // As the upgrade leaves it: the storage of 0.34.0 had none of the counts.
    exec("ALTER EVENT TRIGGER pgtrickle_sql_drop DISABLE");
    for (const char* c : {"sum_2", "nan_2", "pinf_2", "ninf_2", "scales_2", "nan_3", "pinf_3",
                          "ninf_3", "scales_3"}) {
        exec(std::string("ALTER TABLE st DROP COLUMN \"__pgt_") + c + "\"");
    }
    exec("ALTER EVENT TRIGGER pgtrickle_sql_drop ENABLE");
    exec("DELETE FROM t WHERE id IN (2, 3)");
    EXPECT_GT(scans_by_refresh("t", "st"), 0);
    expect_matches_query("st", q);
    expect_same_text("st", q);
    EXPECT_EQ(last_mode(), "differential");
}

TEST_F(EngineEdgeCases, non_scalar_types_through_every_layout_and_as_group_keys) {
    exec("CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')");
    exec("CREATE DOMAIN posint AS int CHECK (VALUE > 0)");
    exec(
        "CREATE TABLE t (id int PRIMARY KEY, j jsonb, arr int[], b bytea, m mood, d posint, "
        "r int4range, u uuid, ts timestamptz)");
    exec(
        "INSERT INTO t SELECT g, jsonb_build_object('g', g % 3), ARRAY[g % 2, NULL], "
        "decode(lpad(to_hex(g % 4), 2, '0'), 'hex'), (ARRAY['sad','ok','happy']::mood[])[1 + g % "
        "3], 1 + g % 2, int4range(g % 3, 5), ('00000000-0000-0000-0000-00000000000' || g % "
        "3)::uuid, '2026-01-01 00:00+00'::timestamptz + g % 2 * interval '1 hour' FROM "
        "generate_series(1, 9) g");
    const std::string dml[] = {
        "INSERT INTO t VALUES (20, '{\"g\": 7}', ARRAY[7], '\\x07', 'happy', 7, '[1,2)', "
        "'00000000-0000-0000-0000-000000000007', '2026-02-01 00:00+00')",
        "UPDATE t SET j = '{\"g\": 0}', m = 'sad', r = 'empty' WHERE id = 4",
        "DELETE FROM t WHERE id IN (1, 5)",
        "UPDATE t SET arr = NULL, b = NULL, u = NULL, ts = NULL WHERE id = 2",
    };
    const char* const queries[] = {
        "SELECT id, j, arr, b, m, d, r, u, ts FROM t",
        "SELECT j, arr, b, m, d, r, u, ts, count(*) AS n FROM t GROUP BY j, arr, b, m, d, r, u, ts",
        "SELECT m, count(*) AS n, min(ts) AS first, max(u::text) AS mu FROM t GROUP BY m",
        "SELECT j, string_agg(id::text, ',' ORDER BY id) AS ids FROM t GROUP BY j",
        "SELECT DISTINCT r, d FROM t",
        "SELECT x.m, x.n FROM (SELECT m, count(*) AS n FROM t GROUP BY m) AS x",
        "SELECT j, m FROM t WHERE id < 5 UNION ALL SELECT j, m FROM t WHERE id > 6",
    };
    int i = 0;
    for (const char* q : queries) {
        create(q, "differential", "st" + std::to_string(++i));
    }
    for (const auto& d : dml) {
        exec(d);
        for (int k = 1; k <= i; ++k) {
            const std::string name = "st" + std::to_string(k);
            refresh(name);
            expect_matches_query(name, queries[k - 1]);
            expect_same_text(name, queries[k - 1]);
        }
    }
}

// ---- sources whose changes cannot be captured ----------------------------------------------

TEST_F(EngineEdgeCases, uncapturable_sources_are_refused_in_differential_with_the_construct) {
    exec("CREATE TABLE t (id int PRIMARY KEY, x int)");
    exec("INSERT INTO t VALUES (1, 1), (2, 20)");
    exec("CREATE MATERIALIZED VIEW mv AS SELECT * FROM t");
    // A foreign table that can be read (create_stream_table runs the query once to check
    // privileges): file_fdw over an empty file.
    exec("CREATE EXTENSION file_fdw");
    exec("CREATE SERVER files FOREIGN DATA WRAPPER file_fdw");
    exec("CREATE FOREIGN TABLE ft (x int) SERVER files OPTIONS (filename '/dev/null')");
    exec("CREATE TABLE limits (lim int)");
    exec("INSERT INTO limits VALUES (10)");
    exec(
        "CREATE FUNCTION current_limit() RETURNS int STABLE LANGUAGE sql AS $$ SELECT max(lim) "
        "FROM limits $$");
    exec(
        "CREATE FUNCTION vol_limit() RETURNS int VOLATILE LANGUAGE sql AS $$ SELECT max(lim) "
        "FROM limits $$");
    exec("CREATE TABLE ev (id int PRIMARY KEY, at timestamptz, day date)");
    const std::pair<const char*, const char*> cases[] = {
        {"SELECT x FROM mv", "materialized view"},
        {"SELECT x FROM ft", "foreign table"},
        {"SELECT g FROM generate_series(1, 3) AS g", "generate_series"},
        {"SELECT t.x FROM t, generate_series(1, t.x) AS g", "generate_series"},
        {"SELECT x FROM t WHERE x > current_limit()", "current_limit"},
        {"SELECT x FROM t WHERE x > vol_limit()", "vol_limit"},
        {"SELECT id FROM ev WHERE at > now() - interval '1 day'", "now"},
        {"SELECT id FROM ev WHERE day = current_date", "CURRENT_DATE"},
        {"SELECT id FROM ev WHERE at > CURRENT_TIMESTAMP", "CURRENT_TIMESTAMP"},
    };
    int i = 0;
    for (const auto& [q, construct] : cases) {
        const std::string name = "st" + std::to_string(++i);
        const std::string err =
            error_of(std::string("CALL pgtrickle.create_stream_table(name => '") + name +
                     "', query => $q$" + q + "$q$, refresh_mode => 'differential')");
        EXPECT_NE(err.find("cannot be maintained differentially"), std::string::npos)
            << q << ": " << err;
        EXPECT_NE(err.find(construct), std::string::npos) << q << ": " << err;
        const std::string explained = scalar(
            std::string("SELECT pgtrickle.explain_stream_table($q$") + q + "$q$)->>'reason'");
        EXPECT_NE(explained.find(construct), std::string::npos) << q << ": " << explained;
    }
}

TEST_F(EngineEdgeCases, uncapturable_sources_in_auto_mode_recompute_at_every_refresh) {
    exec("CREATE TABLE t (id int PRIMARY KEY, x int)");
    exec("INSERT INTO t VALUES (1, 1), (2, 20)");
    exec("CREATE MATERIALIZED VIEW mv AS SELECT * FROM t");
    exec("CREATE TABLE limits (lim int)");
    exec("INSERT INTO limits VALUES (10)");
    exec(
        "CREATE FUNCTION current_limit() RETURNS int STABLE LANGUAGE sql AS $$ SELECT max(lim) "
        "FROM limits $$");
    const std::string q_mv = "SELECT x FROM mv";
    const std::string q_fn = "SELECT id, x FROM t WHERE x > current_limit()";
    const std::string q_srf = "SELECT g FROM generate_series(1, (SELECT max(x) FROM t)) AS g";
    create(q_mv, "auto", "st_mv");
    create(q_fn, "auto", "st_fn");
    create(q_srf, "auto", "st_srf");
    exec("INSERT INTO t VALUES (3, 30)");
    exec("REFRESH MATERIALIZED VIEW mv");
    exec("UPDATE limits SET lim = 0");
    for (const char* name : {"st_mv", "st_fn", "st_srf"}) {
        refresh(name);
        EXPECT_EQ(last_mode(name), "full") << name;
        EXPECT_NE(scalar("SELECT mode_reason FROM pgtrickle.pgt_stream_tables WHERE pgt_name = '" +
                         std::string(name) + "'"),
                  "")
            << name;
    }
    expect_matches_query("st_mv", q_mv);
    expect_matches_query("st_fn", q_fn);
    expect_matches_query("st_srf", q_srf);
    // Nothing captured changed: still recomputed, never "nothing to do".
    exec("UPDATE limits SET lim = 25");
    refresh("st_fn");
    EXPECT_EQ(last_mode("st_fn"), "full");
    expect_matches_query("st_fn", q_fn);
}

// Tables read only in a sublink of a function's arguments, of a VALUES list or of a table
// function in FROM are sources like any other: recorded as dependencies (capture prepares
// them, a change makes the stream table stale) and their changes reach the stream table.
TEST_F(EngineEdgeCases, tables_read_in_function_values_and_tablefunc_sublinks_are_sources) {
    exec("CREATE TABLE t (id int PRIMARY KEY, x int)");
    exec("INSERT INTO t VALUES (1, 3)");
    exec("CREATE TABLE doc (d xml)");
    exec("INSERT INTO doc VALUES ('<r><i>1</i></r>')");
    const std::string q_fn = "SELECT g FROM generate_series(1, (SELECT max(x) FROM t)) AS g";
    const std::string q_values = "SELECT v FROM (VALUES ((SELECT max(x) FROM t))) AS s(v)";
    const std::string q_xml =
        "SELECT i FROM XMLTABLE('/r/i' PASSING (SELECT d FROM doc LIMIT 1) COLUMNS i int PATH "
        "'.') AS x";
    create(q_fn, "auto", "st_fn_arg");
    create(q_values, "auto", "st_values");
    create(q_xml, "auto", "st_xml");
    for (const auto& [name, table] : {std::pair<std::string, std::string>{"st_fn_arg", "t"},
                                      {"st_values", "t"},
                                      {"st_xml", "doc"}}) {
        EXPECT_EQ(scalar("SELECT count(*) FROM pgtrickle.pgt_dependencies d JOIN "
                         "pgtrickle.pgt_stream_tables s USING (pgt_id) WHERE s.pgt_name = '" +
                         name + "' AND d.source_relid = '" + table + "'::regclass"),
                  "1")
            << name << " does not record " << table << " as a source";
    }
    exec("INSERT INTO t VALUES (2, 7)");
    exec("UPDATE doc SET d = '<r><i>1</i><i>2</i></r>'");
    for (const char* name : {"st_fn_arg", "st_values", "st_xml"}) {
        refresh(name);
    }
    expect_matches_query("st_fn_arg", q_fn);
    expect_matches_query("st_values", q_values);
    expect_matches_query("st_xml", q_xml);
}

}  // namespace
}  // namespace pgt::test
