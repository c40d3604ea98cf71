// Upgrades and downgrades between 0.31.0 (OID names) and 0.35.0 (stable names).
//
// The catalog fingerprint covers every object of the extension: schemas, tables, columns
// (order, type, NOT NULL, default), constraints, indexes, sequences, views, functions and
// procedures (arguments, result, language, volatility, security, body, ACL), event triggers,
// comments and pg_dump registration. A database upgraded from 0.31.0 must match a fresh
// 0.35.0 install exactly, and every downgrade must restore the earlier catalog exactly.
#include <random>
#include <thread>

#include "pg_fixture.h"

namespace pgt::test {
namespace {

const char* const kFingerprint = R"SQL(
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'pg_trickle'),
members AS (SELECT classid, objid FROM pg_depend
             WHERE refclassid = 'pg_extension'::regclass AND refobjid = (SELECT oid FROM ext) AND deptype = 'e'),
rels AS (SELECT c.oid, c.relname, c.relkind FROM pg_class c JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid)
SELECT kind || ' | ' || ident || ' | ' || COALESCE(detail, '') FROM (
  SELECT 'relation' AS kind, relname::text AS ident, relkind::text AS detail FROM rels
  UNION ALL
  SELECT 'column', r.relname || '#' || row_number() OVER (PARTITION BY r.oid ORDER BY a.attnum),
         a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END ||
         COALESCE(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
    FROM rels r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef d ON d.adrelid = r.oid AND d.adnum = a.attnum
  UNION ALL
  SELECT 'index', i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
    FROM pg_index i JOIN rels r ON r.oid = i.indrelid
  UNION ALL
  SELECT 'constraint', r.relname || '.' || c.conname, pg_get_constraintdef(c.oid)
    FROM pg_constraint c JOIN rels r ON r.oid = c.conrelid
  UNION ALL
  SELECT 'view', r.relname, pg_get_viewdef(r.oid) FROM rels r WHERE r.relkind = 'v'
  UNION ALL
  SELECT 'sequence', r.relname, s.seqtypid::regtype || ' ' || s.seqstart || ' ' || s.seqincrement
    FROM rels r JOIN pg_sequence s ON s.seqrelid = r.oid
  UNION ALL
  SELECT 'function', p.oid::regprocedure::text,
         p.prokind::text || ' ' || l.lanname || ' ' || p.provolatile::text || ' strict=' || p.proisstrict || ' definer=' || p.prosecdef ||
         ' returns ' || COALESCE(pg_get_function_result(p.oid), '') || ' args ' || pg_get_function_arguments(p.oid) ||
         ' body ' || md5(p.prosrc || COALESCE(p.probin, '')) || ' config ' || COALESCE(array_to_string(p.proconfig, ','), '') ||
         ' acl ' || COALESCE(p.proacl::text, '')
    FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid JOIN pg_language l ON l.oid = p.prolang
  UNION ALL
  SELECT 'event trigger', e.evtname, e.evtevent || ' ' || e.evtfoid::regproc || ' ' || e.evtenabled::text
    FROM pg_event_trigger e JOIN members m ON m.classid = 'pg_event_trigger'::regclass AND m.objid = e.oid
  UNION ALL
  SELECT 'schema', n.nspname, '' FROM pg_namespace n JOIN members m ON m.classid = 'pg_namespace'::regclass AND m.objid = n.oid
  UNION ALL
  SELECT 'comment', pg_describe_object(d.classoid, d.objoid, d.objsubid), d.description
    FROM pg_description d JOIN members m ON m.classid = d.classoid AND m.objid = d.objoid
  UNION ALL
  SELECT 'dumped', c::regclass::text, '' FROM pg_extension, unnest(extconfig) AS c WHERE extname = 'pg_trickle'
) f ORDER BY 1
)SQL";

class Upgrade : public PgTest {
  protected:
    void SetUp() override {
        PgTest::SetUp();
        exec("DROP EXTENSION pg_trickle CASCADE");
    }
    std::vector<std::string> fingerprint() { return rows(kFingerprint); }
    void update_to(const std::string& v) {
        exec("ALTER EXTENSION pg_trickle UPDATE TO '" + v + "'");
    }

    /// Lines only in a, then lines only in b, for a readable failure.
    static std::string diff(const std::vector<std::string>& a, const std::vector<std::string>& b) {
        std::string out;
        for (const auto& x : a) {
            if (std::find(b.begin(), b.end(), x) == b.end()) {
                out += "  - " + x + "\n";
            }
        }
        for (const auto& x : b) {
            if (std::find(a.begin(), a.end(), x) == a.end()) {
                out += "  + " + x + "\n";
            }
        }
        return out;
    }
};

const char* const kVersions[] = {"0.31.0", "0.32.0", "0.33.0", "0.34.0", "0.35.0"};

TEST_F(Upgrade, upgraded_catalog_equals_fresh_install_and_every_downgrade_restores_it) {
    exec("CREATE EXTENSION pg_trickle VERSION '0.31.0'");
    std::vector<std::vector<std::string>> fps{fingerprint()};
    for (size_t i = 1; i < std::size(kVersions); ++i) {
        update_to(kVersions[i]);
        fps.push_back(fingerprint());
        EXPECT_TRUE(fps[i] != fps[i - 1])
            << "upgrade to " << kVersions[i] << " changed nothing visible";
    }
    const auto upgraded = fps.back();
    exec("DROP EXTENSION pg_trickle CASCADE");
    exec("CREATE EXTENSION pg_trickle");
    const auto fresh = fingerprint();
    EXPECT_TRUE(upgraded == fresh)
        << "0.31.0 upgraded to 0.35.0 differs from a fresh 0.35.0 (- upgraded, + fresh):\n"
        << diff(upgraded, fresh);
    for (size_t i = std::size(kVersions) - 1; i > 0; --i) {
        update_to(kVersions[i - 1]);
        const auto down = fingerprint();
        EXPECT_TRUE(down == fps[i - 1])
            << "downgrade " << kVersions[i] << " -> " << kVersions[i - 1]
            << " does not restore the catalog (- expected, + actual):\n"
            << diff(fps[i - 1], down);
    }
}

class Migration : public Upgrade {
  protected:
    const std::string agg_ =
        "SELECT customer_id, count(*) AS n, sum(amount) AS total FROM orders GROUP BY customer_id";
    const std::string join_ =
        "SELECT o.id, o.amount, c.name FROM orders o JOIN customers c ON c.id = o.customer_id";

