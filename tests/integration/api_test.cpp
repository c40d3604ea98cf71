// SQL API behaviour: modes, refusals with named constructs, source DDL, drop and clean-up.
#include "pg_fixture.h"

namespace pgt::test {
namespace {

class Api : public PgTest {
  protected:
    void SetUp() override {
        PgTest::SetUp();
        exec("CREATE TABLE orders (id int PRIMARY KEY, customer_id int, amount int)");
        exec("INSERT INTO orders SELECT g, g % 5, g FROM generate_series(1, 50) g");
    }
};

TEST_F(Api, differential_mode_refuses_unsupported_construct_by_name) {
    const std::string err = error_of(
        "CALL pgtrickle.create_stream_table(name => 'w', query => 'SELECT id, row_number() OVER () "
        "FROM orders', "
        "refresh_mode => 'differential')");
    EXPECT_NE(err.find("0A000"), std::string::npos) << err;
    EXPECT_NE(err.find("window functions"), std::string::npos) << err;
    EXPECT_EQ(scalar("SELECT to_regclass('w') IS NULL"), "t");
}

TEST_F(Api, auto_mode_falls_back_to_full_refresh_with_reason) {
    exec(
        "CALL pgtrickle.create_stream_table(name => 'w', query => 'SELECT id, random() > 2 AS r "
        "FROM orders')");
    EXPECT_EQ(scalar("SELECT effective_mode FROM pgtrickle.pgt_status WHERE pgt_name = 'w'"),
              "full");
    EXPECT_NE(scalar("SELECT mode_reason FROM pgtrickle.pgt_status WHERE pgt_name = 'w'")
                  .find("volatile function"),
              std::string::npos);
    exec("INSERT INTO orders VALUES (100, 1, 1)");
    exec("CALL pgtrickle.refresh_stream_table('w')");
    EXPECT_EQ(
        scalar("SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'w'"),
        "full");
    EXPECT_EQ(scalar("SELECT count(*) FROM w"), "51");
}

TEST_F(Api, explain_reports_mode_tree_and_reason) {
    EXPECT_EQ(scalar("SELECT pgtrickle.explain_stream_table('SELECT customer_id, sum(amount) FROM "
                     "orders GROUP BY 1')->>'mode'"),
              "differential");
    EXPECT_NE(scalar("SELECT pgtrickle.explain_stream_table('SELECT customer_id, sum(amount) FROM "
                     "orders GROUP BY 1')->>'text'")
                  .find("Aggregate"),
              std::string::npos);
    EXPECT_NE(
        scalar("SELECT pgtrickle.explain_stream_table('SELECT id FROM orders LIMIT 3')->>'reason'")
            .find("LIMIT"),
        std::string::npos);
}

TEST_F(Api, options_of_later_releases_are_refused_not_ignored) {
    // cdc_mode 'wal' exists now (wal_capture_test.cpp); without its prerequisite it is
    // refused with the fix, never silently downgraded to triggers.
    EXPECT_NE(error_of("CALL pgtrickle.create_stream_table(name => 'x', query => 'SELECT id FROM "
                       "orders', cdc_mode => 'wal')")
                  .find("REPLICA IDENTITY FULL"),
              std::string::npos);
    EXPECT_NE(
        error_of(
            "CALL pgtrickle.create_stream_table(name => 'x', query => 'SELECT id FROM orders', "
            "output_distribution_column => 'id')")
            .find("output_distribution_column needs Citus"),
        std::string::npos);
    EXPECT_EQ(scalar("SELECT count(*) FROM pgtrickle.pgt_stream_tables"), "0");
    EXPECT_NE(error_of("CALL pgtrickle.create_stream_table(name => 'x', query => 'SELECT id FROM "
                       "orders', schedule => '5 parsecs')")
                  .find("invalid schedule"),
              std::string::npos);
    EXPECT_NE(
        error_of("CALL pgtrickle.create_stream_table(name => 'x', query => 'DELETE FROM orders')")
            .find("one SELECT"),
        std::string::npos);
}

TEST_F(Api, stable_name_is_xxh64_of_database_schema_table_and_survives_rename) {
    const std::string sn = scalar("SELECT pgtrickle.source_stable_name('orders'::regclass)");
    EXPECT_EQ(sn.size(), 16u);
    exec(
        "CALL pgtrickle.create_stream_table(name => 's', query => 'SELECT customer_id, count(*) AS "
        "n FROM orders GROUP BY 1')");
    exec("ALTER TABLE orders RENAME TO orders_v2");
    EXPECT_EQ(scalar("SELECT pgtrickle.source_stable_name('orders_v2'::regclass)"), sn);
    exec("ALTER TABLE orders_v2 RENAME COLUMN amount TO amt");
    exec("INSERT INTO orders_v2 VALUES (500, 2, 9)");
    exec("CALL pgtrickle.refresh_stream_table('s')");
    EXPECT_EQ(scalar("SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables"), "differential");
    expect_matches_query("s", "SELECT customer_id, count(*) AS n FROM orders_v2 GROUP BY 1");
}

TEST_F(Api, stable_name_collision_is_refused_with_a_clear_error) {
    // "db/b.c.d" is the key of both tables: the second capture must be refused.
    exec("CREATE SCHEMA \"b.c\"; CREATE TABLE \"b.c\".d (x int)");
    exec("CREATE SCHEMA b; CREATE TABLE b.\"c.d\" (x int)");
    exec("CALL pgtrickle.create_stream_table(name => 's1', query => 'SELECT x FROM \"b.c\".d')");
    const std::string err = error_of(
        "CALL pgtrickle.create_stream_table(name => 's2', query => 'SELECT x FROM b.\"c.d\"')");
    EXPECT_NE(err.find("42710"), std::string::npos) << err;
    EXPECT_NE(err.find("stable name collision"), std::string::npos) << err;
}

TEST_F(Api, dropping_a_source_or_storage_directly_is_refused) {
    exec(
        "CALL pgtrickle.create_stream_table(name => 's', query => 'SELECT id, amount FROM "
        "orders')");
    EXPECT_NE(error_of("DROP TABLE orders").find("2BP01"), std::string::npos);
    const std::string cascade = error_of("DROP TABLE orders CASCADE");
    EXPECT_NE(cascade.find("stream table"), std::string::npos) << cascade;
    EXPECT_NE(error_of("DROP TABLE s").find("drop_stream_table"), std::string::npos);
    EXPECT_NE(error_of("ALTER TABLE orders ALTER COLUMN amount TYPE bigint").find("0A000"),
              std::string::npos);
    exec("ALTER TABLE orders ADD COLUMN note text");  // unused columns may change
    exec("INSERT INTO orders VALUES (900, 1, 1, 'n')");
    exec("CALL pgtrickle.refresh_stream_table('s')");
    expect_matches_query("s", "SELECT id, amount FROM orders");
}

TEST_F(Api, truncate_of_a_source_forces_a_full_refresh) {
    exec(
        "CALL pgtrickle.create_stream_table(name => 's', query => 'SELECT customer_id, count(*) AS "
        "n FROM orders GROUP BY 1')");
    exec("TRUNCATE orders");
    exec("INSERT INTO orders VALUES (1, 1, 1)");
    exec("CALL pgtrickle.refresh_stream_table('s')");
    EXPECT_EQ(scalar("SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables"), "full");
    EXPECT_EQ(scalar("SELECT n FROM s"), "1");
}

TEST_F(Api, drop_removes_triggers_and_buffers_no_other_stream_table_needs) {
    exec("CALL pgtrickle.create_stream_table(name => 's1', query => 'SELECT id FROM orders')");
    exec(
        "CALL pgtrickle.create_stream_table(name => 's2', query => 'SELECT customer_id FROM "
        "orders')");
    const std::string sn = scalar("SELECT pgtrickle.source_stable_name('orders'::regclass)");
    exec("CALL pgtrickle.drop_stream_table('s1')");
    EXPECT_EQ(scalar("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'orders'::regclass"), "4");
    exec("CALL pgtrickle.drop_stream_table('s2')");
    EXPECT_EQ(scalar("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'orders'::regclass"), "0");
    EXPECT_EQ(scalar("SELECT to_regclass('pgtrickle_changes.changes_" + sn + "') IS NULL"), "t");
    EXPECT_EQ(scalar("SELECT count(*) FROM pgtrickle.pgt_change_tracking"), "0");
}

TEST_F(Api, stream_table_reading_a_stream_table_needs_cascade_to_drop) {
    exec(
        "CALL pgtrickle.create_stream_table(name => 's1', query => 'SELECT customer_id, count(*) "
        "AS n FROM orders GROUP BY 1')");
    exec(
        "CALL pgtrickle.create_stream_table(name => 's2', query => 'SELECT n FROM s1 WHERE n > "
        "1')");
    EXPECT_NE(error_of("CALL pgtrickle.drop_stream_table('s1')").find("cascade"),
              std::string::npos);
    exec("CALL pgtrickle.drop_stream_table('s1', cascade => true)");
    EXPECT_EQ(scalar("SELECT count(*) FROM pgtrickle.pgt_stream_tables"), "0");
}

TEST_F(Api, suspended_reader_does_not_hold_back_buffer_cleanup_and_recomputes_on_resume) {
    exec(
        "CALL pgtrickle.create_stream_table(name => 'live', query => 'SELECT id, amount FROM "
        "orders')");
    exec(
        "CALL pgtrickle.create_stream_table(name => 'paused', query => 'SELECT customer_id, "
        "count(*) AS n FROM orders GROUP BY 1')");
    exec("CALL pgtrickle.alter_stream_table('paused', status => 'suspended')");
    exec("INSERT INTO orders SELECT g, g % 5, g FROM generate_series(100, 199) g");
    exec("CALL pgtrickle.refresh_stream_table('live')");
    const std::string sn = scalar("SELECT pgtrickle.source_stable_name('orders'::regclass)");
    EXPECT_EQ(scalar("SELECT count(*) FROM pgtrickle_changes.changes_" + sn), "0");
    exec("CALL pgtrickle.alter_stream_table('paused', status => 'active')");
    exec("CALL pgtrickle.refresh_stream_table('paused')");
    EXPECT_EQ(
        scalar(
            "SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'paused'"),
        "full");
    expect_matches_query("paused", "SELECT customer_id, count(*) AS n FROM orders GROUP BY 1");
}

TEST_F(Api, alter_changes_mode_and_query_and_status) {
    exec(
        "CALL pgtrickle.create_stream_table(name => 's', query => 'SELECT id, amount FROM "
        "orders')");
    exec(
        "CALL pgtrickle.alter_stream_table('s', query => 'SELECT customer_id, sum(amount) AS t "
        "FROM orders GROUP BY 1')");
    expect_matches_query("s", "SELECT customer_id, sum(amount) AS t FROM orders GROUP BY 1");
    exec("CALL pgtrickle.alter_stream_table('s', refresh_mode => 'full')");
    EXPECT_EQ(scalar("SELECT effective_mode FROM pgtrickle.pgt_stream_tables"), "full");
    exec("CALL pgtrickle.alter_stream_table('s', status => 'suspended')");
    EXPECT_EQ(scalar("SELECT status FROM pgtrickle.pgt_status"), "suspended");
    exec("CALL pgtrickle.alter_stream_table('s', schedule => '1h30m')");
    EXPECT_EQ(scalar("SELECT schedule FROM pgtrickle.pgt_stream_tables"), "1h30m");
}

TEST_F(Api, identifiers_are_quoted_and_search_path_proof) {
    exec("CREATE SCHEMA \"My Schema\"");
    exec("CREATE TABLE \"My Schema\".\"Odd Table\" (\"Key\" int, \"select\" int)");
    exec("INSERT INTO \"My Schema\".\"Odd Table\" SELECT g % 3, g FROM generate_series(1, 10) g");
    // A user operator that would shadow pg_catalog's + if generated SQL relied on search_path.
    exec("CREATE FUNCTION public.evil_plus(int, int) RETURNS int LANGUAGE sql AS 'SELECT $1 - $2'");
    exec("CREATE OPERATOR public.+ (LEFTARG = int, RIGHTARG = int, FUNCTION = public.evil_plus)");
    exec("SET search_path = public, pg_catalog");
    exec(
        "CALL pgtrickle.create_stream_table(name => '\"My Schema\".\"Sum Table\"', query => "
        "'SELECT \"Key\", sum(\"select\") AS \"total sum\" FROM \"My Schema\".\"Odd Table\" GROUP "
        "BY \"Key\"')");
    exec("INSERT INTO \"My Schema\".\"Odd Table\" VALUES (1, 100)");
    exec("CALL pgtrickle.refresh_stream_table('\"My Schema\".\"Sum Table\"')");
    exec("RESET search_path");
    expect_matches_query("\"My Schema\".\"Sum Table\"",
                         "SELECT \"Key\", sum(\"select\") AS \"total sum\" FROM \"My "
                         "Schema\".\"Odd Table\" GROUP BY \"Key\"");
}

}  // namespace
}  // namespace pgt::test
