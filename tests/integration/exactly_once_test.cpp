// Exactly once through slots in every transaction shape (docs/citus.md, "How changes travel"):
// a slot is advanced only to a frontier committed before the current transaction, and a slot
// confirmed past the committed frontier is treated as lost. Local tables captured through
// WAL (cdc_mode 'wal') use the same slots and drains as Citus workers.
#include "pg_fixture.h"

namespace pgt::test {
namespace {

class ExactlyOnce : public PgTest {
  protected:
    void SetUp() override {
        PgTest::SetUp();
        exec("CREATE TABLE src (id int PRIMARY KEY, v int NOT NULL)");
        exec("ALTER TABLE src REPLICA IDENTITY FULL");
        exec("INSERT INTO src SELECT g, g FROM generate_series(1, 20) g");
    }
    void TearDown() override {
        drop_leftover_slots();
        PgTest::TearDown();
    }
    /// How far the slot confirmed, and the frontier pg_trickle committed for it.
    std::string slot_state() {
        return scalar(
            "SELECT s.confirmed_flush_lsn::text || ' / ' || w.worker_frontier::text FROM "
            "pgtrickle.pgt_worker_slots w JOIN pg_replication_slots s ON s.slot_name = "
            "w.slot_name");
    }
    /// Another consumer reads the slot past what pg_trickle committed, while `holder` holds
    /// the slot's row (so that the scheduler's poller cannot drain these changes first);
    /// its ROLLBACK lets go.
    void consume_slot_past_the_frontier(pqxx::nontransaction& holder) {
        holder.exec("BEGIN");
        holder.exec("SELECT 1 FROM pgtrickle.pgt_worker_slots FOR UPDATE");
        // Flushed at commit: a slot is advanced only as far as the WAL is flushed.
        exec("SET synchronous_commit = on");
        exec("INSERT INTO src SELECT g, g FROM generate_series(200, 230) g");
        exec(
            "SELECT pg_replication_slot_advance(slot_name, pg_current_wal_flush_lsn()) FROM "
            "pgtrickle.pgt_worker_slots");
    }
    /// After a slot consumed past the frontier: recreated (by the poller, or here when
    /// `recreate`), "st" recomputed once, saying why, and equal to `q`.
    void expect_recomputed_once(const std::string& q, bool recreate) {
        if (recreate) {
            exec("SELECT count(*) FROM pgtrickle.provision_worker_slots('src')");
            exec("CALL pgtrickle.refresh_stream_table('st')");
        }
        expect_matches_query("st", q);
        EXPECT_EQ(scalar("SELECT count(*) FROM pgtrickle.pgt_refresh_history WHERE mode = 'full' "
                         "AND reason LIKE '%past the frontier pg_trickle committed%'"),
                  "1");
    }
    bool slot_within_committed_frontier() {
        return scalar(
                   "SELECT s.confirmed_flush_lsn <= w.worker_frontier FROM "
                   "pgtrickle.pgt_worker_slots w JOIN pg_replication_slots s ON s.slot_name = "
                   "w.slot_name") == "t";
    }
};

TEST_F(ExactlyOnce, a_reader_whose_refresh_failed_transiently_keeps_its_changes_in_the_buffer) {
    // Two readers of one source. The scheduler records a transient failure (a node, a slot,
    // a timeout) as status 'error' without a full refresh to come: nothing was applied, the
    // frontier did not move, and the next attempt goes on from there. The other reader's
    // refreshes clean the buffer meanwhile: they must keep the rows the failed one has not
    // consumed (they were deleted, and the failed reader then found nothing to apply, stale
    // for good). For each capture mode.
    for (const std::string mode : {"trigger", "wal"}) {
        SCOPED_TRACE(mode);
        const std::string base = mode == "wal" ? "10000" : "1000";
        exec("CALL pgtrickle.create_stream_table('ok_" + mode +
             "', 'SELECT v % 3 AS k, count(*) AS n FROM src GROUP BY 1', refresh_mode => "
             "'differential', cdc_mode => '" +
             mode + "', schedule => NULL)");
        exec("CALL pgtrickle.create_stream_table('failing_" + mode +
             "', 'SELECT v % 3 AS k, count(*) AS n FROM src GROUP BY 1', refresh_mode => "
             "'differential', cdc_mode => '" +
             mode + "', schedule => NULL)");
        // What record_refresh_failure writes for a transient failure.
        exec(
            "UPDATE pgtrickle.pgt_stream_tables SET status = 'error', consecutive_errors = 1, "
            "last_error = 'node unreachable' WHERE pgt_name = 'failing_" +
            mode + "'");
        exec("INSERT INTO src SELECT g, g FROM generate_series(" + base + ", " + base + " + 10) g");
        exec("DELETE FROM src WHERE id < 5 OR id = " + base);
        exec("CALL pgtrickle.refresh_stream_table('ok_" + mode + "')");
        exec("INSERT INTO src SELECT g, g FROM generate_series(" + base + " + 100, " + base +
             " + 103) g");
        exec("CALL pgtrickle.refresh_stream_table('ok_" + mode + "')");
        exec("CALL pgtrickle.refresh_stream_table('failing_" + mode + "')");
        EXPECT_EQ(scalar("SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables WHERE "
                         "pgt_name = 'failing_" +
                         mode + "'"),
                  "differential");
        expect_matches_query("failing_" + mode,
                             "SELECT v % 3 AS k, count(*) AS n FROM src GROUP BY 1");
        expect_matches_query("ok_" + mode, "SELECT v % 3 AS k, count(*) AS n FROM src GROUP BY 1");
        exec("CALL pgtrickle.drop_stream_table('ok_" + mode + "')");
        exec("CALL pgtrickle.drop_stream_table('failing_" + mode + "')");
    }
}

TEST_F(ExactlyOnce, two_drains_then_rollback_keep_every_change_in_the_slot) {
    const std::string q = "SELECT id, v FROM src";
    exec("CALL pgtrickle.create_stream_table('st', $q$" + q +
         "$q$, refresh_mode => 'differential', cdc_mode => 'wal')");
    auto tx = connect();
    pqxx::nontransaction a(*tx);
    a.exec("BEGIN");
    exec("INSERT INTO src SELECT g, g FROM generate_series(100, 140) g");  // committed
    a.exec("SELECT count(*) FROM pgtrickle.poll_worker_slots()");
    exec("UPDATE src SET v = v + 1 WHERE id % 2 = 0");
    // The second drain in this transaction must not advance the slot to the frontier the
    // first one stored: that frontier is undone by the rollback.
    a.exec("SELECT count(*) FROM pgtrickle.poll_worker_slots()");
    a.exec("ROLLBACK");
    EXPECT_TRUE(slot_within_committed_frontier()) << slot_state();
    exec("CALL pgtrickle.refresh_stream_table('st')");
    expect_matches_query("st", q);
    EXPECT_EQ(scalar("SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables"), "differential");
    exec("CALL pgtrickle.drop_stream_table('st')");
}

TEST_F(ExactlyOnce, a_refresh_that_drains_then_turns_full_then_fails_loses_nothing) {
    const std::string q = "SELECT id, 100 / v AS x FROM src";
    exec("CALL pgtrickle.create_stream_table('st', $q$" + q +
         "$q$, refresh_mode => 'differential', cdc_mode => 'wal')");
    // A TRUNCATE marker makes the next refresh a full one, after its first drain; the full
    // recomputation then fails (division by zero) and rolls everything back.
    exec("TRUNCATE src");
    exec("INSERT INTO src VALUES (1, 0), (2, 2), (3, 3)");
    const std::string err = error_of("CALL pgtrickle.refresh_stream_table('st')");
    EXPECT_NE(err.find("division by zero"), std::string::npos) << err;
    EXPECT_TRUE(slot_within_committed_frontier()) << slot_state();
    exec("DELETE FROM src WHERE v = 0");
    exec("INSERT INTO src VALUES (4, 4)");
    exec("CALL pgtrickle.refresh_stream_table('st')");
    expect_matches_query("st", q);
    exec("INSERT INTO src VALUES (5, 5); UPDATE src SET v = 50 WHERE id = 2");
    exec("CALL pgtrickle.refresh_stream_table('st')");
    expect_matches_query("st", q);
    EXPECT_EQ(scalar("SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables"), "differential");
    exec("CALL pgtrickle.drop_stream_table('st')");
}

// What a slot confirmed past the committed frontier skipped is in no buffer: a coordinator
// restored from a backup (its catalog older than its nodes' slots), or another consumer of
// the slot. Treated as a lost slot: recreated, readers recomputed, never a silent gap.
TEST_F(ExactlyOnce, a_slot_confirmed_past_the_committed_frontier_is_treated_as_lost) {
    const std::string q = "SELECT id, v FROM src";
    exec("CALL pgtrickle.create_stream_table('st', $q$" + q +
         "$q$, refresh_mode => 'differential', cdc_mode => 'wal')");
    auto holder = connect();
    pqxx::nontransaction h(*holder);
    consume_slot_past_the_frontier(h);
    EXPECT_FALSE(slot_within_committed_frontier()) << slot_state();
    h.exec("ROLLBACK");
    const std::string err = error_of("CALL pgtrickle.refresh_stream_table('st')");
    // Unless the scheduler's poller found the slot first and recreated it: then the refresh
    // recomputes. Either way the reason names what happened.
    if (!err.empty()) {
        EXPECT_TRUE(err.find("past the frontier pg_trickle committed") != std::string::npos ||
                    err.find("is being recreated by another session") != std::string::npos)
            << err;
    }
    expect_recomputed_once(q, /*recreate=*/!err.empty());
    exec("INSERT INTO src VALUES (300, 3)");
    exec("CALL pgtrickle.refresh_stream_table('st')");
    expect_matches_query("st", q);
    EXPECT_EQ(scalar("SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables"), "differential");
    exec("CALL pgtrickle.drop_stream_table('st')");
}

// The scheduler's poller found the slot lost first and is recreating it: a drain that reads
// the node meanwhile sees the new slot, not the lost one, and says what is happening instead
// of blaming a consumer that does not exist.
TEST_F(ExactlyOnce, a_drain_while_another_session_recreates_the_slot_names_it) {
    const std::string q = "SELECT id, v FROM src";
    exec("CALL pgtrickle.create_stream_table('st', $q$" + q +
         "$q$, refresh_mode => 'differential', cdc_mode => 'wal')");
    const std::string key = scalar("SELECT source_stable_name FROM pgtrickle.pgt_worker_slots");
    auto rows_holder = connect();
    pqxx::nontransaction r(*rows_holder);
    consume_slot_past_the_frontier(r);
    // Another session is provisioning the source's slots (what the poller does once it finds
    // the slot lost); the poller itself waits behind it.
    auto provisioner = connect();
    pqxx::nontransaction p(*provisioner);
    p.exec("BEGIN");
    p.exec("SELECT pg_advisory_xact_lock(hashtext('pg_trickle slots ' || " + p.quote(key) + "))");
    r.exec("ROLLBACK");
    const std::string err = error_of("CALL pgtrickle.refresh_stream_table('st')");
    EXPECT_NE(err.find(" on node "), std::string::npos) << err;
    EXPECT_NE(err.find("is being recreated by another session"), std::string::npos) << err;
    EXPECT_EQ(err.find("past the frontier"), std::string::npos) << err;
    p.exec("ROLLBACK");
    // Once it is free, the slot is recreated (by the poller or here) and the readers recompute.
    expect_recomputed_once(q, /*recreate=*/true);
    exec("CALL pgtrickle.drop_stream_table('st')");
}

}  // namespace
}  // namespace pgt::test
