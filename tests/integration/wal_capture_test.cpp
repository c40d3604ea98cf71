// WAL capture of local tables (cdc_mode 'wal', docs/sources.md): a pgoutput slot on this
// server drained into the same change buffer rows as trigger capture. The differential
// oracle runs every shape in this mode too (differential_oracle_test.cpp, "_wal").
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "pg_fixture.h"

namespace pgt::test {
namespace {

class WalCapture : public PgTest {
  protected:
    void SetUp() override {
        PgTest::SetUp();
        exec("CREATE TABLE src (id int PRIMARY KEY, k int, v numeric, t text)");
        exec("INSERT INTO src SELECT g, g % 4, g * 1.5, 't' || g FROM generate_series(1, 50) g");
    }
    void TearDown() override {
        drop_leftover_slots();
        PgTest::TearDown();
    }
    std::string slot() { return scalar("SELECT slot_name FROM pgtrickle.pgt_worker_slots"); }

    /// Stream table `st` over `q`, differential, its sources captured through WAL.
    void create_wal_st(const std::string& q) {
        exec("CALL pgtrickle.create_stream_table('st', $q$" + q +
             "$q$, refresh_mode => 'differential', cdc_mode => 'wal')");
    }

    /// The modes of every refresh after the first (the create's), as "a,b".
    std::string modes_after_create() {
        return scalar(
            "SELECT string_agg(DISTINCT mode, ',') FROM pgtrickle.pgt_refresh_history WHERE "
            "history_id > (SELECT min(history_id) FROM pgtrickle.pgt_refresh_history)");
    }

    /// `src` ready for WAL capture, and `dim (k, label)` for it to join on k, likewise.
    void src_and_dim() {
        exec("ALTER TABLE src REPLICA IDENTITY FULL");
        exec("CREATE TABLE dim (k int PRIMARY KEY, label text)");
        exec("ALTER TABLE dim REPLICA IDENTITY FULL");
        exec("INSERT INTO dim SELECT g, 'l' || g FROM generate_series(0, 3) g");
    }

