// pg_dump / pg_restore into another cluster (seed TEST-3), which is also what a major
// upgrade by dump and restore does to OIDs (TEST-4): sources get new OIDs, stable names
// stay, nothing needs migrating, and the stream tables keep working.
#include <regex>

#include "pg_fixture.h"

namespace pgt::test {
namespace {

/// A second throwaway cluster, stopped when the test ends.
struct OtherCluster {
    std::string dir, port;
    OtherCluster() {
        const std::string out = shell("bash " PGTRICKLE_SOURCE_DIR "/tests/support/pgtmp.sh start");
        std::smatch m;
        if (std::regex_search(out, m, std::regex("PGTMP_DIR=([^;]+);"))) {
            dir = m[1];
        }
        if (std::regex_search(out, m, std::regex("PGPORT=([0-9]+)"))) {
            port = m[1];
        }
    }
    ~OtherCluster() {
        if (!dir.empty()) {
            std::system(("bash " PGTRICKLE_SOURCE_DIR "/tests/support/pgtmp.sh stop '" + dir +
                         "' >/dev/null 2>&1")
                            .c_str());
        }
    }
    std::string dsn(const std::string& db) const {
        return "host=127.0.0.1 port=" + port + " user=postgres dbname=" + db;
    }
};

std::string q1(pqxx::connection& c, const std::string& sql) {
    pqxx::nontransaction t(c);
    auto r = t.exec(sql);
    return r.empty() || r[0][0].is_null() ? "" : r[0][0].c_str();
}

TEST_F(PgTest, dump_and_restore_into_another_cluster_keeps_stream_tables_working) {
    const std::string agg =
        "SELECT customer_id, count(*) AS n, sum(amount) AS total FROM orders GROUP BY customer_id";
    const std::string rows = "SELECT o.id, o.amount FROM orders o WHERE o.amount > 10";
    exec("CREATE TABLE orders (id int PRIMARY KEY, customer_id int, amount int)");
    exec("INSERT INTO orders SELECT g, g % 10, g FROM generate_series(1, 300) g");
    exec("CALL pgtrickle.create_stream_table(name => 'agg', query => $q$" + agg + "$q$)");
    exec("CALL pgtrickle.create_stream_table(name => 'big', query => $q$" + rows + "$q$)");
    exec(
        "CALL pgtrickle.create_stream_table(name => 'agg2', query => 'SELECT n FROM agg WHERE n > "
        "1')");
    exec("INSERT INTO orders VALUES (1000, 3, 500)");  // pending in the buffer at dump time
    const std::string sn = scalar("SELECT pgtrickle.source_stable_name('orders'::regclass)");
    const std::string oid = scalar("SELECT 'orders'::regclass::oid");

    OtherCluster other;
    ASSERT_FALSE(other.port.empty());
    const std::string bindir = shell("pg_config --bindir");
    const std::string bin = bindir.substr(0, bindir.find('\n')) + "/";
    const std::string dump = other.dir + "/db.dump";
    shell(bin + "pg_dump -Fc -h 127.0.0.1 -p " + Server::instance().port + " -U postgres -f '" +
          dump + "' " + db_);
    shell(bin + "createdb -h 127.0.0.1 -p " + other.port + " -U postgres restored");
    shell(bin + "pg_restore --exit-on-error -h 127.0.0.1 -p " + other.port +
          " -U postgres -d restored '" + dump + "'");

    pqxx::connection r(other.dsn("restored"));
    // Same stable name and object names, although the table has another OID.
    EXPECT_EQ(q1(r, "SELECT pgtrickle.source_stable_name('orders'::regclass)"), sn);
    EXPECT_EQ(q1(r, "SELECT source_stable_name FROM pgtrickle.pgt_change_tracking"), sn);
    EXPECT_EQ(q1(r, "SELECT to_regclass('pgtrickle_changes.changes_" + sn + "') IS NOT NULL"), "t");
    EXPECT_EQ(
        q1(r,
           "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'orders'::regclass AND tgname LIKE '%" +
               sn + "'"),
        "4");
    EXPECT_NE(q1(r, "SELECT 'orders'::regclass::oid"), oid)
        << "the restore was expected to give new OIDs";
    // Writes are captured and refreshes are correct (the first is a full one: the frontier
    // belongs to the other cluster), then differential again.
    {
        pqxx::nontransaction t(r);
        t.exec("INSERT INTO orders VALUES (2000, 4, 40), (2001, 77, 1)");
        t.exec("UPDATE orders SET amount = amount + 100 WHERE id % 9 = 0");
        t.exec("CALL pgtrickle.refresh_stream_table('agg')");
        t.exec("CALL pgtrickle.refresh_stream_table('big')");
        t.exec("CALL pgtrickle.refresh_stream_table('agg2')");
        EXPECT_EQ(
            t.exec(
                 "SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'agg'")
                [0][0]
                    .as<std::string>(),
            "full");
        t.exec("DELETE FROM orders WHERE id % 11 = 0");
        t.exec("CALL pgtrickle.refresh_stream_table('agg')");
        t.exec("CALL pgtrickle.refresh_stream_table('big')");
        t.exec("CALL pgtrickle.refresh_stream_table('agg2')");
        EXPECT_EQ(t.exec("SELECT string_agg(DISTINCT last_refresh_mode, ',') FROM "
                         "pgtrickle.pgt_stream_tables")[0][0]
                      .as<std::string>(),
                  "differential");
        auto diff = [&](const std::string& st, const std::string& q, const std::string& cols) {
            return t
                .exec("SELECT count(*) FROM (((SELECT " + cols + " FROM " + st + ") EXCEPT ALL (" +
                      q + ")) UNION ALL ((" + q + ") EXCEPT ALL (SELECT " + cols + " FROM " + st +
                      "))) d")[0][0]
                .as<long>();
        };
        EXPECT_EQ(diff("agg", agg, "customer_id, n, total"), 0);
        EXPECT_EQ(diff("big", rows, "id, amount"), 0);
        EXPECT_EQ(diff("agg2", "SELECT n FROM agg WHERE n > 1", "n"), 0);
    }
}

}  // namespace
}  // namespace pgt::test
