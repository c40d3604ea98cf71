// Capture and refresh under concurrency: long transactions, writers during refresh,
// refreshes racing each other.
#include <atomic>
#include <random>
#include <thread>

#include "pg_fixture.h"

namespace pgt::test {
namespace {

class Concurrency : public PgTest {
  protected:
    void SetUp() override {
        PgTest::SetUp();
        exec("CREATE TABLE orders (id int PRIMARY KEY, customer_id int, amount int)");
        exec("INSERT INTO orders SELECT g, g % 10, g FROM generate_series(1, 200) g");
    }
    const std::string agg_ =
        "SELECT customer_id, count(*) AS n, sum(amount) AS total FROM orders GROUP BY customer_id";
};

TEST_F(Concurrency, refresh_after_concurrent_long_txn_sees_its_rows) {
    exec("CALL pgtrickle.create_stream_table(name => 'summary', query => $q$" + agg_ + "$q$)");
    auto writer = connect();
    pqxx::work long_txn(*writer);
    // Written before the refresh, committed after it: trigger capture must not lose it.
    long_txn.exec("INSERT INTO orders VALUES (1001, 3, 500), (1002, 42, 7)");
    long_txn.exec("UPDATE orders SET customer_id = 42 WHERE id = 5");
    exec("INSERT INTO orders VALUES (2001, 1, 1)");  // a short transaction in between
    exec("CALL pgtrickle.refresh_stream_table('summary')");
    EXPECT_EQ(scalar("SELECT count(*) FROM summary WHERE customer_id = 42"), "0");
    long_txn.commit();
    exec("CALL pgtrickle.refresh_stream_table('summary')");
    EXPECT_EQ(scalar("SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables"), "differential");
    EXPECT_EQ(scalar("SELECT n || ':' || total FROM summary WHERE customer_id = 42"), "2:12");
    expect_matches_query("summary", agg_);
}

TEST_F(Concurrency, rolled_back_writes_are_never_applied) {
    exec("CALL pgtrickle.create_stream_table(name => 'summary', query => $q$" + agg_ + "$q$)");
    auto writer = connect();
    {
        pqxx::work t(*writer);
        t.exec("INSERT INTO orders VALUES (3001, 77, 1)");
        t.abort();
    }
    exec("CALL pgtrickle.refresh_stream_table('summary')");
    EXPECT_EQ(scalar("SELECT count(*) FROM summary WHERE customer_id = 77"), "0");
    expect_matches_query("summary", agg_);
}

TEST_F(Concurrency, writers_during_refreshes_lose_nothing) {
    const std::string join_q =
        "SELECT o.id, o.amount, o.customer_id FROM orders o WHERE o.amount % 3 <> 0";
    exec("CALL pgtrickle.create_stream_table(name => 'summary', query => $q$" + agg_ + "$q$)");
    exec("CALL pgtrickle.create_stream_table(name => 'filtered', query => $q$" + join_q + "$q$)");
    std::atomic<bool> stop{false};
    std::atomic<int> writes{0};
    auto writer_fn = [&](int seed) {
        auto c = connect();
        std::mt19937 rng(seed);
        while (!stop) {
            const int id = std::uniform_int_distribution<int>(1, 400)(rng);
            const int op = std::uniform_int_distribution<int>(0, 3)(rng);
            try {
                pqxx::work t(*c);
                if (op == 0) {
                    t.exec("INSERT INTO orders VALUES (" + std::to_string(id) + ", " +
                           std::to_string(id % 13) + ", " + std::to_string(id % 50) +
                           ") ON CONFLICT (id) DO NOTHING");
                } else if (op == 1) {
                    t.exec(
                        "UPDATE orders SET amount = amount + 1, customer_id = (customer_id + 1) % "
                        "13 WHERE id = " +
                        std::to_string(id));
                } else if (op == 2) {
                    t.exec("DELETE FROM orders WHERE id = " + std::to_string(id));
                } else {
                    t.exec("UPDATE orders SET amount = amount + 2 WHERE id % 17 = " +
                           std::to_string(id % 17));
                    std::this_thread::sleep_for(
                        std::chrono::milliseconds(3));  // a longer transaction
                }
                t.commit();
                ++writes;
            } catch (const pqxx::sql_error&) {
                // deadlocks/serialization between writers are fine; nothing was committed
            }
        }
    };
    std::thread w1(writer_fn, 1), w2(writer_fn, 2);
    auto refresher = connect();
    for (int i = 0; i < 40; ++i) {
        pqxx::nontransaction t(*refresher);
        t.exec(i % 2 ? "CALL pgtrickle.refresh_stream_table('summary')"
                     : "CALL pgtrickle.refresh_stream_table('filtered')");
    }
    stop = true;
    w1.join();
    w2.join();
    EXPECT_GT(writes.load(), 20);
    exec("CALL pgtrickle.refresh_stream_table('summary')");
    exec("CALL pgtrickle.refresh_stream_table('filtered')");
    expect_matches_query("summary", agg_);
    expect_matches_query("filtered", join_q);
    // Every reader consumed everything: the shared buffer is cleaned.
    exec("CALL pgtrickle.refresh_stream_table('summary')");
    EXPECT_EQ(scalar("SELECT pgtrickle.pending_changes(pgt_id) FROM pgtrickle.pgt_stream_tables "
                     "WHERE pgt_name = 'summary'"),
              "0");
}

TEST_F(Concurrency, racing_refreshes_of_one_stream_table_are_serialized) {
    exec("CALL pgtrickle.create_stream_table(name => 'summary', query => $q$" + agg_ + "$q$)");
    std::atomic<bool> stop{false};
    std::thread writer([&] {
        auto c = connect();
        int i = 5000;
        while (!stop) {
            pqxx::nontransaction t(*c);
            t.exec("INSERT INTO orders VALUES (" + std::to_string(i++) + ", 4, 1)");
        }
    });
    auto refresh_loop = [&] {
        auto c = connect();
        for (int i = 0; i < 30; ++i) {
            pqxx::nontransaction t(*c);
            t.exec("CALL pgtrickle.refresh_stream_table('summary')");
        }
    };
    std::thread r1(refresh_loop), r2(refresh_loop);
    r1.join();
    r2.join();
    stop = true;
    writer.join();
    exec("CALL pgtrickle.refresh_stream_table('summary')");
    expect_matches_query("summary", agg_);
}

}  // namespace
}  // namespace pgt::test
