// The differential oracle: for every supported query shape, random batches of inserts,
// updates (also of join and grouping keys) and deletes, a differential refresh after each
// batch, and the stream table compared with the query re-run (EXCEPT ALL both ways, so
// duplicates count). Sources have NULL keys and duplicate rows on purpose.
//
// Every shape runs against both apply targets. `local` is the refresh itself. `distributed`
// (no MERGE, no ctid: what a Citus distributed table needs) runs on a copy of the storage
// table ("st_dist"): before each refresh the engine's apply statement for that target is
// generated through a test-only C function (pgtrickle_engine_apply_sql, tests/probes/) for
// the window the refresh is about to consume, and executed on the copy, which must equal the
// query too.
#include <atomic>
#include <chrono>
#include <random>
#include <thread>

#include "pg_fixture.h"

namespace pgt::test {
namespace {

struct Shape {
    const char* name;
    const char* query;
};

const Shape kShapes[] = {
    {"filter_project", "SELECT id, v * 2 AS v2, s FROM a WHERE v > 10 OR s = 'x'"},
    {"inner_join_2", "SELECT a.id, a.v, b.w FROM a JOIN b ON a.k = b.k"},
    {"inner_join_4",
     "SELECT a.id, b.id AS bid, c.label, d.qty FROM a JOIN b ON a.k = b.k JOIN c ON c.k = b.k JOIN "
     "d ON d.a_id = a.id"},
    {"implicit_cross_join_where",
     "SELECT a.id, c.label FROM a, c WHERE a.k = c.k AND c.label <> 'l3'"},
    {"left_join", "SELECT a.id, a.k, c.label FROM a LEFT JOIN c ON a.k = c.k"},
    {"left_join_chain",
     "SELECT a.id, c.label, d.qty FROM a LEFT JOIN c ON a.k = c.k LEFT JOIN d ON d.a_id = a.id"},
    {"right_join", "SELECT c.label, a.id FROM a RIGHT JOIN c ON a.k = c.k"},
    {"group_algebraic",
     "SELECT k, count(*) AS n, count(v) AS nv, sum(v) AS sv, avg(v) AS av FROM a GROUP BY k"},
    {"group_min_max", "SELECT k, min(v) AS mi, max(s) AS ms FROM a GROUP BY k"},
    {"group_other_aggregates",
     "SELECT k, count(DISTINCT v) AS dv, string_agg(s, ',' ORDER BY s) AS ss, bool_or(v > 20) AS "
     "big FROM a GROUP BY k"},
    {"group_having", "SELECT k, sum(v) AS sv FROM a GROUP BY k HAVING count(*) > 2"},
    {"group_expression_target", "SELECT k, sum(v) * 2 + count(*) AS score FROM a GROUP BY k"},
    {"group_multi_key_nulls",
     "SELECT k, v % 2 AS p, count(*) AS n, min(id) AS mid FROM a GROUP BY k, v % 2"},
    {"global_aggregate", "SELECT count(*) AS n, sum(v) AS sv, max(v) AS mx FROM a"},
    {"aggregate_over_join",
     "SELECT c.label, count(*) AS n, sum(a.v) AS sv FROM a JOIN c ON a.k = c.k GROUP BY c.label"},
    {"distinct", "SELECT DISTINCT k, v % 3 AS m FROM a"},
    {"union_all", "SELECT k, v FROM a UNION ALL SELECT a_id, qty FROM d"},
    {"subquery_in_from",
     "SELECT x.k, x.v2, c.label FROM (SELECT k, v * 2 AS v2 FROM a WHERE v IS NOT NULL) AS x JOIN "
     "c ON c.k = x.k"},
    {"exists",
     "SELECT a.id, a.v FROM a WHERE EXISTS (SELECT 1 FROM d WHERE d.a_id = a.id AND d.qty > 2)"},
    {"not_exists", "SELECT b.id, b.k FROM b WHERE NOT EXISTS (SELECT 1 FROM a WHERE a.k = b.k)"},
    {"in_subquery", "SELECT c.k, c.label FROM c WHERE c.k IN (SELECT k FROM b WHERE w > 5)"},
    {"duplicates_projection", "SELECT k, s FROM a"},
    {"aggregate_subquery_join",
     "SELECT c.label, t.total, t.n FROM c JOIN (SELECT k, sum(v) AS total, count(*) AS n FROM a "
     "GROUP BY k) AS t "
     "ON t.k = c.k"},
    {"union_all_of_aggregates",
     "SELECT k, count(*) AS n FROM a GROUP BY k UNION ALL SELECT a_id, sum(qty) FROM d GROUP BY "
     "a_id"},
    {"distinct_subquery_under_aggregate",
     "SELECT x.k, count(*) AS n FROM (SELECT DISTINCT k, v FROM a) AS x GROUP BY x.k"},
    {"having_subquery_under_left_join",
     "SELECT c.k, c.label, t.mx FROM c LEFT JOIN (SELECT k, max(v) AS mx FROM a GROUP BY k HAVING "
     "count(*) > 1) AS t "
     "ON t.k = c.k"},
    {"functional_dependency_in_subquery",
     "SELECT x.id, x.k, x.n FROM (SELECT b.id, b.k, count(*) AS n, sum(d.qty) AS q FROM b JOIN d "
     "ON d.a_id = b.id GROUP BY b.id) AS x"},
    {"functional_dependency_in_union_branch",
     "SELECT b.id, b.k, count(d.id) AS n FROM b LEFT JOIN d ON d.a_id = b.id GROUP BY b.id "
     "UNION ALL SELECT id, k, 0 FROM b WHERE w > 5"},
    {"global_aggregate_filtered",
     "SELECT count(*) AS n, sum(v) AS sv, avg(v) AS av, min(v) AS mi FROM a WHERE v > 25"},
    {"numeric_sum_avg_with_specials",
     "SELECT b.k, sum(b.w) AS sw, avg(b.w) AS aw, count(b.w) AS nw FROM b GROUP BY b.k"},
    {"float_aggregates",
     "SELECT k, sum(v::float8 * 0.5) AS fs, avg(v::float8) AS fa FROM a GROUP BY k"},
    {"ordered_distinct_aggregate",
     "SELECT k, array_agg(DISTINCT v ORDER BY v DESC) AS vs, string_agg(DISTINCT s, ',' ORDER BY "
     "s DESC) AS ss FROM a GROUP BY k"},
    {"count_of_composite",
     "SELECT k, count(ROW(s, NULL::int)) AS c, count(*) AS n FROM a GROUP BY k"},
    {"non_scalar_group_keys",
     "SELECT ARRAY[k, v % 2] AS arr, jsonb_build_object('s', s) AS j, count(*) AS n FROM a GROUP "
     "BY 1, 2"},
};

/// local: the refresh itself, sources captured by triggers; distributed: also the
/// distributed apply on a copy; wal: sources captured through WAL (cdc_mode 'wal': a slot on
/// this server, drained at each refresh).
enum class Target { local, distributed, wal };

class Oracle : public PgTest, public ::testing::WithParamInterface<std::tuple<Shape, Target>> {
  protected:
    void SetUp() override {
        PgTest::SetUp();
        exec("CREATE TABLE a (id int, k int, v int, s text)");  // no key: duplicates allowed
        exec("CREATE TABLE b (id int PRIMARY KEY, k int, w numeric)");
        exec("CREATE TABLE c (k int, label text)");
        exec("CREATE TABLE d (id int, a_id int, qty int)");
        exec(
            "INSERT INTO a SELECT g, CASE WHEN g % 7 = 0 THEN NULL ELSE g % 5 END, g % 31, "
            "(ARRAY['x','y','z',NULL])[1 + g % 4] FROM generate_series(1, 40) g");
        exec("INSERT INTO a SELECT * FROM a WHERE id % 6 = 0");  // exact duplicates
        exec(
            "INSERT INTO b SELECT g, CASE WHEN g % 9 = 0 THEN NULL ELSE g % 6 END, g * 0.75 FROM "
            "generate_series(1, 15) g");
        exec("INSERT INTO c SELECT g % 6, 'l' || (g % 4) FROM generate_series(1, 8) g");
        exec("INSERT INTO c VALUES (NULL, 'lnull')");
        exec("INSERT INTO d SELECT g, g % 45, g % 5 FROM generate_series(1, 30) g");
    }

