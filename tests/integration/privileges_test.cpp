// The privilege model (docs/security.md): a role with SELECT on the sources, CREATE on the
// target schema and USAGE on schema pgtrickle creates, refreshes and drops its own stream
// tables; refreshes run as the owner, row-level security included; writers need nothing.
#include "pg_fixture.h"

namespace pgt::test {
namespace {

class Privileges : public PgTest {
  protected:
    void SetUp() override {
        PgTest::SetUp();
        suffix_ = db_.substr(db_.size() > 8 ? db_.size() - 8 : 0);
        alice_ = "pgt_alice_" + suffix_;
        bob_ = "pgt_bob_" + suffix_;
        carol_ = "pgt_carol_" + suffix_;
        for (const auto& r : {alice_, bob_, carol_}) {
            exec("DROP ROLE IF EXISTS " + r);
            exec("CREATE ROLE " + r + " LOGIN");
            exec("GRANT USAGE ON SCHEMA pgtrickle TO " + r);
        }
        exec("CREATE SCHEMA app");
        exec("GRANT USAGE, CREATE ON SCHEMA app TO " + alice_);
        exec("GRANT USAGE ON SCHEMA app TO " + bob_ + ", " + carol_);
        exec("CREATE TABLE app.src (id int PRIMARY KEY, who text, v int)");
        exec("INSERT INTO app.src SELECT i, CASE WHEN i % 2 = 0 THEN '" + alice_ +
             "' ELSE 'other' END, i FROM generate_series(1, 20) i");
        exec("GRANT SELECT ON app.src TO " + alice_);
        exec("GRANT INSERT, UPDATE, DELETE, SELECT ON app.src TO " + bob_);
    }
    void TearDown() override {
        PgTest::TearDown();
        pqxx::connection admin(Server::instance().dsn("postgres"));
        pqxx::nontransaction tx(admin);
        for (const auto& r : {alice_, bob_, carol_}) {
            tx.exec("DROP ROLE IF EXISTS " + r);
        }
    }
    /// Run `sql` as `role` (SET ROLE in a transaction); returns the error text or "".
    std::string as(const std::string& role, const std::string& sql) {
        try {
            auto c = connect();
            pqxx::work tx(*c);
            tx.exec("SET ROLE " + role);
            tx.exec(sql);
            tx.commit();
        } catch (const pqxx::sql_error& e) {
            return e.what();
        }
        return "";
    }
    std::string suffix_, alice_, bob_, carol_;
};

TEST_F(Privileges, a_plain_role_creates_refreshes_and_drops_its_stream_table) {
    const std::string q = "SELECT who, count(*) AS n, sum(v) AS total FROM app.src GROUP BY who";
    ASSERT_EQ(as(alice_, "CALL pgtrickle.create_stream_table(name => 'app.st', query => $$" + q +
                             "$$, refresh_mode => 'differential')"),
              "");
    EXPECT_EQ(
        scalar("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'app.st'::regclass"),
        alice_);
    // A writer with no access to pg_trickle's schemas writes to the captured source.
    ASSERT_EQ(as(bob_,
                 "INSERT INTO app.src VALUES (100, 'x', 5); UPDATE app.src SET v = 0 WHERE "
                 "id = 2; DELETE FROM app.src WHERE id = 3"),
              "");
    ASSERT_EQ(as(alice_, "CALL pgtrickle.refresh_stream_table('app.st')"), "");
    expect_matches_query("app.st", q);
    EXPECT_EQ(scalar("SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables"), "differential");
    // Not the owner: refused.
    EXPECT_NE(as(carol_, "CALL pgtrickle.refresh_stream_table('app.st')").find("must be owner"),
              std::string::npos);
    EXPECT_NE(as(carol_, "CALL pgtrickle.drop_stream_table('app.st')").find("must be owner"),
              std::string::npos);
    ASSERT_EQ(as(alice_, "CALL pgtrickle.drop_stream_table('app.st')"), "");
    EXPECT_EQ(scalar("SELECT count(*) FROM pgtrickle.pgt_stream_tables"), "0");
}

// pg_trickle's event triggers fire for every role's DDL: a role that has nothing to do with
// pg_trickle (no USAGE on its schema) keeps doing DDL, and its captured table stays in sync.
TEST_F(Privileges, ddl_by_a_role_without_access_to_pg_trickle_works) {
    const std::string dave = "pgt_dave_" + suffix_;
    exec("DROP ROLE IF EXISTS " + dave);
    exec("CREATE ROLE " + dave + " LOGIN");
    exec("CREATE SCHEMA dave_s AUTHORIZATION " + dave);
    EXPECT_EQ(as(dave,
                 "CREATE TABLE dave_s.t (id int PRIMARY KEY, v int); CREATE VIEW "
                 "dave_s.v AS SELECT id FROM dave_s.t; ALTER TABLE dave_s.t ADD COLUMN "
                 "w int; GRANT SELECT ON dave_s.t TO " +
                     alice_ + "; DROP VIEW dave_s.v"),
              "");
    // Captured: the owner's ALTER TABLE re-syncs the buffer through the event trigger.
    exec(
        "CALL pgtrickle.create_stream_table('dave_st', 'SELECT id, v FROM dave_s.t', "
        "refresh_mode => 'differential')");
    EXPECT_EQ(as(dave,
                 "ALTER TABLE dave_s.t ADD COLUMN x text; INSERT INTO dave_s.t VALUES "
                 "(1, 2, 3, 'x')"),
              "");
    exec("CALL pgtrickle.refresh_stream_table('dave_st')");
    expect_matches_query("dave_st", "SELECT id, v FROM dave_s.t");
    exec("CALL pgtrickle.drop_stream_table('dave_st')");
    exec("DROP SCHEMA dave_s CASCADE");
    exec("DROP ROLE " + dave);
}

TEST_F(Privileges, nobody_builds_a_stream_table_over_a_table_they_cannot_read) {
    const std::string err = as(carol_,
                               "CALL pgtrickle.create_stream_table(name => 'st', query => "
                               "'SELECT id FROM app.src')");
    EXPECT_NE(err.find("permission denied for table src"), std::string::npos) << err;
    exec("GRANT SELECT ON app.src TO " + carol_);
    const std::string no_schema = as(carol_,
                                     "CALL pgtrickle.create_stream_table(name => 'app.st', query "
                                     "=> 'SELECT id FROM app.src')");
    EXPECT_NE(no_schema.find("permission denied for schema app"), std::string::npos) << no_schema;
    EXPECT_EQ(scalar("SELECT count(*) FROM pgtrickle.pgt_stream_tables"), "0");
}

TEST_F(Privileges, row_level_security_applies_to_every_refresh) {
    exec("ALTER TABLE app.src ENABLE ROW LEVEL SECURITY");
    exec("CREATE POLICY own_rows ON app.src FOR SELECT USING (who = current_user)");
    exec("CREATE POLICY writers ON app.src FOR ALL TO " + bob_ + " USING (true)");
    const std::string q = "SELECT id, v FROM app.src";
    // Differential maintenance would copy buffer rows past the policy: refused.
    const std::string err = as(alice_,
                               "CALL pgtrickle.create_stream_table(name => 'app.d', query "
                               "=> $$" +
                                   q + "$$, refresh_mode => 'differential')");
    EXPECT_NE(err.find("row-level security"), std::string::npos) << err;
    ASSERT_EQ(
        as(alice_, "CALL pgtrickle.create_stream_table(name => 'app.st', query => $$" + q + "$$)"),
        "");
    EXPECT_EQ(scalar("SELECT count(*) FROM app.st"), "10");
    ASSERT_EQ(as(bob_, "INSERT INTO app.src VALUES (101, 'other', 1), (102, '" + alice_ + "', 2)"),
              "");
    ASSERT_EQ(as(alice_, "CALL pgtrickle.refresh_stream_table('app.st')"), "");
    EXPECT_EQ(scalar("SELECT count(*) FROM app.st WHERE id = 101"), "0");
    EXPECT_EQ(scalar("SELECT count(*) FROM app.st WHERE id = 102"), "1");
    EXPECT_EQ(scalar("SELECT count(*) FROM app.st"), "11");
    EXPECT_NE(scalar("SELECT mode_reason FROM pgtrickle.pgt_status").find("row-level security"),
              std::string::npos);
}

}  // namespace
}  // namespace pgt::test
