// Buffer columns keep the source column's collation, so grouping, DISTINCT, min/max and
// joins over buffered rows behave as they do over the source.
#include "pg_fixture.h"

namespace pgt::test {
namespace {

class CaptureCollation : public PgTest {};

TEST_F(CaptureCollation, nondeterministic_icu_collation_groups_like_the_source) {
    exec("CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)");
    exec("CREATE TABLE src (id int, name text COLLATE ci)");
    exec("INSERT INTO src VALUES (1, 'abc'), (2, 'Abc'), (3, 'xyz')");
    const std::string q = "SELECT name, count(*) AS n FROM src GROUP BY name";
    exec("CALL pgtrickle.create_stream_table(name => 'g', query => $q$" + q + "$q$)");
    const std::string qd = "SELECT DISTINCT name FROM src WHERE id > 0";
    exec("CALL pgtrickle.create_stream_table(name => 'd', query => $q$" + qd + "$q$)");
    exec("INSERT INTO src VALUES (4, 'ABC'), (5, 'XYZ'), (6, 'new')");
    exec("DELETE FROM src WHERE id = 3");
    exec("CALL pgtrickle.refresh_stream_table('g')");
    exec("CALL pgtrickle.refresh_stream_table('d')");
    EXPECT_EQ(scalar("SELECT count(*) FROM g"), "3");
    EXPECT_EQ(scalar("SELECT sum(n) FROM g"), "5");
    EXPECT_EQ(scalar("SELECT count(*) FROM d"), "3");
    EXPECT_EQ(
        scalar("SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'g'"),
        "differential");
}

TEST_F(CaptureCollation, collate_c_column_in_an_icu_database_orders_like_the_source) {
    const std::string other = db_ + "_icu";
    {
        pqxx::connection admin(Server::instance().dsn("postgres"));
        pqxx::nontransaction a(admin);
        a.exec("DROP DATABASE IF EXISTS " + a.quote_name(other) + " WITH (FORCE)");
        a.exec("CREATE DATABASE " + a.quote_name(other) +
               " TEMPLATE template0 LOCALE 'C.utf8' LOCALE_PROVIDER icu ICU_LOCALE 'en'");
    }
    {
        pqxx::connection c(Server::instance().dsn(other));
        pqxx::nontransaction t(c);
        t.exec("CREATE EXTENSION pg_trickle");
        t.exec("CREATE TABLE src (g int, name text COLLATE \"C\", plain text)");
        t.exec("INSERT INTO src VALUES (1, 'B', 'B'), (1, 'c', 'c'), (2, 'Z', 'Z')");
        const std::string q =
            "SELECT g, min(name) AS lo, max(name) AS hi, min(plain) AS plo FROM src GROUP BY g";
        t.exec("CALL pgtrickle.create_stream_table(name => 'mm', query => $q$" + q + "$q$)");
        // Under "C" upper case sorts before lower case; under ICU 'en' it does not.
        const std::string qf = "SELECT g, name FROM src WHERE name < 'b'";
        t.exec("CALL pgtrickle.create_stream_table(name => 'flt', query => $q$" + qf + "$q$)");
        t.exec("INSERT INTO src VALUES (1, 'a', 'a'), (2, 'b', 'b'), (3, 'Z', 'Z'), (3, 'c', 'c')");
        t.exec("CALL pgtrickle.refresh_stream_table('mm')");
        t.exec("CALL pgtrickle.refresh_stream_table('flt')");
        EXPECT_EQ(
            t.exec("SELECT count(*) FROM (((SELECT g, name FROM flt) EXCEPT ALL (" + qf +
                   ")) UNION ALL ((" + qf + ") EXCEPT ALL (SELECT g, name FROM flt))) d")[0][0]
                .as<long>(),
            0);
        EXPECT_EQ(
            t.exec("SELECT count(*) FROM (((SELECT g, lo, hi, plo FROM mm) EXCEPT ALL (" + q +
                   ")) UNION ALL ((" + q + ") EXCEPT ALL (SELECT g, lo, hi, plo FROM mm))) d")[0][0]
                .as<long>(),
            0);
        EXPECT_EQ(t.exec("SELECT lo || hi FROM mm WHERE g = 1")[0][0].as<std::string>(), "Bc");
    }
    pqxx::connection admin(Server::instance().dsn("postgres"));
    pqxx::nontransaction a(admin);
    a.exec("DROP DATABASE IF EXISTS " + a.quote_name(other) + " WITH (FORCE)");
}

}  // namespace
}  // namespace pgt::test