    /// The rows in which "st" and the query differ, for the failure message.
    std::string differing_rows(const std::string& query) {
        const std::string st = "(SELECT " + visible_columns("st") + " FROM st)";
        std::string out;
        for (const auto& r :
             rows("SELECT 'stored', * FROM (" + st + " EXCEPT ALL (" + query + ")) AS x")) {
            out += r + "\n";
        }
        for (const auto& r :
             rows("SELECT 'query', * FROM ((" + query + ") EXCEPT ALL " + st + ") AS x")) {
            out += r + "\n";
        }
        return out;
    }

    /// The distributed apply of the window the next refresh of "st" consumes, on "st_dist".
    void apply_distributed_to_copy() {
        const std::string snapshot = scalar(
            "SELECT min(v->>'snapshot') FROM pgtrickle.pgt_stream_tables, "
            "jsonb_each(frontier->'sources') AS e(k, v) WHERE pgt_name = 'st'");
        if (snapshot.empty()) {
            return;  // no captured source
        }
        exec(scalar("SELECT apply_sql(query_view, 'st_dist', '" + snapshot +
                    "', 'distributed') FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'st'"));
    }

    std::string random_statement(std::mt19937& rng) {
        auto r = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
        auto key = [&]() { return r(0, 9) == 0 ? std::string("NULL") : std::to_string(r(0, 6)); };
        auto maybe_null = [&](int lo, int hi) {
            return r(0, 8) == 0 ? std::string("NULL") : std::to_string(r(lo, hi));
        };
        switch (r(0, 16)) {
            case 16:
                return std::string("UPDATE b SET w = ") +
                       (r(0, 2) == 0 ? "'NaN'"
                        : r(0, 1)    ? "'Infinity'"
                                     : "'-Infinity'") +
                       " WHERE id = " + std::to_string(r(1, 30));
            case 0:
            case 1:
                return "INSERT INTO a VALUES (" + std::to_string(r(1, 60)) + ", " + key() + ", " +
                       maybe_null(0, 30) + ", " +
                       (r(0, 3) == 0
                            ? "NULL"
                            : "'" + std::string(1, static_cast<char>('x' + r(0, 2))) + "'") +
                       ")";
            case 2:
                return "INSERT INTO a SELECT * FROM a WHERE id = " +
                       std::to_string(r(1, 60));  // duplicate rows
            case 3:
                return "UPDATE a SET k = " + key() + " WHERE id = " + std::to_string(r(1, 60));
            case 4:
                return "UPDATE a SET v = " + maybe_null(0, 30) +
                       " WHERE id % 7 = " + std::to_string(r(0, 6));
            case 5:
                return "DELETE FROM a WHERE id = " + std::to_string(r(1, 60));
            case 6:
                return "INSERT INTO b VALUES (" + std::to_string(r(1, 30)) + ", " + key() + ", " +
                       std::to_string(r(0, 20)) +
                       ") ON CONFLICT (id) DO UPDATE SET k = EXCLUDED.k, w = EXCLUDED.w";
            case 7:
                return "UPDATE b SET w = w + 3 WHERE id = " + std::to_string(r(1, 30));
            case 8:
                return "DELETE FROM b WHERE id = " + std::to_string(r(1, 30));
            case 9:
                return "INSERT INTO c VALUES (" + key() + ", 'l" + std::to_string(r(0, 4)) + "')";
            case 10:
                return "UPDATE c SET k = " + key() + " WHERE label = 'l" + std::to_string(r(0, 4)) +
                       "'";
            case 11:
                return "DELETE FROM c WHERE ctid = (SELECT ctid FROM c ORDER BY random() LIMIT 1)";
            case 12:
                return "INSERT INTO d VALUES (" + std::to_string(r(1, 60)) + ", " +
                       std::to_string(r(1, 60)) + ", " + maybe_null(0, 6) + ")";
            case 13:
                return "UPDATE d SET a_id = " + std::to_string(r(1, 60)) +
                       " WHERE id = " + std::to_string(r(1, 60));
            case 14:
                return "UPDATE d SET qty = qty + 1 WHERE a_id % 5 = " + std::to_string(r(0, 4));
            default:
                return "DELETE FROM d WHERE id = " + std::to_string(r(1, 60));
        }
    }

