// Nothing a caller plants runs with another role's rights (docs/security.md, "Search path and
// the extension owner"). A plain role with what docs/security.md says a stream table owner
// needs plants operators, functions, aggregates and domains ahead of pg_catalog
// (tests/support/search_path_traps.sql) and calls every entry point with that search_path;
// the database's own default search_path is poisoned too, for the scheduler and the
// superuser's calls. Its sources also have columns of its own domain type whose CHECK is a
// trap (capture copies such values as the extension owner). Every trap logs current_user:
// a row naming another role than the planter is an escalation.
#include <chrono>
#include <fstream>
#include <iterator>
#include <regex>
#include <thread>

#include "pg_fixture.h"

namespace pgt::test {
namespace {

class SearchPathTraps : public PgTest {
  protected:
    void SetUp() override {
        PgTest::SetUp();
        const std::string suffix = db_.substr(db_.size() > 8 ? db_.size() - 8 : 0);
        role_ = "pgt_evil_" + suffix;
        schema_ = "evil";
        {
            pqxx::connection admin(Server::instance().dsn("postgres"));
            pqxx::nontransaction tx(admin);
            tx.exec("DROP ROLE IF EXISTS " + role_);
            tx.exec("CREATE ROLE " + role_ + " LOGIN");
        }
        exec("CREATE SCHEMA " + schema_ + " AUTHORIZATION " + role_);
        exec("CREATE SCHEMA app AUTHORIZATION " + role_);
        exec("GRANT USAGE ON SCHEMA pgtrickle TO " + role_);
        std::ifstream in(PGTRICKLE_SOURCE_DIR "/tests/support/search_path_traps.sql");
        std::string traps((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        ASSERT_FALSE(traps.empty());
        traps = std::regex_replace(traps, std::regex("__SCHEMA__"), schema_);
        traps = std::regex_replace(traps, std::regex("__ROLE__"), role_);
        exec("SET ROLE " + role_ + "; SET client_min_messages = warning; " + traps +
             "; RESET ROLE; RESET search_path; RESET client_min_messages");
        ASSERT_GT(std::stoi(scalar("SELECT count(*) FROM pg_operator WHERE oprnamespace = '" +
                                   schema_ + "'::regnamespace")),
                  100);
    }
    void TearDown() override {
        // Also when the test failed and its database is kept: the role can then go.
        drop_leftover_slots();
        exec("REASSIGN OWNED BY " + role_ + " TO CURRENT_USER; DROP OWNED BY " + role_);
        PgTest::TearDown();
        pqxx::connection admin(Server::instance().dsn("postgres"));
        pqxx::nontransaction tx(admin);
        tx.exec("DROP ROLE IF EXISTS " + role_);
    }

    /// A session of the planter with its traps first on its search_path.
    std::unique_ptr<pqxx::connection> planter() {
        auto c = connect();
        pqxx::nontransaction tx(*c);
        tx.exec("SET ROLE " + role_ + "; SET search_path = " + schema_ + ", pg_catalog");
        return c;
    }
    /// A superuser session with the same search_path.
    std::unique_ptr<pqxx::connection> poisoned_superuser() {
        auto c = connect();
        pqxx::nontransaction tx(*c);
        tx.exec("SET search_path = " + schema_ + ", pg_catalog");
        return c;
    }
    static void run(pqxx::connection& c, const std::string& sql) {
        pqxx::nontransaction tx(c);
        tx.exec(sql);
    }
    /// Traps that ran as another role than the planter: "role: what" lines ("" if none).
    std::string escalations() {
        return scalar(
            "SELECT coalesce(string_agg(DISTINCT who || ' (' || app || '): ' || what, E'\\n'), "
            "'') FROM " +
            schema_ + ".log WHERE who <> '" + role_ + "'");
    }
    bool planter_is_superuser() {
        return scalar("SELECT rolsuper FROM pg_roles WHERE rolname = '" + role_ + "'") == "t";
    }
    void expect_no_escalation(const std::string& step) {
        EXPECT_EQ(escalations(), "") << "after: " << step;
        EXPECT_FALSE(planter_is_superuser()) << "after: " << step;
    }
    double wait_for(const std::string& sql, const std::string& want, double seconds) {
        const auto start = std::chrono::steady_clock::now();
        for (;;) {
            const double took =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            if (scalar(sql) == want) {
                return took;
            }
            if (took > seconds) {
                ADD_FAILURE() << "timed out waiting for " << sql << " = " << want;
                return took;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }

    std::string role_, schema_;
};

// The planter's own queries are written pg_catalog-qualified here (so that the stream tables
// stay differential); its session still resolves every unqualified name to its traps.
const char* const kGrouped =
    "SELECT k, pg_catalog.count(*) AS n, pg_catalog.sum(v) AS s FROM app.t GROUP BY k";
const char* const kJoined =
    "SELECT t.k, t.v, d.label FROM app.t AS t JOIN app.d AS d ON t.k OPERATOR(pg_catalog.=) d.k";

TEST_F(SearchPathTraps, every_sql_entry_point_runs_none_of_the_callers_code_as_another_role) {
    auto evil = planter();
    run(*evil,
        "CREATE TABLE app.t (id pg_catalog.int4 PRIMARY KEY, k pg_catalog.int4, v pg_catalog.int8, "
        "note pg_catalog.text); ALTER TABLE app.t REPLICA IDENTITY FULL; "
        "CREATE TABLE app.d (k pg_catalog.int4 PRIMARY KEY, label pg_catalog.text); ALTER TABLE "
        "app.d REPLICA IDENTITY FULL; "
        "INSERT INTO app.t SELECT i, i % 5, i, 'x' FROM pg_catalog.generate_series(1, 50) i; "
        "INSERT INTO app.d SELECT i, 'l' FROM pg_catalog.generate_series(0, 4) i");
    exec("TRUNCATE " + schema_ + ".log");  // the planter's own set-up ran its own traps
    run(*evil,
        std::string("CALL pgtrickle.create_stream_table(name => 'app.grouped', query => $$") +
            kGrouped + "$$, refresh_mode => 'differential')");
    expect_no_escalation("create_stream_table (trigger capture)");
    run(*evil, std::string("CALL pgtrickle.create_stream_table(name => 'app.joined', query => $$") +
                   kJoined + "$$, refresh_mode => 'differential', cdc_mode => 'wal')");
    expect_no_escalation("create_stream_table (WAL capture)");
    run(*evil,
        "INSERT INTO app.t VALUES (100, 1, 7, 'y'); UPDATE app.t SET v = v + 1 WHERE id < 10; "
        "DELETE FROM app.t WHERE id = 20");
    run(*evil, "CALL pgtrickle.refresh_stream_table('app.grouped')");
    run(*evil, "CALL pgtrickle.refresh_stream_table('app.joined')");
    expect_no_escalation("refresh_stream_table (differential)");
    run(*evil, "CALL pgtrickle.refresh_stream_table('app.grouped', \"full\" => true)");
    expect_no_escalation("refresh_stream_table (full)");
    run(*evil,
        "SELECT pgtrickle.pending_changes(1); SELECT pgtrickle.pending_changes(2); "
        "SELECT pgtrickle.source_stable_name('app.t'::regclass); "
        "SELECT pgtrickle.schedule_interval('5s'); SELECT pgtrickle.scheduler_pid()");
    // The status views, read by a superuser whose search_path has the traps first.
    run(*poisoned_superuser(),
        "SELECT * FROM pgtrickle.pgt_status; SELECT * FROM pgtrickle.pgt_source_status; "
        "SELECT * FROM pgtrickle.citus_status");
    run(*evil, std::string("SELECT pgtrickle.explain_stream_table($$") + kGrouped + "$$)");
    run(*poisoned_superuser(),
        "SELECT pgtrickle.handle_vp_promoted('{\"table\": \"app.t\", \"shard_count\": 2, "
        "\"shard_table_prefix\": \"app.t_\", \"predicate_id\": 1}')");
    expect_no_escalation("status views and functions, explain, handle_vp_promoted");
    run(*evil, "CALL pgtrickle.alter_stream_table('app.grouped', schedule => '1h')");
    run(*evil, "CALL pgtrickle.alter_stream_table('app.grouped', status => 'suspended')");
    run(*evil, "CALL pgtrickle.alter_stream_table('app.grouped', status => 'active')");
    run(*evil, std::string("CALL pgtrickle.alter_stream_table('app.grouped', query => $$") +
                   kGrouped + " HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>) 0$$)");
    expect_no_escalation("alter_stream_table");
    // DDL on a source fires the event triggers; TRUNCATE the utility hook.
    run(*evil, "ALTER TABLE app.t ADD COLUMN extra pg_catalog.int4 DEFAULT 3");
    run(*evil, "ALTER TABLE app.t RENAME COLUMN note TO remark");
    run(*evil, "CREATE TABLE app.scratch (a pg_catalog.int4); DROP TABLE app.scratch");
    run(*evil, "TRUNCATE app.d");
    run(*evil, "CALL pgtrickle.refresh_stream_table('app.joined')");
    expect_no_escalation("DDL and TRUNCATE on sources");
    // Functions revoked from PUBLIC, called by a superuser with the poisoned search_path.
    auto su = poisoned_superuser();
    run(*su, "SELECT * FROM pgtrickle.poll_worker_slots()");
    run(*su, "SELECT * FROM pgtrickle.provision_worker_slots()");
    run(*su, "SELECT * FROM pgtrickle.drop_orphan_worker_slots()");
    run(*su, "CALL pgtrickle.refresh_stream_table('app.grouped')");
    expect_no_escalation("slot functions and a refresh by a superuser with the planter's path");
    run(*evil, "CALL pgtrickle.drop_stream_table('app.joined')");
    run(*evil, "CALL pgtrickle.drop_stream_table('app.grouped')");
    expect_no_escalation("drop_stream_table");
    expect_matches_query("app.t", "SELECT * FROM app.t");  // the session is still usable
}

TEST_F(SearchPathTraps, the_scheduler_with_a_poisoned_database_search_path_runs_no_trap) {
    // The database owner's default search_path is what a background worker gets.
    exec("ALTER DATABASE " + db_ + " SET search_path = " + schema_ + ", pg_catalog");
    auto evil = planter();
    run(*evil,
        "CREATE TABLE app.t (id pg_catalog.int4 PRIMARY KEY, k pg_catalog.int4, v pg_catalog.int8, "
        "note pg_catalog.text); ALTER TABLE app.t REPLICA IDENTITY FULL; "
        "INSERT INTO app.t SELECT i, i % 5, i, 'x' FROM pg_catalog.generate_series(1, 50) i");
    run(*evil,
        std::string("CALL pgtrickle.create_stream_table(name => 'app.grouped', query => $$") +
            kGrouped + "$$, refresh_mode => 'differential', schedule => '1s')");
    run(*evil, std::string("CALL pgtrickle.create_stream_table(name => 'app.walled', query => $$") +
                   kGrouped +
                   "$$, refresh_mode => 'differential', cdc_mode => 'wal', "
                   "schedule => '1s')");
    // A scheduler started before ALTER DATABASE keeps its settings: start it again.
    wait_for("SELECT pgtrickle.scheduler_pid() IS NOT NULL", "t", 10);
    const std::string pid = scalar("SELECT pgtrickle.scheduler_pid()");
    exec("SELECT pg_terminate_backend(" + pid + ")");
    wait_for("SELECT coalesce(pgtrickle.scheduler_pid() <> " + pid + ", false)", "t", 20);
    exec("TRUNCATE " + schema_ + ".log");
    run(*evil, "INSERT INTO app.t VALUES (1000, 1, 5, 'z'); UPDATE app.t SET v = v + 1");
    wait_for(
        "SELECT count(*) FROM pgtrickle.pgt_refresh_history h JOIN pgtrickle.pgt_stream_tables s "
        "USING (pgt_id) WHERE h.trigger <> 'manual' AND h.mode = 'differential' AND "
        "h.started_at > now() - interval '1 minute'",
        "2", 30);
    expect_no_escalation("scheduled refreshes and WAL polls");
    expect_matches_query("app.grouped", kGrouped);
    expect_matches_query("app.walled", kGrouped);
    run(*evil, "CALL pgtrickle.drop_stream_table('app.walled')");
    run(*evil, "CALL pgtrickle.drop_stream_table('app.grouped')");
}

TEST_F(SearchPathTraps, a_refresh_resolves_no_name_on_the_owners_own_search_path) {
    // The apply stage runs as the stream table's owner with its search_path (functions its
    // query calls resolve names as they did for it). pg_trickle's own SQL there must still
    // resolve nothing on that path: not even the owner's own code may run (a different "="
    // would change the result, and Citus refuses volatile operators in writes to its tables).
    // Each shape below reaches another part of the generated apply: an algebraic groups
    // upsert, a recomputed group (max: the touched groups are aggregated again), a rows layout
    // with duplicates (the copies of a shrinking row are deleted and put back), a join.
    const std::vector<std::pair<std::string, std::string>> shapes = {
        {"app.grouped", kGrouped},
        {"app.maxed",
         "SELECT k, pg_catalog.count(*) AS n, pg_catalog.max(v) AS m, pg_catalog.min(note) AS "
         "first_note FROM app.t GROUP BY k"},
        {"app.dups", "SELECT t.k, t.note FROM app.t AS t"},
        {"app.joined", kJoined},
    };
    auto evil = planter();
    run(*evil,
        "CREATE TABLE app.t (id pg_catalog.int4 PRIMARY KEY, k pg_catalog.int4, v pg_catalog.int8, "
        "note pg_catalog.text); CREATE TABLE app.d (k pg_catalog.int4 PRIMARY KEY, label "
        "pg_catalog.text); "
        "INSERT INTO app.t SELECT i, i % 5, i, 'x' || (i % 3) FROM "
        "pg_catalog.generate_series(1, 50) i; "
        "INSERT INTO app.d SELECT i, 'l' FROM pg_catalog.generate_series(0, 4) i");
    for (const auto& [name, query] : shapes) {
        run(*evil, "CALL pgtrickle.create_stream_table(name => '" + name + "', query => $$" +
                       query + "$$, refresh_mode => 'differential', schedule => NULL)");
    }
    // The planter's own writes run its traps (as itself): the log starts after them.
    run(*evil,
        "INSERT INTO app.t VALUES (100, 1, 70, 'y'), (101, 2, 1, 'x1'); DELETE FROM app.t WHERE "
        "v >= 45; UPDATE app.t SET note = 'z' WHERE id < 6; UPDATE app.d SET label = 'm' WHERE k = "
        "3");
    exec("TRUNCATE " + schema_ + ".log");
    for (const auto& [name, query] : shapes) {
        run(*evil, "CALL pgtrickle.refresh_stream_table('" + name + "')");
        EXPECT_EQ(scalar("SELECT coalesce(string_agg(DISTINCT who || ': ' || what, E'\\n'), '') "
                         "FROM " +
                         schema_ + ".log"),
                  "")
            << "the differential refresh of " << name << " ran these";
        EXPECT_EQ(scalar("SELECT mode FROM pgtrickle.pgt_refresh_history h JOIN "
                         "pgtrickle.pgt_stream_tables s USING (pgt_id) WHERE s.pgt_schema || '.' "
                         "|| s.pgt_name = '" +
                         name + "' ORDER BY history_id DESC LIMIT 1"),
                  "differential")
            << name;
        expect_matches_query(name, query);
    }
}

TEST_F(SearchPathTraps, a_source_column_of_the_planters_domain_is_never_checked_by_another_role) {
    // Capture copies source values into change buffers as the extension owner: a domain
    // whose CHECK is a trap must not run there (it runs for the source's writers, as them).
    auto evil = planter();
    run(*evil,
        "CREATE DOMAIN app.trapped AS pg_catalog.text CHECK (" + schema_ +
            ".pwn('domain app.trapped')); "
            "CREATE TABLE app.t (id pg_catalog.int4 PRIMARY KEY, k pg_catalog.int4, v "
            "app.trapped); ALTER TABLE app.t REPLICA IDENTITY FULL; "
            "INSERT INTO app.t SELECT i, i % 3, 'v' FROM pg_catalog.generate_series(1, 20) i");
    const std::string q = "SELECT id, k, v FROM app.t";
    run(*evil, "CALL pgtrickle.create_stream_table(name => 'app.rows_trigger', query => $$" + q +
                   "$$, refresh_mode => 'differential')");
    run(*evil, "CALL pgtrickle.create_stream_table(name => 'app.rows_wal', query => $$" + q +
                   "$$, refresh_mode => 'differential', cdc_mode => 'wal')");
    // Writes, a column added with a default of the domain, a TRUNCATE marker: as the planter.
    run(*evil,
        "INSERT INTO app.t VALUES (100, 1, 'w'); UPDATE app.t SET v = 'u' WHERE id < 5; "
        "DELETE FROM app.t WHERE id = 7");
    exec("TRUNCATE " + schema_ + ".log");
    run(*evil, "CALL pgtrickle.refresh_stream_table('app.rows_trigger')");
    run(*evil, "CALL pgtrickle.refresh_stream_table('app.rows_wal')");
    expect_no_escalation("refresh over a domain column (trigger and WAL capture)");
    run(*evil, "ALTER TABLE app.t ADD COLUMN extra app.trapped DEFAULT 'd'");
    expect_no_escalation("ADD COLUMN of the domain with a default");
    run(*evil, "INSERT INTO app.t VALUES (101, 2, 'w2', 'e'); TRUNCATE app.t");
    run(*evil, "INSERT INTO app.t VALUES (1, 1, 'again', 'e')");
    auto su = poisoned_superuser();
    run(*su, "SELECT * FROM pgtrickle.poll_worker_slots()");
    expect_no_escalation("a WAL drain and TRUNCATE markers over a domain column");
    run(*evil, "CALL pgtrickle.refresh_stream_table('app.rows_trigger')");
    run(*evil, "CALL pgtrickle.refresh_stream_table('app.rows_wal')");
    expect_no_escalation("refreshes after TRUNCATE");
    expect_matches_query("app.rows_trigger", q);
    expect_matches_query("app.rows_wal", q);
    run(*evil, "CALL pgtrickle.drop_stream_table('app.rows_wal')");
    run(*evil, "CALL pgtrickle.drop_stream_table('app.rows_trigger')");
}

}  // namespace
}  // namespace pgt::test