    void create_installation(const std::string& version) {
        exec("CREATE EXTENSION pg_trickle VERSION '" + version + "'");
        exec("CREATE TABLE customers (id int PRIMARY KEY, name text)");
        exec("CREATE TABLE orders (id int PRIMARY KEY, customer_id int, amount int)");
        exec("INSERT INTO customers SELECT g, 'c' || g FROM generate_series(0, 9) g");
        exec("INSERT INTO orders SELECT g, g % 10, g FROM generate_series(1, 200) g");
        exec("CALL pgtrickle.create_stream_table(name => 'agg', query => $q$" + agg_ + "$q$)");
        exec("CALL pgtrickle.create_stream_table(name => 'joined', query => $q$" + join_ + "$q$)");
    }
    std::string capture_names() {
        return scalar(
            "SELECT string_agg(relname, ' ' ORDER BY relname) FROM pg_class "
            "WHERE relnamespace = 'pgtrickle_changes'::regnamespace AND relkind = 'r'");
    }
    void refresh_and_check() {
        exec("CALL pgtrickle.refresh_stream_table('agg')");
        exec("CALL pgtrickle.refresh_stream_table('joined')");
        expect_matches_query("agg", agg_);
        expect_matches_query("joined", join_);
    }
};

TEST_F(Migration, pending_changes_survive_upgrade_and_rollback) {
    create_installation("0.31.0");
    const std::string orders_oid = scalar("SELECT 'orders'::regclass::oid");
    EXPECT_NE(capture_names().find("changes_" + orders_oid), std::string::npos);
    exec("UPDATE orders SET amount = amount + 1 WHERE id % 3 = 0");
    exec("DELETE FROM orders WHERE id % 7 = 0");
    exec("INSERT INTO orders SELECT g, g % 10, 1 FROM generate_series(1000, 1050) g");
    update_to("0.35.0");
    const std::string sn = scalar("SELECT pgtrickle.source_stable_name('orders'::regclass)");
    EXPECT_EQ(capture_names().find(orders_oid), std::string::npos) << capture_names();
    EXPECT_NE(capture_names().find("changes_" + sn), std::string::npos);
    EXPECT_EQ(
        scalar("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pg_trickle_cdc_%_" + sn + "'"),
        "4");
    EXPECT_NE(scalar("SELECT pgtrickle.pending_changes(pgt_id) FROM pgtrickle.pgt_stream_tables "
                     "WHERE pgt_name = 'agg'"),
              "0");
    refresh_and_check();
    EXPECT_EQ(
        scalar(
            "SELECT string_agg(DISTINCT last_refresh_mode, ',') FROM pgtrickle.pgt_stream_tables"),
        "differential");
    // And back, with pending changes again.
    exec("UPDATE orders SET customer_id = (customer_id + 1) % 10 WHERE id % 5 = 0");
    update_to("0.31.0");
    EXPECT_NE(capture_names().find("changes_" + orders_oid), std::string::npos);
    refresh_and_check();
    EXPECT_EQ(
        scalar(
            "SELECT string_agg(DISTINCT last_refresh_mode, ',') FROM pgtrickle.pgt_stream_tables"),
        "differential");
}

TEST_F(Migration, writers_during_upgrade_lose_nothing) {
    create_installation("0.31.0");
    std::atomic<bool> stop{false};
    std::atomic<int> writes{0};
    std::thread writer([&] {
        auto c = connect();
        std::mt19937 rng(7);
        while (!stop) {
            const int id = std::uniform_int_distribution<int>(1, 400)(rng);
            try {
                pqxx::work t(*c);
                t.exec("INSERT INTO orders VALUES (" + std::to_string(id) + ", " +
                       std::to_string(id % 10) +
                       ", 1) ON CONFLICT (id) DO UPDATE SET amount = orders.amount + 1");
                t.commit();
                ++writes;
            } catch (const std::exception&) {
                // a write that failed was not committed: nothing to lose
            }
        }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    update_to("0.35.0");
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    update_to("0.31.0");
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    update_to("0.35.0");
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    stop = true;
    writer.join();
    EXPECT_GT(writes.load(), 10);
    refresh_and_check();
}

TEST_F(Migration, stable_names_do_not_depend_on_oids) {
    // A major upgrade or a restore gives sources new OIDs; the stable name is the same.
    exec("CREATE EXTENSION pg_trickle");
    exec("CREATE TABLE t (a int)");
    const std::string before = scalar("SELECT pgtrickle.source_stable_name('t'::regclass)");
    const std::string oid_before = scalar("SELECT 't'::regclass::oid");
    exec("DROP TABLE t");
    exec("CREATE TABLE t (a int)");
    EXPECT_NE(scalar("SELECT 't'::regclass::oid"), oid_before);
    EXPECT_EQ(scalar("SELECT pgtrickle.source_stable_name('t'::regclass)"), before);
}

}  // namespace
}  // namespace pgt::test
