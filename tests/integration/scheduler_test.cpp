// The background scheduler: freshness, wake-ups, dependency order, failures, restarts.
#include <chrono>
#include <thread>

#include "pg_fixture.h"

namespace pgt::test {
namespace {

using Clock = std::chrono::steady_clock;

class Scheduler : public PgTest {
  protected:
    void SetUp() override {
        PgTest::SetUp();
        exec("CREATE TABLE orders (id int PRIMARY KEY, customer_id int, amount int)");
        exec("INSERT INTO orders SELECT g, g % 10, g FROM generate_series(1, 100) g");
    }
    /// Poll `sql` until it returns `want` or `seconds` pass; returns the elapsed time.
    double wait_for(const std::string& sql, const std::string& want, double seconds) {
        const auto start = Clock::now();
        while (std::chrono::duration<double>(Clock::now() - start).count() < seconds) {
            if (scalar(sql) == want) {
                return std::chrono::duration<double>(Clock::now() - start).count();
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        ADD_FAILURE() << "timed out after " << seconds << " s waiting for " << sql << " = " << want
                      << " (last: " << scalar(sql) << ")";
        return seconds;
    }
    void TearDown() override {
        // Server-wide settings a test changed never outlive it, also when it failed.
        exec("ALTER SYSTEM RESET default_transaction_isolation");
        exec("ALTER SYSTEM RESET pg_trickle.fault_injection");
        exec("SELECT pg_reload_conf()");
        PgTest::TearDown();
    }
    void set_global(const std::string& setting, const std::string& value) {
        exec("ALTER SYSTEM SET " + setting + " = " + value);
        exec("SELECT pg_reload_conf()");
    }
};

TEST_F(Scheduler, stream_table_with_1s_schedule_reflects_a_write_in_bounded_time) {
    exec(
        "CALL pgtrickle.create_stream_table(name => 's', query => 'SELECT customer_id, count(*) AS "
        "n FROM orders GROUP BY 1', "
        "schedule => '1s')");
    wait_for("SELECT pgtrickle.scheduler_pid() IS NOT NULL", "t", 10);
    exec("INSERT INTO orders VALUES (1000, 42, 1)");
    const double took = wait_for("SELECT count(*) FROM s WHERE customer_id = 42", "1", 5);
    EXPECT_LT(took, 3.0);
    EXPECT_EQ(scalar("SELECT count(*) > 0 FROM pgtrickle.pgt_refresh_history WHERE trigger IN "
                     "('schedule', 'wake')"),
              "t");
}

// A manual refresh left open holds its WAL source's slot (its drain is not committed): the
// scheduler passes over the stream tables that would wait for it, keeps refreshing the
// others, and catches up once it commits.
TEST_F(Scheduler, a_refresh_left_open_on_a_wal_source_holds_up_only_its_readers) {
    exec("ALTER TABLE orders REPLICA IDENTITY FULL");
    exec("CREATE TABLE other (id int PRIMARY KEY, v int)");
    const std::string q = "SELECT customer_id, count(*) AS n FROM orders GROUP BY 1";
    exec("CALL pgtrickle.create_stream_table(name => 'held', query => $q$" + q +
         "$q$, refresh_mode => 'differential', cdc_mode => 'wal')");
    exec("CALL pgtrickle.create_stream_table(name => 'sched', query => $q$" + q +
         "$q$, refresh_mode => 'differential', cdc_mode => 'wal', schedule => '1s')");
    exec(
        "CALL pgtrickle.create_stream_table(name => 'free', query => 'SELECT count(*) AS n FROM "
        "other', schedule => '1s')");
    wait_for("SELECT pgtrickle.scheduler_pid() IS NOT NULL", "t", 10);
    exec("INSERT INTO orders VALUES (1000, 42, 1)");
    auto c = connect();
    pqxx::nontransaction open(*c);
    open.exec("BEGIN");
    open.exec("CALL pgtrickle.refresh_stream_table('held')");  // drained: holds the slot
    exec("INSERT INTO other VALUES (1, 1)");
    EXPECT_LT(wait_for("SELECT n FROM free", "1", 10), 5.0);
    exec("INSERT INTO other VALUES (2, 2)");
    EXPECT_LT(wait_for("SELECT n FROM free", "2", 10), 5.0);
    open.exec("COMMIT");
    wait_for("SELECT count(*) FROM sched WHERE customer_id = 42", "1", 10);
    expect_matches_query("sched", q);
    expect_matches_query("held", q);
}

TEST_F(Scheduler, writers_wake_the_scheduler_for_short_schedules) {
    exec(
        "CALL pgtrickle.create_stream_table(name => 's', query => 'SELECT id, amount FROM orders', "
        "schedule => '1s')");
    wait_for("SELECT pgtrickle.scheduler_pid() IS NOT NULL", "t", 10);
    std::this_thread::sleep_for(
        std::chrono::milliseconds(1500));  // let the first scheduled refresh pass
    exec("INSERT INTO orders VALUES (2000, 1, 1)");
    wait_for("SELECT count(*) FROM s WHERE id = 2000", "1", 5);
    EXPECT_EQ(scalar("SELECT count(*) > 0 FROM pgtrickle.pgt_refresh_history WHERE trigger = "
                     "'wake' AND rows_changed > 0"),
              "t");
}

TEST_F(Scheduler, a_wake_refreshes_only_stream_tables_whose_sources_were_written) {
    // 9 s schedules count as short under a 10 s threshold: within the few seconds of this
    // test, any refresh of either table can only come from a wake-up.
    set_global("pg_trickle.wake_threshold_ms", "10000");
    exec("CREATE TABLE other (id int PRIMARY KEY)");
    exec(
        "CALL pgtrickle.create_stream_table(name => 'written', query => 'SELECT id FROM orders', "
        "schedule => '9s')");
    exec(
        "CALL pgtrickle.create_stream_table(name => 'untouched', query => 'SELECT id FROM other', "
        "schedule => '9s')");
    wait_for("SELECT pgtrickle.scheduler_pid() IS NOT NULL", "t", 10);
    std::this_thread::sleep_for(
        std::chrono::milliseconds(1200));  // the scheduler has read the catalog
    const std::string untouched_at = scalar(
        "SELECT last_refresh_at FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'untouched'");
    for (int i = 0; i < 10; ++i) {
        exec("INSERT INTO orders VALUES (" + std::to_string(5000 + i) + ", 1, 1)");
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    wait_for("SELECT count(*) FROM written WHERE id >= 5000", "10", 5);
    EXPECT_EQ(scalar("SELECT count(*) > 0 FROM pgtrickle.pgt_refresh_history h JOIN "
                     "pgtrickle.pgt_stream_tables s "
                     "USING (pgt_id) WHERE s.pgt_name = 'written' AND h.trigger = 'wake'"),
              "t");
    EXPECT_EQ(
        scalar(
            "SELECT last_refresh_at FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'untouched'"),
        untouched_at);
    set_global("pg_trickle.wake_threshold_ms", "DEFAULT");
}

TEST_F(Scheduler, downstream_refreshes_after_upstream_in_one_cycle) {
    exec(
        "CALL pgtrickle.create_stream_table(name => 'up', query => 'SELECT customer_id, "
        "sum(amount) AS total FROM orders "
        "GROUP BY 1', schedule => '1s')");
    exec(
        "CALL pgtrickle.create_stream_table(name => 'down', query => 'SELECT customer_id, total "
        "FROM up WHERE total > 1000', "
        "schedule => '1s')");
    wait_for("SELECT pgtrickle.scheduler_pid() IS NOT NULL", "t", 10);
    exec("INSERT INTO orders VALUES (3000, 77, 5000)");
    wait_for("SELECT count(*) FROM down WHERE customer_id = 77", "1", 8);
    // The refresh of `down` that brought customer 77 came after the refresh of `up` that did.
    const std::string order = scalar(
        "SELECT (SELECT min(history_id) FROM pgtrickle.pgt_refresh_history h JOIN "
        "pgtrickle.pgt_stream_tables s USING (pgt_id) "
        "WHERE s.pgt_name = 'up' AND h.rows_changed > 0 AND h.trigger <> 'manual') < "
        "(SELECT min(history_id) FROM pgtrickle.pgt_refresh_history h JOIN "
        "pgtrickle.pgt_stream_tables s USING (pgt_id) "
        "WHERE s.pgt_name = 'down' AND h.rows_changed > 0 AND h.trigger <> 'manual')");
    EXPECT_EQ(order, "t");
    expect_matches_query("up", "SELECT customer_id, sum(amount) AS total FROM orders GROUP BY 1");
    expect_matches_query("down", "SELECT customer_id, total FROM up WHERE total > 1000");
}

TEST_F(Scheduler, a_dependency_cycle_cannot_be_created) {
    exec(
        "CALL pgtrickle.create_stream_table(name => 'a', query => 'SELECT customer_id FROM "
        "orders')");
    exec("CALL pgtrickle.create_stream_table(name => 'b', query => 'SELECT customer_id FROM a')");
    try {
        exec("CALL pgtrickle.alter_stream_table('a', query => 'SELECT customer_id FROM b')");
        ADD_FAILURE() << "a cycle was accepted";
    } catch (const pqxx::sql_error& e) {
        EXPECT_EQ(e.sqlstate(), "2BP01") << e.what();
    }
}

TEST_F(Scheduler, failures_back_off_then_suspend_and_resume_recovers) {
    set_global("pg_trickle.max_consecutive_errors", "3");
    exec(
        "CREATE FUNCTION boom(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS "
        "$$ BEGIN IF $1 = 666 THEN RAISE EXCEPTION 'boom %', $1; END IF; RETURN $1; END $$");
    exec(
        "CALL pgtrickle.create_stream_table(name => 'fragile', query => 'SELECT id, boom(amount) "
        "AS b FROM orders', "
        "schedule => '1s')");
    exec("INSERT INTO orders VALUES (666, 1, 666)");
    wait_for("SELECT status FROM pgtrickle.pgt_status WHERE pgt_name = 'fragile'", "suspended", 20);
    EXPECT_EQ(
        scalar("SELECT consecutive_errors FROM pgtrickle.pgt_status WHERE pgt_name = 'fragile'"),
        "3");
    EXPECT_NE(scalar("SELECT last_error FROM pgtrickle.pgt_status WHERE pgt_name = 'fragile'")
                  .find("boom 666"),
              std::string::npos);
    // Backoff: retries were spaced (1 s, then 2 s) rather than every tick.
    EXPECT_EQ(scalar("SELECT count(*) FROM pgtrickle.pgt_refresh_history WHERE mode = 'failed'"),
              "3");
    exec("DELETE FROM orders WHERE id = 666");
    exec("CALL pgtrickle.alter_stream_table('fragile', status => 'active')");
    wait_for(
        "SELECT status || ':' || consecutive_errors FROM pgtrickle.pgt_status WHERE pgt_name = "
        "'fragile'",
        "active:0", 10);
    expect_matches_query("fragile", "SELECT id, boom(amount) AS b FROM orders");
    set_global("pg_trickle.max_consecutive_errors", "DEFAULT");
}

TEST_F(Scheduler, terminated_scheduler_is_restarted_and_keeps_refreshing) {
    exec(
        "CALL pgtrickle.create_stream_table(name => 's', query => 'SELECT id FROM orders', "
        "schedule => '1s')");
    const std::string pid = [&] {
        wait_for("SELECT pgtrickle.scheduler_pid() IS NOT NULL", "t", 10);
        return scalar("SELECT pgtrickle.scheduler_pid()");
    }();
    exec("SELECT pg_terminate_backend(" + pid + ")");
    wait_for("SELECT pgtrickle.scheduler_pid() IS NOT NULL AND pgtrickle.scheduler_pid() <> " + pid,
             "t", 15);
    exec("INSERT INTO orders VALUES (4000, 1, 1)");
    wait_for("SELECT count(*) FROM s WHERE id = 4000", "1", 5);
}

TEST_F(Scheduler, drop_extension_stops_the_scheduler_and_drop_database_is_not_blocked) {
    exec(
        "CALL pgtrickle.create_stream_table(name => 's', query => 'SELECT id FROM orders', "
        "schedule => '1s')");
    wait_for("SELECT pgtrickle.scheduler_pid() IS NOT NULL", "t", 10);
    // A second database with a running scheduler can be dropped without FORCE.
    exec("CREATE DATABASE sched_victim");
    {
        pqxx::connection c(Server::instance().dsn("sched_victim"));
        pqxx::nontransaction t(c);
        t.exec("CREATE EXTENSION pg_trickle");
        t.exec("CREATE TABLE x (a int)");
        t.exec(
            "CALL pgtrickle.create_stream_table(name => 'sx', query => 'SELECT a FROM x', schedule "
            "=> '1s')");
        for (int i = 0;
             i < 250 && t.exec("SELECT pgtrickle.scheduler_pid() IS NULL")[0][0].as<bool>(); ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }
    exec("DROP DATABASE sched_victim");
    exec("DROP EXTENSION pg_trickle CASCADE");
    wait_for(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_trickle scheduler' AND "
        "datname = "
        "current_database()",
        "0", 10);
    exec("CREATE EXTENSION pg_trickle");  // for TearDown symmetry
}

TEST_F(Scheduler, scheduled_refreshes_work_whatever_the_default_isolation_level) {
    exec("SET default_transaction_isolation = 'read committed'");  // this session only
    set_global("default_transaction_isolation", "'repeatable read'");
    exec(
        "CALL pgtrickle.create_stream_table(name => 's', query => 'SELECT customer_id, count(*) AS "
        "n FROM orders GROUP BY 1', schedule => '1s')");
    wait_for("SELECT pgtrickle.scheduler_pid() IS NOT NULL", "t", 10);
    exec("INSERT INTO orders VALUES (3000, 77, 1)");
    wait_for("SELECT count(*) FROM s WHERE customer_id = 77", "1", 10);
    exec("ALTER SYSTEM RESET default_transaction_isolation");
    exec("SELECT pg_reload_conf()");
    EXPECT_EQ(scalar("SELECT count(*) FROM pgtrickle.pgt_refresh_history WHERE mode = 'failed'"),
              "0");
}

TEST_F(Scheduler, a_fault_in_any_early_guarded_call_is_rolled_back_and_the_worker_goes_on) {
    exec(
        "CALL pgtrickle.create_stream_table(name => 's', query => 'SELECT customer_id, count(*) AS "
        "n FROM orders GROUP BY 1', schedule => '1s')");
    wait_for("SELECT pgtrickle.scheduler_pid() IS NOT NULL", "t", 10);
    const std::string pid = scalar("SELECT pgtrickle.scheduler_pid()");
    const std::string postmaster = scalar("SELECT pg_postmaster_start_time()");
    exec("SET pg_trickle.fault_injection = ''");  // this session: no faults
    int key = 4000;
    for (const char* kind : {"pg_call:", "cpp_call:"}) {
        for (int n : {1, 2, 3, 5, 8, 13, 21}) {
            set_global("pg_trickle.fault_injection",
                       "'" + std::string(kind) + std::to_string(n) + "'");
            exec("INSERT INTO orders VALUES (" + std::to_string(++key) + ", 88, 1)");
            // The fault hits one call of the next tick; a later tick refreshes.
            wait_for("SELECT count(*) FROM s WHERE customer_id = 88 AND n = " +
                         std::to_string(key - 4000),
                     "1", 15);
        }
    }
    exec("ALTER SYSTEM RESET pg_trickle.fault_injection");
    exec("SELECT pg_reload_conf()");
    EXPECT_EQ(scalar("SELECT pgtrickle.scheduler_pid()"), pid) << "the worker was restarted";
    EXPECT_EQ(scalar("SELECT pg_postmaster_start_time()"), postmaster);
    exec("CALL pgtrickle.refresh_stream_table('s')");
    expect_matches_query("s", "SELECT customer_id, count(*) AS n FROM orders GROUP BY 1");
}

}  // namespace
}  // namespace pgt::test