    /// Turn WAL source `src` into what 0.31.0 left: a slot and a publication named after
    /// its OID, neither recorded, its own slot and publication gone. In one transaction that
    /// holds the source's provisioning lock: the scheduler's poller sees it before or after,
    /// never half done. `publication_after_slot`: the publication is made after the slot,
    /// whose first transaction then cannot be decoded. Returns the old slot's name.
    std::string leave_0_31_0_state(bool publication_after_slot) {
        const std::string s = slot();
        std::string old = "pgtrickle_" + scalar("SELECT 'src'::regclass::oid");
        const std::string key =
            scalar("SELECT source_stable_name FROM pgtrickle.pgt_change_tracking");
        const std::string publication = "CREATE PUBLICATION " + old + " FOR TABLE src";
        if (!publication_after_slot) {
            exec(publication);
        }
        exec("BEGIN; SELECT pg_advisory_xact_lock(hashtext('pg_trickle slots ' || '" + key +
             "')); SELECT pg_create_logical_replication_slot('" + old +
             "', 'pgoutput'); DELETE FROM pgtrickle.pgt_worker_slots; DROP PUBLICATION " + s +
             "; " + (publication_after_slot ? publication + "; " : "") + "COMMIT");
        return old;
    }
};

TEST_F(WalCapture, refused_without_replica_identity_full_with_the_fix) {
    const std::string err = error_of(
        "CALL pgtrickle.create_stream_table('st', 'SELECT k, count(*) FROM src GROUP "
        "BY k', cdc_mode => 'wal')");
    EXPECT_NE(err.find("needs REPLICA IDENTITY FULL"), std::string::npos) << err;
    EXPECT_NE(err.find("ALTER TABLE public.src REPLICA IDENTITY FULL"), std::string::npos) << err;
    EXPECT_EQ(scalar("SELECT count(*) FROM pg_replication_slots WHERE database = "
                     "current_database()"),
              "0");
}

TEST_F(WalCapture, writes_reach_the_stream_table_through_the_slot_and_drop_removes_it) {
    exec("ALTER TABLE src REPLICA IDENTITY FULL");
    const std::string q =
        "SELECT k, count(*) AS n, sum(v) AS total, max(t) AS top FROM src GROUP BY k";
    create_wal_st(q);
    EXPECT_EQ(scalar("SELECT cdc_mode || ' ' || source_placement FROM "
                     "pgtrickle.pgt_change_tracking"),
              "wal local");
    const std::string s = slot();
    EXPECT_EQ(scalar("SELECT plugin FROM pg_replication_slots WHERE slot_name = '" + s + "'"),
              "pgoutput");
    // No triggers: writers pay nothing.
    EXPECT_EQ(scalar("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'src'::regclass"), "0");
    exec("INSERT INTO src VALUES (100, 1, 7, 'new'), (101, 9, NULL, NULL)");
    exec("UPDATE src SET v = v + 1, k = (k + 1) % 4 WHERE id % 3 = 0");
    exec("DELETE FROM src WHERE id % 5 = 0");
    exec("BEGIN; UPDATE src SET t = 'rolled back'; ROLLBACK");
    exec(
        "BEGIN; UPDATE src SET t = 'kept' WHERE id = 1; SAVEPOINT s; DELETE FROM src; ROLLBACK "
        "TO s; COMMIT");
    exec("CALL pgtrickle.refresh_stream_table('st')");
    expect_matches_query("st", q);
    EXPECT_EQ(scalar("SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables"), "differential");
    // A second refresh finds nothing new, and the slot was advanced to the frontier.
    exec("CALL pgtrickle.refresh_stream_table('st')");
    expect_matches_query("st", q);
    EXPECT_EQ(scalar("SELECT pgtrickle.pending_changes(pgt_id) FROM pgtrickle.pgt_stream_tables"),
              "0");
    exec("CALL pgtrickle.drop_stream_table('st')");
    EXPECT_EQ(scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '" + s + "'"),
              "0");
    EXPECT_EQ(scalar("SELECT count(*) FROM pg_publication WHERE pubname = '" + s + "'"), "0");
    EXPECT_EQ(scalar("SELECT count(*) FROM pgtrickle.pgt_worker_slots"), "0");
}

TEST_F(WalCapture, a_source_switches_to_wal_and_back_without_loss_or_doubles) {
    exec("ALTER TABLE src REPLICA IDENTITY FULL");
    const std::string q1 = "SELECT k, count(*) AS n, sum(v) AS total FROM src GROUP BY k";
    const std::string q2 = "SELECT id, k, t FROM src WHERE k <> 2";
    exec("CALL pgtrickle.create_stream_table('st1', $q$" + q1 +
         "$q$, refresh_mode => 'differential')");
    EXPECT_EQ(scalar("SELECT cdc_mode FROM pgtrickle.pgt_change_tracking"), "trigger");
    // Changes captured by the triggers, not yet consumed by st1...
    exec("INSERT INTO src VALUES (200, 2, 1, 'a')");
    exec("UPDATE src SET v = 0 WHERE id < 10");
    exec("CALL pgtrickle.create_stream_table('st2', $q$" + q2 +
         "$q$, refresh_mode => 'differential', cdc_mode => 'wal')");
    EXPECT_EQ(scalar("SELECT cdc_mode FROM pgtrickle.pgt_change_tracking"), "wal");
    EXPECT_EQ(scalar("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'src'::regclass"), "0");
    // ...and changes after the switch, through the slot.
    exec("DELETE FROM src WHERE id BETWEEN 20 AND 30");
    exec("INSERT INTO src VALUES (201, 3, 2, 'b')");
    exec("CALL pgtrickle.refresh_stream_table('st1')");
    exec("CALL pgtrickle.refresh_stream_table('st2')");
    expect_matches_query("st1", q1);
    expect_matches_query("st2", q2);
    EXPECT_EQ(scalar("SELECT string_agg(last_refresh_mode, ',' ORDER BY pgt_name) FROM "
                     "pgtrickle.pgt_stream_tables"),
              "differential,differential");
    // And back to triggers, with changes the slot holds and st1/st2 have not consumed.
    const std::string s = scalar("SELECT slot_name FROM pgtrickle.pgt_worker_slots");
    exec("UPDATE src SET k = 2 WHERE id BETWEEN 40 AND 45");
    exec("INSERT INTO src VALUES (202, 1, 5, 'c')");
    const std::string q3 = "SELECT id, v FROM src WHERE id > 30";
    exec("CALL pgtrickle.create_stream_table('st3', $q$" + q3 +
         "$q$, refresh_mode => 'differential', cdc_mode => 'trigger')");
    EXPECT_EQ(scalar("SELECT cdc_mode FROM pgtrickle.pgt_change_tracking"), "trigger");
    EXPECT_EQ(scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '" + s + "'"),
              "0");
    EXPECT_EQ(scalar("SELECT count(*) FROM pgtrickle.pgt_worker_slots"), "0");
    exec("DELETE FROM src WHERE id = 202");
    exec("UPDATE src SET v = v * 2 WHERE id > 40");
    for (const char* st : {"st1", "st2", "st3"}) {
        exec(std::string("CALL pgtrickle.refresh_stream_table('") + st + "')");
    }
    expect_matches_query("st1", q1);
    expect_matches_query("st2", q2);
    expect_matches_query("st3", q3);
    EXPECT_EQ(scalar("SELECT string_agg(last_refresh_mode, ',' ORDER BY pgt_name) FROM "
                     "pgtrickle.pgt_stream_tables"),
              "differential,differential,differential");
    exec("CALL pgtrickle.drop_stream_table('st1')");
    exec("CALL pgtrickle.drop_stream_table('st2')");
    exec("CALL pgtrickle.drop_stream_table('st3')");
}

TEST_F(WalCapture, a_refresh_in_a_transaction_that_wrote_the_source_is_refused) {
    exec("ALTER TABLE src REPLICA IDENTITY FULL");
    exec(
        "CALL pgtrickle.create_stream_table('st', 'SELECT k, count(*) AS n FROM src GROUP BY k', "
        "refresh_mode => 'differential', cdc_mode => 'wal')");
    auto c = connect();
    pqxx::work tx(*c);
    tx.exec("INSERT INTO src VALUES (300, 1, 1, 'x')");
    try {
        tx.exec("CALL pgtrickle.refresh_stream_table('st')");
        ADD_FAILURE() << "refresh after a write in the same transaction was not refused";
    } catch (const pqxx::sql_error& e) {
        EXPECT_NE(std::string(e.what()).find("whose changes are captured through WAL"),
                  std::string::npos)
            << e.what();
    }
    tx.abort();
    exec("CALL pgtrickle.refresh_stream_table('st')");
    expect_matches_query("st", "SELECT k, count(*) AS n FROM src GROUP BY k");
    exec("CALL pgtrickle.drop_stream_table('st')");
}

TEST_F(WalCapture, a_join_over_a_wal_source_stays_exact_under_a_concurrent_writer) {
    src_and_dim();
    const std::string q =
        "SELECT d.label, count(*) AS n, sum(s.v) AS total FROM src s JOIN dim d ON d.k = s.k "
        "GROUP BY d.label";
    create_wal_st(q);
    // A writer whose transaction commits while the refresh runs: the refresh does not wait
    // for it; it reads the rows and the buffer at one snapshot, with or without it, so the
    // stream table equals the query's result before the commit or the one after it.
    exec("INSERT INTO src VALUES (399, 2, 3, 'v')");
    auto w = connect();
    pqxx::work wtx(*w);
    wtx.exec("INSERT INTO src VALUES (400, 1, 5, 'w')");
    wtx.exec("UPDATE dim SET label = 'renamed' WHERE k = 2");
    exec("CREATE TABLE before_commit AS " + q);
    std::thread committer([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        wtx.commit();
    });
    exec("CALL pgtrickle.refresh_stream_table('st')");
    committer.join();
    exec("CREATE TABLE after_commit AS " + q);
    const std::string stored = "SELECT label, n, total FROM st";
    const long long to_before = multiset_diff(stored, "SELECT * FROM before_commit");
    const long long to_after = multiset_diff(stored, "SELECT * FROM after_commit");
    EXPECT_TRUE(to_before == 0 || to_after == 0)
        << "differs from the result before the commit by " << to_before
        << " rows, from the one after by " << to_after;
    EXPECT_NE(multiset_diff("SELECT * FROM before_commit", "SELECT * FROM after_commit"), 0);
    exec("CALL pgtrickle.refresh_stream_table('st')");
    expect_matches_query("st", q);
    exec("UPDATE src SET k = 3 WHERE k = 1");
    exec("CALL pgtrickle.refresh_stream_table('st')");
    expect_matches_query("st", q);
    EXPECT_EQ(scalar("SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables"), "differential");
    exec("CALL pgtrickle.drop_stream_table('st')");
}

// The delta of a join reads the other side's current rows. Those and the buffer agree by
// transaction visibility (drained rows carry their writers' ids): no lock holds writers
// off, not even while the refresh's transaction stays open.
TEST_F(WalCapture, a_differential_refresh_takes_no_lock_that_holds_writers) {
    src_and_dim();
    const std::string q =
        "SELECT d.label, count(*) AS n, sum(s.v) AS total FROM src s JOIN dim d ON d.k = s.k "
        "GROUP BY d.label";
    create_wal_st(q);
    exec("INSERT INTO src VALUES (600, 2, 7, 'x')");
    exec("UPDATE dim SET label = 'two' WHERE k = 2");
    auto r = connect();
    pqxx::work refresh(*r);
    refresh.exec("CALL pgtrickle.refresh_stream_table('st')");
    // The refresh's transaction is open: writers of both sources go on.
    auto w = connect();
    pqxx::nontransaction(*w).exec("SET lock_timeout = '2s'");
    pqxx::nontransaction(*w).exec("INSERT INTO src VALUES (601, 3, 1, 'y')");
    pqxx::nontransaction(*w).exec("UPDATE dim SET label = 'one' WHERE k = 1");
    pqxx::nontransaction(*w).exec("DELETE FROM src WHERE id = 5");
    refresh.commit();
    EXPECT_EQ(scalar("SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables"), "differential");
    exec("CALL pgtrickle.refresh_stream_table('st')");
    expect_matches_query("st", q);
    exec("CALL pgtrickle.drop_stream_table('st')");
}

// A transaction that stays open across refreshes holds none of them up (each finishes
// within a statement timeout), and its rows count once, in the first refresh after it
// commits.
TEST_F(WalCapture, a_transaction_left_open_across_refreshes_delays_none_and_counts_once) {
    src_and_dim();
    const std::string q =
        "SELECT d.label, count(*) AS n, min(s.t) AS first_t FROM src s JOIN dim d ON d.k = s.k "
        "GROUP BY d.label";
    create_wal_st(q);
    auto w = connect();
    pqxx::work open(*w);
    open.exec("INSERT INTO src SELECT g, g % 4, 1, 'a' || g FROM generate_series(700, 720) g");
    open.exec("UPDATE src SET k = 0 WHERE id <= 10");
    open.exec("UPDATE dim SET label = 'renamed' WHERE k = 3");
    exec("SET statement_timeout = '5s'");
    for (int i = 0; i < 3; ++i) {
        exec("INSERT INTO src VALUES (" + std::to_string(800 + i) + ", " + std::to_string(i) +
             ", 2, 'b')");
        exec("DELETE FROM src WHERE id = " + std::to_string(20 + i));
        exec("CALL pgtrickle.refresh_stream_table('st')");
        expect_matches_query("st", q);  // without the open transaction's rows
    }
    open.commit();
    exec("CALL pgtrickle.refresh_stream_table('st')");
    expect_matches_query("st", q);
    exec("CALL pgtrickle.refresh_stream_table('st')");
    expect_matches_query("st", q);
    EXPECT_EQ(modes_after_create(), "differential");
    exec("CALL pgtrickle.drop_stream_table('st')");
}

// A prepared transaction whose rows are in the WAL but not committed, with a savepoint
// rolled back inside it: a refresh before COMMIT PREPARED neither waits for it nor counts
// it; the first refresh after counts it once, without the rolled-back part.
TEST_F(WalCapture, a_prepared_transaction_counts_once_after_commit_prepared) {
    src_and_dim();
    const std::string q =
        "SELECT d.label, count(*) AS n, max(s.v) AS top FROM src s JOIN dim d ON d.k = s.k "
        "GROUP BY d.label";
    create_wal_st(q);
    const std::string gid = "pgt_wal_" + db_;
    {
        auto c = connect();
        pqxx::nontransaction tx(*c);
        tx.exec("BEGIN");
        tx.exec("INSERT INTO src VALUES (900, 1, 1000, 'p')");
        tx.exec("SAVEPOINT a");
        tx.exec("DELETE FROM src WHERE k = 2");
        tx.exec("ROLLBACK TO a");
        tx.exec("UPDATE dim SET label = 'prepared' WHERE k = 3");
        tx.exec("PREPARE TRANSACTION '" + gid + "'");
    }
    exec("SET statement_timeout = '10s'");
    exec("INSERT INTO src VALUES (901, 2, 7, 'q')");
    exec("CALL pgtrickle.refresh_stream_table('st')");
    expect_matches_query("st", q);
    exec("COMMIT PREPARED '" + gid + "'");
    exec("CALL pgtrickle.refresh_stream_table('st')");
    expect_matches_query("st", q);
    EXPECT_EQ(scalar("SELECT count(*) FROM st WHERE label = 'prepared'"), "1");
    exec("CALL pgtrickle.refresh_stream_table('st')");
    expect_matches_query("st", q);
    EXPECT_EQ(modes_after_create(), "differential");
    exec("CALL pgtrickle.drop_stream_table('st')");
}

// A WAL-captured source whose slot is not recorded (an installation upgraded from 0.31.0, or
// a catalog row deleted by hand) is never silently stale: refreshes fail naming it until a
// slot is provisioned (by hand or by the scheduler's poller), then its readers recompute.
TEST_F(WalCapture, a_source_without_a_recorded_slot_is_refused_then_provisioned) {
    exec("ALTER TABLE src REPLICA IDENTITY FULL");
    const std::string q = "SELECT k, count(*) AS n FROM src GROUP BY k";
    create_wal_st(q);
    const std::string s = slot();
    exec("DELETE FROM pgtrickle.pgt_worker_slots");
    exec("SELECT pg_drop_replication_slot('" + s + "')");
    // What 0.31.0 left: a slot named after the table's OID.
    const std::string old_slot = "pgtrickle_" + scalar("SELECT 'src'::regclass::oid");
    exec("SELECT pg_create_logical_replication_slot('" + old_slot + "', 'pgoutput')");
    exec("INSERT INTO src VALUES (500, 1, 1, 'unseen by any slot')");
    const std::string err = error_of("CALL pgtrickle.refresh_stream_table('st')");
    if (!err.empty()) {  // else the scheduler's poller provisioned it first
        EXPECT_NE(err.find("has no slot recorded"), std::string::npos) << err;
    }
    const std::string action = scalar(
        "SELECT string_agg(action, ',' ORDER BY action) FROM "
        "pgtrickle.provision_worker_slots('src')");
    EXPECT_TRUE(action == "created,dropped" || action == "present") << action;
    EXPECT_EQ(
        scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '" + old_slot + "'"),
        "0");
    exec("CALL pgtrickle.refresh_stream_table('st')");
    expect_matches_query("st", q);
    EXPECT_EQ(scalar("SELECT count(*) FROM pgtrickle.pgt_refresh_history WHERE mode = 'full' "
                     "AND reason = 'the source had no slot recorded; readers fully refreshed'"),
              "1");
    exec("CALL pgtrickle.drop_stream_table('st')");
}

// Writers that keep inserting and updating `src` in multi-statement transactions (each
// first writes another table, so it holds a transaction id while it waits for a lock on
// `src`) until stopped.
class Writers {
  public:
    /// `pause`: between two transactions of a writer.
    explicit Writers(const std::function<std::unique_ptr<pqxx::connection>()>& connect,
                     std::chrono::milliseconds pause = std::chrono::milliseconds(0)) {
        for (int w = 0; w < 2; ++w) {
            threads_.emplace_back([this, connect, w, pause] {
                auto c = connect();
                int id = 100000 * (w + 1);
                while (!stop_) {
                    try {
                        pqxx::work x(*c);
                        x.exec("INSERT INTO side VALUES (" + std::to_string(id) + ")");
                        x.exec("INSERT INTO src VALUES (" + std::to_string(id) + ", " +
                               std::to_string(id % 4) + ", 1, 'w')");
                        x.exec("UPDATE src SET v = v + 1 WHERE id % 13 = " +
                               std::to_string(id % 13));
                        x.commit();
                        ++writes_;
                    } catch (const pqxx::failure&) {
                        // a deadlock (between the writers, or with a create that locks
                        // both tables in the other order): nothing committed
                    }
                    ++id;
                    std::this_thread::sleep_for(pause);
                }
            });
        }
    }
    ~Writers() { stop(); }
    int stop() {
        stop_ = true;
        for (auto& t : threads_) {
            if (t.joinable()) {
                t.join();
            }
        }
        return writes_;
    }