    /// Stream table `st` over `shape`, differential, its sources captured through WAL when
    /// `wal`.
    void create_st(const Shape& shape, bool wal) {
        if (wal) {
            for (const char* t : {"a", "b", "c", "d"}) {
                exec(std::string("ALTER TABLE ") + t + " REPLICA IDENTITY FULL");
            }
        }
        exec(std::string("CALL pgtrickle.create_stream_table(name => 'st', query => $q$") +
             shape.query + "$q$, refresh_mode => 'differential'" +
             (wal ? ", cdc_mode => 'wal'" : "") + ")");
    }

    /// One random batch as random_batch writes it, as one SQL string.
    std::string random_batch_sql(std::mt19937& rng) {
        const int n = std::uniform_int_distribution<int>(1, 8)(rng);
        const bool one_txn = std::uniform_int_distribution<int>(0, 2)(rng) == 0;
        std::string sql = one_txn ? "BEGIN;" : "";
        for (int i = 0; i < n; ++i) {
            sql += random_statement(rng) + ";";
        }
        return one_txn ? sql + "COMMIT;" : sql;
    }

    void random_batch(std::mt19937& rng) { exec(random_batch_sql(rng)); }
};

TEST_P(Oracle, differential_refresh_equals_query_after_random_batches) {
    const Shape& shape = std::get<0>(GetParam());
    const bool distributed = std::get<1>(GetParam()) == Target::distributed;
    const bool wal = std::get<1>(GetParam()) == Target::wal;
    create_st(shape, wal);
    if (wal) {
        ASSERT_EQ(scalar("SELECT count(*) FILTER (WHERE cdc_mode <> 'wal') FROM "
                         "pgtrickle.pgt_change_tracking"),
                  "0");
    }
    ASSERT_EQ(
        scalar("SELECT effective_mode FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'st'"),
        "differential");
    expect_matches_query("st", shape.query);
    if (distributed) {
        create_probe(
            "CREATE FUNCTION apply_sql(oid, regclass, text, text) RETURNS text LANGUAGE C STRICT "
            "AS 'pg_trickle', 'pgtrickle_engine_apply_sql'");
        exec("CREATE TABLE st_dist (LIKE st INCLUDING ALL)");
        exec("INSERT INTO st_dist SELECT * FROM st");
    }
    std::mt19937 rng(static_cast<unsigned>(std::hash<std::string>{}(shape.name)));
    int differential = 0;
    for (int batch = 0; batch < 25 && !HasFailure(); ++batch) {
        random_batch(rng);
        if (distributed) {
            apply_distributed_to_copy();
        }
        exec("CALL pgtrickle.refresh_stream_table('st')");
        if (scalar("SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables WHERE pgt_name = "
                   "'st'") == "differential") {
            ++differential;
        }
        expect_matches_query("st", shape.query);
        if (distributed) {
            expect_matches_query("st_dist", shape.query);
        }
        if (HasFailure()) {
            ADD_FAILURE() << "after batch " << batch << "\n" << differing_rows(shape.query);
        }
    }
    EXPECT_GE(differential, 5) << "refreshes after changes to read tables must be differential";
}

// Refreshes while a writer runs random batches and another transaction stays open across
// all of them: no refresh waits for either (a statement timeout would cancel it), and once
// the writes stop and the open transaction commits, one refresh makes the stream table equal
// the query: each change counted once, whenever its transaction committed. On one node,
// with trigger and with WAL capture.
class Convergence : public Oracle {};

TEST_P(Convergence, under_a_concurrent_writer_and_an_open_transaction) {
    const Shape& shape = std::get<0>(GetParam());
    const bool wal = std::get<1>(GetParam()) == Target::wal;
    create_st(shape, wal);
    // Open across every refresh below: an insert (ids above the writer's range) and updates
    // of rows the writer also touches, so it holds row locks the writer may wait for.
    auto open_conn = connect();
    pqxx::nontransaction open(*open_conn);
    open.exec("BEGIN");
    open.exec("INSERT INTO a VALUES (500, 1, 7, 'x')");
    open.exec("UPDATE d SET qty = qty + 100 WHERE id % 11 = 0");
    std::atomic<bool> stop{false};
    std::atomic<int> written{0};
    std::thread writer([&] {
        auto c = connect();
        pqxx::nontransaction w(*c);
        w.exec("SET lock_timeout = '200ms'");
        std::mt19937 rng(static_cast<unsigned>(std::hash<std::string>{}(shape.name)) + 1);
        while (!stop) {
            try {
                w.exec(random_batch_sql(rng));
                ++written;
            } catch (const pqxx::failure&) {
                // a lock the open transaction holds, a deadlock, a duplicate key: nothing
                // of the batch committed
                try {
                    w.exec("ROLLBACK");
                } catch (const pqxx::failure&) {
                }
            }
        }
    });
    exec("SET statement_timeout = '20s'");
    // At least 6 refreshes, and on until the writer committed 5 batches (some fail on the
    // open transaction's locks).
    for (int i = 0; (i < 6 || written < 5) && i < 300 && !HasFailure(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(40));
        exec("CALL pgtrickle.refresh_stream_table('st')");
    }
    stop = true;
    writer.join();
    open.exec("COMMIT");
    EXPECT_GE(written.load(), 5);
    exec("CALL pgtrickle.refresh_stream_table('st')");
    expect_matches_query("st", shape.query);
    if (HasFailure()) {
        ADD_FAILURE() << differing_rows(shape.query);
    }
}

std::string shape_and_target(const ::testing::TestParamInfo<std::tuple<Shape, Target>>& info) {
    const Target t = std::get<1>(info.param);
    return std::string(std::get<0>(info.param).name) + (t == Target::local         ? "_local"
                                                        : t == Target::distributed ? "_distributed"
                                                                                   : "_wal");
}

INSTANTIATE_TEST_SUITE_P(Shapes, Oracle,
                         ::testing::Combine(::testing::ValuesIn(kShapes),
                                            ::testing::Values(Target::local, Target::distributed,
                                                              Target::wal)),
                         shape_and_target);

// On one node: the distributed apply target is checked by the oracle above.
INSTANTIATE_TEST_SUITE_P(Shapes, Convergence,
                         ::testing::Combine(::testing::ValuesIn(kShapes),
                                            ::testing::Values(Target::local, Target::wal)),
                         shape_and_target);

}  // namespace
}  // namespace pgt::test
