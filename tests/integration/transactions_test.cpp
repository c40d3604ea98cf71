// Refreshes and creates inside transactions that also write to the sources: what the
// transaction wrote before a refresh is applied once, what it writes after is applied by
// the next refresh after commit; savepoints rolled back or released.
#include "pg_fixture.h"

namespace pgt::test {
namespace {

class Transactions : public PgTest {
  protected:
    void SetUp() override {
        PgTest::SetUp();
        exec("CREATE TABLE src (id int PRIMARY KEY, g int, v int)");
        exec("INSERT INTO src SELECT i, i % 3, i FROM generate_series(1, 30) i");
    }
    static constexpr const char* kAgg =
        "SELECT g, count(*) AS n, sum(v) AS total FROM src GROUP BY g";
    static constexpr const char* kRows = "SELECT id, v FROM src WHERE v > 5";

    void create(const std::string& name, const std::string& query) {
        exec("CALL pgtrickle.create_stream_table(name => '" + name + "', query => $$" + query +
             "$$, refresh_mode => 'differential')");
    }
    /// Run statements in one transaction on one connection.
    void in_transaction(const std::vector<std::string>& statements) {
        auto c = connect();
        pqxx::work tx(*c);
        for (const auto& s : statements) {
            tx.exec(s);
        }
        tx.commit();
    }
};

TEST_F(Transactions, write_then_refresh_in_one_transaction_applies_each_row_once) {
    create("agg", kAgg);
    create("flat", kRows);
    in_transaction(
        {"INSERT INTO src VALUES (100, 1, 50)", "CALL pgtrickle.refresh_stream_table('agg')",
         "CALL pgtrickle.refresh_stream_table('flat')", "UPDATE src SET v = v + 1 WHERE id = 100",
         "INSERT INTO src VALUES (101, 2, 7)"});
    // Rows written before the refresh were applied by it; those after wait for the next.
    EXPECT_EQ(scalar("SELECT count(*) FROM flat WHERE id = 100"), "1");
    EXPECT_EQ(scalar("SELECT count(*) FROM flat WHERE id = 101"), "0");
    exec("CALL pgtrickle.refresh_stream_table('agg')");
    exec("CALL pgtrickle.refresh_stream_table('flat')");
    expect_matches_query("agg", kAgg);
    expect_matches_query("flat", kRows);
    EXPECT_EQ(scalar("SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables WHERE pgt_name "
                     "= 'agg'"),
              "differential");
}

TEST_F(Transactions, several_refreshes_and_creates_in_one_transaction) {
    create("agg", kAgg);
    in_transaction(
        {"INSERT INTO src VALUES (100, 1, 50)", "CALL pgtrickle.refresh_stream_table('agg')",
         "DELETE FROM src WHERE id = 3",
         "CALL pgtrickle.create_stream_table(name => 'flat', query => $$" + std::string(kRows) +
             "$$, refresh_mode => 'differential')",
         "CALL pgtrickle.refresh_stream_table('agg')", "INSERT INTO src VALUES (102, 0, 9)",
         "CALL pgtrickle.refresh_stream_table('agg')",
         "CALL pgtrickle.refresh_stream_table('flat')", "UPDATE src SET g = 2 WHERE id = 4"});
    for (int i = 0; i < 2; ++i) {
        exec("CALL pgtrickle.refresh_stream_table('agg')");
        exec("CALL pgtrickle.refresh_stream_table('flat')");
        expect_matches_query("agg", kAgg);
        expect_matches_query("flat", kRows);
    }
}

TEST_F(Transactions, create_with_initialize_inside_a_writing_transaction) {
    in_transaction({"INSERT INTO src VALUES (100, 1, 50)",
                    "CALL pgtrickle.create_stream_table(name => 'agg', query => $$" +
                        std::string(kAgg) + "$$, refresh_mode => 'differential')",
                    "INSERT INTO src VALUES (101, 1, 60)"});
    exec("CALL pgtrickle.refresh_stream_table('agg')");
    expect_matches_query("agg", kAgg);
}

TEST_F(Transactions, savepoints_rolled_back_and_released) {
    create("agg", kAgg);
    create("flat", kRows);
    in_transaction({"SAVEPOINT a", "INSERT INTO src VALUES (100, 1, 50)", "ROLLBACK TO a",
                    "SAVEPOINT b", "INSERT INTO src VALUES (101, 1, 60)", "RELEASE b",
                    "CALL pgtrickle.refresh_stream_table('agg')", "SAVEPOINT c",
                    "DELETE FROM src WHERE id = 1", "CALL pgtrickle.refresh_stream_table('flat')",
                    "ROLLBACK TO c", "SAVEPOINT d", "UPDATE src SET v = 1000 WHERE id = 2",
                    "RELEASE d"});
    exec("CALL pgtrickle.refresh_stream_table('agg')");
    exec("CALL pgtrickle.refresh_stream_table('flat')");
    expect_matches_query("agg", kAgg);
    expect_matches_query("flat", kRows);
    EXPECT_EQ(scalar("SELECT count(*) FROM src WHERE id = 100"), "0");
}

TEST_F(Transactions, a_refresh_rolled_back_after_its_clean_up_leaves_the_last_frontier_exact) {
    // The frontier remembers the rows its own transaction wrote before it by their cmin. A
    // later refresh's clean-up deletes those rows; when that refresh rolls back (its whole
    // transaction, or a savepoint), the rows are back, but the aborted delete left its own
    // command id where their cmin is read: the next refresh took them for rows written after
    // the frontier and applied them twice.
    create("agg", kAgg);
    create("flat", kRows);
    in_transaction({"INSERT INTO src VALUES (100, 1, 50)",
                    "CALL pgtrickle.refresh_stream_table('agg')",
                    "CALL pgtrickle.refresh_stream_table('flat')"});
    {
        auto c = connect();
        pqxx::work tx(*c);
        tx.exec("INSERT INTO src VALUES (101, 2, 70)");
        tx.exec("SELECT 1 FROM generate_series(1, 5)");  // a few more commands
        tx.exec("CALL pgtrickle.refresh_stream_table('agg')");
        tx.exec("CALL pgtrickle.refresh_stream_table('flat')");
        tx.abort();
    }
    in_transaction({"INSERT INTO src VALUES (102, 0, 80)", "SAVEPOINT a",
                    "CALL pgtrickle.refresh_stream_table('agg')",
                    "CALL pgtrickle.refresh_stream_table('flat')", "ROLLBACK TO a"});
    exec("CALL pgtrickle.refresh_stream_table('agg')");
    exec("CALL pgtrickle.refresh_stream_table('flat')");
    expect_matches_query("agg", kAgg);
    expect_matches_query("flat", kRows);
    EXPECT_EQ(scalar("SELECT string_agg(DISTINCT last_refresh_mode, ',') FROM "
                     "pgtrickle.pgt_stream_tables"),
              "differential");
}

TEST_F(Transactions, prepared_transactions_are_applied_once_after_commit_prepared) {
    create("agg", kAgg);
    const std::string gid = "pgt_" + db_;
    {
        auto c = connect();
        pqxx::nontransaction tx(*c);
        tx.exec("BEGIN");
        tx.exec("INSERT INTO src VALUES (100, 1, 50)");
        tx.exec("INSERT INTO src VALUES (101, 1, 60)");
        tx.exec("PREPARE TRANSACTION '" + gid + "'");
    }
    // Invisible until COMMIT PREPARED: a refresh in between changes nothing.
    exec("INSERT INTO src VALUES (102, 2, 70)");
    exec("CALL pgtrickle.refresh_stream_table('agg')");
    EXPECT_EQ(scalar("SELECT n FROM agg WHERE g = 1"), "10");
    exec("COMMIT PREPARED '" + gid + "'");
    exec("CALL pgtrickle.refresh_stream_table('agg')");
    expect_matches_query("agg", kAgg);
    exec("CALL pgtrickle.refresh_stream_table('agg')");
    expect_matches_query("agg", kAgg);
}

TEST_F(Transactions, clean_up_keeps_rows_a_stream_table_being_created_still_needs) {
    create("other", kAgg);
    auto writer = connect();
    pqxx::nontransaction w(*writer);
    w.exec("BEGIN");
    w.exec("INSERT INTO src VALUES (200, 1, 1000)");  // running while "agg" is created
    auto creator = connect();
    pqxx::nontransaction c(*creator);
    c.exec("BEGIN");
    c.exec("CALL pgtrickle.create_stream_table(name => 'agg', query => $$" + std::string(kAgg) +
           "$$, refresh_mode => 'differential')");
    w.exec("COMMIT");
    // Another reader's refresh now sees the writer committed; its clean-up must not remove
    // the row that the uncommitted "agg" has not consumed.
    exec("CALL pgtrickle.refresh_stream_table('other')");
    c.exec("COMMIT");
    exec("CALL pgtrickle.refresh_stream_table('agg')");
    expect_matches_query("agg", kAgg);
    expect_matches_query("other", kAgg);
}

}  // namespace
}  // namespace pgt::test