  private:
    std::atomic<bool> stop_{false};
    std::atomic<int> writes_{0};
    std::vector<std::thread> threads_;
};

// A slot is created before the source is locked (a new slot waits for every running
// transaction, and a writer holding one may be waiting for that lock), so its frontier is
// where the lock was taken: creating and switching under write load loses and doubles
// nothing, and does not hang.
TEST_F(WalCapture, created_and_switched_under_concurrent_writers_nothing_lost_or_doubled) {
    exec("ALTER TABLE src REPLICA IDENTITY FULL");
    exec("CREATE TABLE side (id int)");
    const std::string q = "SELECT k, count(*) AS n, sum(v) AS total FROM src GROUP BY k";
    Writers writers([this] { return connect(); });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    exec("SET statement_timeout = '60s'");
    // Two sources made at once (a writer holding an id while it waits for the first one's
    // lock must not hold up the second one's slot).
    exec("ALTER TABLE side REPLICA IDENTITY FULL");
    const std::string join_q =
        "SELECT s.k, count(*) AS n FROM src s JOIN side d ON d.id = s.id GROUP BY s.k";
    // Like any transaction that locks two tables, the create can be the victim of a
    // deadlock with a writer that holds the other one; it is then rolled back whole.
    std::string err = "deadlock";
    for (int i = 0; i < 5 && err.find("deadlock") != std::string::npos; ++i) {
        err = error_of("CALL pgtrickle.create_stream_table('st_join', $q$" + join_q +
                       "$q$, refresh_mode => 'differential', cdc_mode => 'wal')");
    }
    ASSERT_EQ(err, "");
    // Created through WAL, switched to triggers, switched back: each under load.
    const std::vector<std::pair<std::string, std::string>> made = {
        {"st_wal", "wal"}, {"st_trigger", "trigger"}, {"st_wal_again", "wal"}};
    for (const auto& [name, mode] : made) {
        exec("CALL pgtrickle.create_stream_table('" + name + "', $q$" + q +
             "$q$, refresh_mode => 'differential', cdc_mode => '" + mode + "')");
        EXPECT_EQ(scalar("SELECT cdc_mode FROM pgtrickle.pgt_change_tracking WHERE source_relid "
                         "= 'src'::regclass"),
                  mode);
        std::this_thread::sleep_for(std::chrono::milliseconds(150));
        exec("CALL pgtrickle.refresh_stream_table('st_wal')");
    }
    EXPECT_GT(writers.stop(), 10);
    for (const auto& [name, mode] : made) {
        exec("CALL pgtrickle.refresh_stream_table('" + name + "')");
        expect_matches_query(name, q);
    }
    exec("CALL pgtrickle.refresh_stream_table('st_join')");
    expect_matches_query("st_join", join_q);
    EXPECT_EQ(scalar("SELECT string_agg(DISTINCT last_refresh_mode, ',') FROM "
                     "pgtrickle.pgt_stream_tables"),
              "differential");
    for (const auto& [name, mode] : made) {
        exec("CALL pgtrickle.drop_stream_table('" + name + "')");
    }
    exec("CALL pgtrickle.drop_stream_table('st_join')");
}

// Differential refreshes of a join (its delta reads the source's rows) while writers run
// multi-statement transactions: none waits for them, and once they stop, the next refresh
// equals the query.
TEST_F(WalCapture, refreshes_of_a_join_during_concurrent_writers_converge) {
    exec("ALTER TABLE src REPLICA IDENTITY FULL");
    exec("CREATE TABLE side (id int)");
    exec("ALTER TABLE side REPLICA IDENTITY FULL");
    const std::string q =
        "SELECT s.k, count(*) AS n, sum(s.v) AS total FROM src s JOIN side d ON d.id = s.id "
        "GROUP BY s.k";
    create_wal_st(q);
    // Paced: every transaction rewrites a 13th of the growing table with whole old rows in
    // the WAL, which each drain decodes; unpaced, the WAL outgrows what a drain can decode
    // on a small test machine.
    Writers writers([this] { return connect(); }, std::chrono::milliseconds(5));
    exec("SET statement_timeout = '10s'");
    for (int i = 0; i < 10; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        exec("CALL pgtrickle.refresh_stream_table('st')");
    }
    EXPECT_GT(writers.stop(), 10);
    exec("CALL pgtrickle.refresh_stream_table('st')");
    expect_matches_query("st", q);
    EXPECT_EQ(modes_after_create(), "differential");
    exec("CALL pgtrickle.drop_stream_table('st')");
}

// What a 0.31.0 installation left (a slot and a publication named after the table's OID,
// neither recorded) is taken over: the old slot's unread changes are drained into the
// buffer, the new slot starts exactly where it ends, the old one goes. Under write load.
TEST_F(WalCapture, a_0_31_0_slot_is_taken_over_under_concurrent_writers) {
    exec("ALTER TABLE src REPLICA IDENTITY FULL");
    exec("CREATE TABLE side (id int)");
    const std::string q = "SELECT k, count(*) AS n, sum(v) AS total FROM src GROUP BY k";
    create_wal_st(q);
    const std::string s = slot();
    const std::string old = leave_0_31_0_state(/*publication_after_slot=*/false);
    exec("INSERT INTO src VALUES (500, 1, 1, 'only in the old slot')");
    exec("UPDATE src SET v = v * 2 WHERE id % 3 = 0");
    Writers writers([this] { return connect(); });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    exec("SET statement_timeout = '60s'");
    // Taken over (by this call, or by the scheduler's poller first), then the old slot is
    // dropped by the next call once the takeover has committed (the poller's, when its
    // scheduler runs by then: a tick failure fails the suite at integration.server.stop).
    exec("SELECT count(*) FROM pgtrickle.provision_worker_slots('src')");
    std::string left = "1";
    for (int i = 0; i < 30 && left != "0"; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        left = scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '" + old + "'");
    }
    exec("SELECT count(*) FROM pgtrickle.provision_worker_slots('src')");
    EXPECT_GT(writers.stop(), 10);
    EXPECT_EQ(scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '" + old + "'"),
              "0");
    EXPECT_EQ(scalar("SELECT count(*) FROM pg_publication WHERE pubname = '" + old + "'"), "0");
    EXPECT_EQ(scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '" + s + "'"),
              "1");
    EXPECT_EQ(scalar("SELECT count(*) FROM pg_publication WHERE pubname = '" + s + "'"), "1");
    exec("CALL pgtrickle.refresh_stream_table('st')");
    expect_matches_query("st", q);
    EXPECT_EQ(scalar("SELECT count(*) FROM pgtrickle.pgt_refresh_history WHERE mode = 'full'"),
              "1");  // the initial population only
    exec("CALL pgtrickle.drop_stream_table('st')");
}

// A slot is not transactional: one created by a create that then fails (its initial
// population divides by zero), in a transaction or in a subtransaction rolled back by an
// exception handler, is dropped with it; one of a subtransaction that commits is kept.
TEST_F(WalCapture, slots_of_a_failed_create_are_dropped_with_its_transaction) {
    exec("ALTER TABLE src REPLICA IDENTITY FULL");
    const std::string failing =
        "CALL pgtrickle.create_stream_table('st', $q$SELECT k, 1 / (k - k) AS x FROM src$q$, "
        "cdc_mode => 'wal')";
    const std::string slots =
        "SELECT count(*) FROM pg_replication_slots WHERE database = current_database()";
    const std::string err = error_of(failing);
    EXPECT_NE(err.find("division by zero"), std::string::npos) << err;
    EXPECT_EQ(scalar(slots), "0");
    exec("DO $$ BEGIN " + failing + "; EXCEPTION WHEN division_by_zero THEN NULL; END $$");
    EXPECT_EQ(scalar(slots), "0");
    EXPECT_EQ(scalar("SELECT count(*) FROM pgtrickle.pgt_worker_slots"), "0");
    const std::string q = "SELECT k, count(*) AS n FROM src GROUP BY k";
    exec("DO $$ BEGIN CALL pgtrickle.create_stream_table('st', $q$" + q +
         "$q$, cdc_mode => 'wal'); EXCEPTION WHEN division_by_zero THEN NULL; END $$");
    EXPECT_EQ(scalar(slots), "1");
    exec("INSERT INTO src VALUES (600, 3, 1, 'after')");
    exec("CALL pgtrickle.refresh_stream_table('st')");
    expect_matches_query("st", q);
    exec("CALL pgtrickle.drop_stream_table('st')");
    EXPECT_EQ(scalar(slots), "0");
}

// A 0.31.0 slot that cannot be read (here: its publication was created after it, so its
// first transaction cannot be decoded) is given up, never a stuck source: its readers
// recompute once, with the reason recorded, and it is dropped.
TEST_F(WalCapture, a_0_31_0_slot_that_cannot_be_read_is_given_up_and_its_readers_recompute) {
    exec("ALTER TABLE src REPLICA IDENTITY FULL");
    const std::string q = "SELECT k, count(*) AS n, sum(v) AS total FROM src GROUP BY k";
    create_wal_st(q);
    const std::string old = leave_0_31_0_state(/*publication_after_slot=*/true);
    exec("INSERT INTO src VALUES (500, 1, 1, 'only in the old slot')");
    exec("SELECT count(*) FROM pgtrickle.provision_worker_slots('src')");
    exec("SELECT count(*) FROM pgtrickle.provision_worker_slots('src')");
    EXPECT_EQ(scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '" + old + "'"),
              "0");
    EXPECT_EQ(scalar("SELECT count(*) FROM pg_publication WHERE pubname = '" + old + "'"), "0");
    exec("INSERT INTO src VALUES (501, 2, 2, 'through the new slot')");
    exec("CALL pgtrickle.refresh_stream_table('st')");
    expect_matches_query("st", q);
    EXPECT_EQ(scalar("SELECT count(*) FROM pgtrickle.pgt_refresh_history WHERE mode = 'full' AND "
                     "reason LIKE 'slot " +
                     old + " could not be taken over (%publication%'"),
              "1");
    exec("CALL pgtrickle.drop_stream_table('st')");
}

}  // namespace
}  // namespace pgt::test
