// Row identity of stream tables: values that are equal but spelled differently (case and
// accents under nondeterministic ICU collations, bpchar trailing spaces, numeric scale, float
// -0, interval '1 day' and '24 hours') are different rows where the query shows them, and
// one group where the query groups them. Stream tables are compared with their query
// byte-wise (the text output of every column, compared under "C"): EXCEPT ALL under a
// case-insensitive collation would hide a stream table that shows the wrong spelling.
#include <random>

#include "pg_fixture.h"

namespace pgt::test {
namespace {

class RowIdentity : public PgTest {
  protected:
    void SetUp() override {
        PgTest::SetUp();
        exec(
            "CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = "
            "false)");
        exec(
            "CREATE COLLATION ai (provider = icu, locale = 'und-u-ks-level1-kc-true', "
            "deterministic = false)");
    }

    void create(const std::string& name, const std::string& query) {
        exec("CALL pgtrickle.create_stream_table(name => '" + name + "', query => $q$" + query +
             "$q$, refresh_mode => 'differential')");
    }

    /// `query`'s rows as text images (every column's output, compared under "C").
    static std::string images(const std::string& query) {
        return "SELECT ROW(q.*)::text COLLATE \"C\" AS image FROM (" + query + ") AS q";
    }

    static std::string listing(const std::vector<std::string>& rows) {
        std::string out;
        for (const auto& r : rows) {
            out += "    " + r + "\n";
        }
        return out;
    }

    /// Refresh `st` differentially and require it to equal `query` byte-wise.
    void refresh_and_expect_same_images(const std::string& st, const std::string& query,
                                        const std::string& step) {
        exec("CALL pgtrickle.refresh_stream_table('" + st + "')");
        EXPECT_EQ(scalar("SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables WHERE "
                         "pgt_name = '" +
                         st + "'"),
                  "differential")
            << step;
        expect_same_images(st, query, step);
    }

    void expect_same_images(const std::string& st, const std::string& query,
                            const std::string& step) {
        const std::string stored = images("SELECT " + visible_columns(st) + " FROM " + st);
        const std::string fresh = images(query);
        EXPECT_EQ(multiset_diff(stored, fresh), 0)
            << step << ": stream table " << st << " differs byte-wise from its query\n  stored:\n"
            << listing(rows(stored)) << "  query:\n"
            << listing(rows(fresh));
    }

    /// A source `src (id, v <type>, k)` and the rows-layout stream table `SELECT v, k FROM src`
    /// (duplicates kept), maintained differentially through inserts, deletes and updates
    /// between two spellings `a` and `b` of one value (SQL literals), NULLs included.
    void check_spellings(const std::string& type, const std::string& a, const std::string& b) {
        exec("CREATE TABLE src (id int PRIMARY KEY, v " + type + ", k int)");
        exec("INSERT INTO src VALUES (1, " + a + ", 1), (2, " + b + ", 1), (3, " + a +
             ", 1), (4, NULL, 1), (5, " + b + ", 1), (6, " + a + ", 1), (7, " + a + ", 2)");
        const std::string q = "SELECT v, k FROM src";
        create("st", q);
        expect_same_images("st", q, "after create");
        exec("DELETE FROM src WHERE id = 1");
        refresh_and_expect_same_images("st", q, "one copy of a deleted");
        exec("DELETE FROM src WHERE id IN (2, 5)");
        refresh_and_expect_same_images("st", q, "every copy of b deleted");
        exec("UPDATE src SET v = " + b + " WHERE id = 3");
        refresh_and_expect_same_images("st", q, "one a respelled as b");
        exec("INSERT INTO src VALUES (8, " + b + ", 1), (9, " + a + ", 1), (10, " + b + ", 2)");
        refresh_and_expect_same_images("st", q, "a and b inserted");
        exec("UPDATE src SET v = " + a + " WHERE id IN (3, 8, 10)");
        refresh_and_expect_same_images("st", q, "every b respelled as a");
        exec("UPDATE src SET v = " + b + " WHERE id = 6; DELETE FROM src WHERE id = 9");
        refresh_and_expect_same_images("st", q, "a respelled and another a deleted");
        exec("UPDATE src SET v = " + b + " WHERE v IS NULL; UPDATE src SET v = NULL WHERE id = 7");
        refresh_and_expect_same_images("st", q, "NULL to b and a to NULL");
    }
};

TEST_F(RowIdentity, row_image_id_hashes_images_whatever_their_storage) {
    // Stored short (1-byte header), compressed inline, and out of line: the same image as the
    // value computed in memory (4-byte header).
    exec("CREATE TABLE t (k int, v text COLLATE ci)");
    exec("CREATE TABLE ext (k int, v text)");
    exec("ALTER TABLE ext ALTER v SET STORAGE EXTERNAL");
    exec("INSERT INTO t VALUES (1, 'x'), (2, repeat('ab', 20000))");
    exec("INSERT INTO ext VALUES (3, repeat('cd', 20000))");
    exec("CREATE TABLE small (a int2, b bool, c \"char\")");
    exec("INSERT INTO small VALUES (-1, true, 'z')");
    EXPECT_EQ(scalar("SELECT pgtrickle.row_image_id(a, b, c) = pgtrickle.row_image_id((-1)::int2, "
                     "true, 'z'::\"char\") FROM small"),
              "t");
    EXPECT_EQ(scalar("SELECT pg_column_compression(v) FROM t WHERE k = 2"), "pglz");
    EXPECT_EQ(scalar("SELECT count(*) FROM t WHERE pgtrickle.row_image_id(v) = "
                     "pgtrickle.row_image_id(CASE k WHEN 1 THEN 'x' ELSE repeat('ab', 20000) END)"),
              "2");
    EXPECT_EQ(scalar("SELECT pgtrickle.row_image_id(v) = pgtrickle.row_image_id(repeat('cd', "
                     "20000)) FROM ext"),
              "t");
    // Equal but spelled differently: different images; equality ids stay equal.
    EXPECT_EQ(scalar("SELECT pgtrickle.row_image_id('alice'::text COLLATE ci) <> "
                     "pgtrickle.row_image_id('ALICE'::text COLLATE ci) AND "
                     "pgtrickle.row_id('alice'::text COLLATE ci) = "
                     "pgtrickle.row_id('ALICE'::text COLLATE ci)"),
              "t");
    const std::pair<const char*, const char*> spellings[] = {
        {"1.0::numeric", "1.00::numeric"},
        {"'0'::float8", "'-0'::float8"},
        {"'a'::bpchar", "'a  '::bpchar"},
        {"'1 day'::interval", "'24 hours'::interval"}};
    for (const auto& [a, b] : spellings) {
        EXPECT_EQ(scalar("SELECT pgtrickle.row_image_id(" + std::string(a) +
                         ") <> pgtrickle.row_image_id(" + b + ")"),
                  "t")
            << a << " " << b;
    }
    // NULLs are marked: (NULL, 'a') and ('a', NULL) differ.
    EXPECT_EQ(scalar("SELECT pgtrickle.row_image_id(NULL::text, 'a'::text) <> "
                     "pgtrickle.row_image_id('a'::text, NULL::text)"),
              "t");
    EXPECT_NE(error_of("SELECT pgtrickle.row_image_id(VARIADIC ARRAY[1, 2])"), "");
}

TEST_F(RowIdentity, row_id_hashes_each_value_under_its_own_collation) {
    exec("CREATE TABLE t (name text COLLATE ci, code text COLLATE \"C\")");
    exec("INSERT INTO t VALUES ('alice', 'x'), ('ALICE', 'x'), ('alice', 'X')");
    // One id per group of GROUP BY name, code, though the two collations conflict.
    EXPECT_EQ(scalar("SELECT count(DISTINCT pgtrickle.row_id(name, code)) FROM t"),
              scalar("SELECT count(*) FROM (SELECT 1 FROM t GROUP BY name, code) AS g"));
    EXPECT_EQ(scalar("SELECT count(DISTINCT pgtrickle.row_id(name, code)) FROM t"), "2");
}

TEST_F(RowIdentity, case_only_differences_are_different_rows_under_a_case_insensitive_collation) {
    check_spellings("text COLLATE ci", "'alice'", "'ALICE'");
}

TEST_F(RowIdentity,
       accent_only_differences_are_different_rows_under_an_accent_insensitive_collation) {
    check_spellings("text COLLATE ai", "'resume'", "'résumé'");
}

TEST_F(RowIdentity, trailing_spaces_of_bpchar_are_different_rows) {
    check_spellings("bpchar", "'ab'", "'ab   '");
}

TEST_F(RowIdentity, numeric_scale_is_a_different_row) {
    check_spellings("numeric", "1.0", "1.00");
}

TEST_F(RowIdentity, float_negative_zero_is_a_different_row) {
    check_spellings("float8", "'0'", "'-0'");
}

TEST_F(RowIdentity, interval_one_day_and_24_hours_are_different_rows) {
    check_spellings("interval", "'1 day'", "'24 hours'");
}

TEST_F(RowIdentity, types_without_hash_functions_keep_working) {
    // varbit and tsquery have equality (btree) but no hash opclass.
    check_spellings("varbit", "B'101'", "B'1010'");
    exec("CALL pgtrickle.drop_stream_table('st')");
    exec("DROP TABLE src");
    check_spellings("tsquery", "'a & b'", "'b & a'");
}

TEST_F(RowIdentity, rows_of_a_union_and_a_join_keep_their_spelling) {
    exec("CREATE TABLE p (id int PRIMARY KEY, name text COLLATE ci)");
    exec("CREATE TABLE c (pid int, tag text COLLATE ai)");
    exec("INSERT INTO p VALUES (1, 'alice'), (2, 'ALICE'), (3, 'Bob')");
    exec("INSERT INTO c VALUES (1, 'resume'), (2, 'résumé'), (2, 'resume'), (3, NULL)");
    const std::string q =
        "SELECT p.name, c.tag FROM p JOIN c ON c.pid = p.id UNION ALL SELECT name, NULL FROM p "
        "WHERE id > 1";
    create("st", q);
    exec("UPDATE p SET name = 'Alice' WHERE id = 1");
    refresh_and_expect_same_images("st", q, "case-only update of a joined row");
    exec("UPDATE c SET tag = 'resumé' WHERE pid = 2 AND tag = 'résumé'");
    refresh_and_expect_same_images("st", q, "accent-only update of the other side");
    exec("DELETE FROM p WHERE id = 2");
    refresh_and_expect_same_images("st", q, "one spelling deleted");
}

// Groups follow PostgreSQL: values equal under the key's collation are one group.
TEST_F(RowIdentity, grouping_under_a_case_insensitive_collation_keeps_one_group) {
    exec(
        "CREATE TABLE src (id serial PRIMARY KEY, name text COLLATE ci, code text COLLATE \"C\", "
        "amount numeric)");
    exec(
        "INSERT INTO src (name, code, amount) VALUES ('alice', 'x', 1.0), ('ALICE', 'x', 2), "
        "('bob', 'y', 1.5), ('Bob', 'Y', NULL)");
    struct Grouped {
        std::string st, query, rest;  ///< `rest`: the columns after the key
    };
    const Grouped grouped[] = {
        {"g1", "SELECT name, count(*) AS n, sum(amount) AS total FROM src GROUP BY name",
         ", n, total"},
        {"g2", "SELECT name, code, count(*) AS n FROM src GROUP BY name, code", ", code, n"},
        {"g3", "SELECT DISTINCT name FROM src", ""}};
    for (const auto& g : grouped) {
        create(g.st, g.query);
    }
    // Which spelling a group shows is PostgreSQL's choice: keys are compared case-folded, the
    // rest byte-wise (a sum shows the largest scale of its values).
    auto folded = [](const std::string& q, const std::string& rest) {
        return "SELECT lower(name) COLLATE \"C\" AS name" + rest + " FROM (" + q + ") AS f";
    };
    auto check = [&](const std::string& step) {
        for (const auto& g : grouped) {
            exec("CALL pgtrickle.refresh_stream_table('" + g.st + "')");
            EXPECT_EQ(scalar("SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables WHERE "
                             "pgt_name = '" +
                             g.st + "'"),
                      "differential")
                << step << " " << g.st;
            const std::string stored = images(folded("SELECT * FROM " + g.st, g.rest));
            const std::string fresh = images(folded(g.query, g.rest));
            EXPECT_EQ(multiset_diff(stored, fresh), 0)
                << step << ": " << g.st << " differs from its query\n  stored:\n"
                << listing(rows(stored)) << "  query:\n"
                << listing(rows(fresh));
        }
    };
    exec("INSERT INTO src (name, code, amount) VALUES ('Alice', 'x', 1.0), ('aLiCe', 'x', 1.00)");
    check("two more spellings inserted");
    exec("DELETE FROM src WHERE name COLLATE \"C\" = 'ALICE'");
    check("one spelling deleted");
    exec("UPDATE src SET name = upper(name) WHERE name COLLATE \"C\" = 'bob'");
    check("case-only update");
    exec("UPDATE src SET amount = 1.000 WHERE amount = 1.0 AND name COLLATE \"C\" = 'Alice'");
    check("scale-only update");
    exec("UPDATE src SET code = 'X' WHERE name COLLATE \"C\" = 'aLiCe'");
    check("second key changed");
    EXPECT_EQ(scalar("SELECT count(*) FROM g1"), scalar("SELECT count(DISTINCT name) FROM src"));
}

// An aggregate below the top recomputes its old state from the current rows and the delta;
// that old state must keep every spelling, since the block's own expressions can tell them
// apart (here by comparing under "C").
TEST_F(RowIdentity, aggregate_below_the_top_sees_every_spelling_of_its_old_state) {
    exec("CREATE TABLE src (g int, name text COLLATE ci)");
    exec("INSERT INTO src VALUES (1, 'alice'), (1, 'ALICE'), (1, 'ALICE'), (2, 'bob')");
    const std::string q =
        "SELECT s.g, s.upper_n, s.n FROM (SELECT g, count(*) FILTER (WHERE name COLLATE \"C\" = "
        "upper(name) COLLATE \"C\") AS upper_n, count(*) AS n FROM src GROUP BY g) AS s";
    const std::string u =
        "SELECT g, name COLLATE \"C\" = upper(name) COLLATE \"C\" AS is_upper, count(*) AS n "
        "FROM src GROUP BY g, name COLLATE \"C\" = upper(name) COLLATE \"C\" UNION ALL SELECT g, "
        "NULL, 0 FROM src WHERE g > 100";
    create("st", q);
    create("st_u", u);
    auto check = [&](const std::string& step) {
        refresh_and_expect_same_images("st", q, step);
        refresh_and_expect_same_images("st_u", u, step);
    };
    exec("DELETE FROM src WHERE name COLLATE \"C\" = 'alice'");
    check("the lower-case spelling deleted");
    exec("INSERT INTO src VALUES (1, 'alice'), (2, 'BOB')");
    check("spellings inserted");
    exec("UPDATE src SET name = 'alice' WHERE g = 1 AND name COLLATE \"C\" = 'ALICE'");
    check("case-only update");
    exec("UPDATE src SET name = 'bob' WHERE g = 2");
    check("case-only update of another group");
}

// A group below the top shows one of its spellings, PostgreSQL's choice, which a
// recomputation may make differently: the stream table keeps one row per group whatever
// spelling the old and the new state show (compared under the values' own equality).
TEST_F(RowIdentity, groups_below_the_top_keep_one_row_whichever_spelling_they_show) {
    exec("CREATE TABLE src (id serial PRIMARY KEY, x numeric, name text COLLATE ci)");
    const std::string q1 =
        "SELECT s.x, s.n FROM (SELECT x, count(*) AS n FROM src GROUP BY x) AS s";
    const std::string q2 =
        "SELECT s.g, s.lo, s.hi FROM (SELECT x > 1 AS g, min(name) AS lo, max(x) AS hi FROM src "
        "GROUP BY x > 1) AS s";
    const std::string q3 =
        "SELECT name, count(*) AS n FROM src GROUP BY name UNION ALL SELECT name, 0 FROM src "
        "WHERE x > 2";
    const std::string q4 = "SELECT s.name FROM (SELECT DISTINCT name FROM src) AS s";
    const char* xs[] = {"1.0", "1.00", "1.000", "1", "2.0", "2.00", "3"};
    const char* names[] = {"alice", "ALICE", "Alice", "bob", "BOB"};
    std::mt19937 rng(42);
    auto pick = [&](int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); };
    auto insert_some = [&](int n) {
        for (int i = 0; i < n; ++i) {
            exec("INSERT INTO src (x, name) VALUES (" + std::string(xs[pick(7)]) + ", '" +
                 names[pick(5)] + "')");
        }
    };
    insert_some(12);
    create("st1", q1);
    create("st2", q2);
    create("st3", q3);
    create("st4", q4);
    for (int round = 0; round < 12; ++round) {
        insert_some(3);
        exec("DELETE FROM src WHERE id IN (SELECT id FROM src ORDER BY md5(id::text || '" +
             std::to_string(round) + "') LIMIT 2)");
        exec("UPDATE src SET name = upper(name) WHERE id % 5 = " + std::to_string(round % 5));
        exec("UPDATE src SET x = x::numeric(10, 3) WHERE id % 4 = " + std::to_string(round % 4));
        for (const auto& [st, q] : std::vector<std::pair<std::string, std::string>>{
                 {"st1", q1}, {"st2", q2}, {"st3", q3}, {"st4", q4}}) {
            exec("CALL pgtrickle.refresh_stream_table('" + st + "')");
            EXPECT_EQ(scalar("SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables WHERE "
                             "pgt_name = '" +
                             st + "'"),
                      "differential")
                << "round " << round << " " << st;
            expect_matches_query(st, q);
            EXPECT_EQ(scalar("SELECT count(*) FROM " + st),
                      scalar("SELECT count(*) FROM (" + q + ") AS q"))
                << "round " << round << " " << st;
        }
    }
}

// 0.35.0 hashes each value of a row id under its own collation ('alice' and 'ALICE' of a
// case-insensitive column beside a "C" column had two group ids). Stored ids of values of
// nondeterministic collations change: the upgrade, and the downgrade back, schedule full
// refreshes in a database that has such a collation.
TEST_F(RowIdentity, upgrade_and_downgrade_recompute_stream_tables_whose_row_ids_change) {
    // (Downgraded rather than dropped and created again: a DROP EXTENSION just after the
    // CREATE EXTENSION that woke the scheduler can fail its tick.)
    exec("ALTER EXTENSION pg_trickle UPDATE TO '0.34.0'");
    exec("CREATE TABLE src (id serial PRIMARY KEY, name text COLLATE ci, code text COLLATE \"C\")");
    exec("INSERT INTO src (name, code) VALUES ('alice', 'x'), ('ALICE', 'x'), ('bob', 'y')");
    const std::string g = "SELECT name, code, count(*) AS n FROM src GROUP BY name, code";
    const std::string r = "SELECT name, code FROM src";
    create("g", g);
    create("r", r);
    exec("INSERT INTO src (name, code) VALUES ('bob', 'z'), ('Bob', 'z')");
    exec("CALL pgtrickle.refresh_stream_table('r')");
    expect_matches_query("r", r);  // 0.34.0: consolidated by equality, compared likewise
    auto needs_full = [&] {
        return scalar(
            "SELECT string_agg(pgt_name || '=' || needs_full_refresh, ',' ORDER BY pgt_name) "
            "FROM pgtrickle.pgt_stream_tables");
    };
    EXPECT_EQ(needs_full(), "g=false,r=false");
    exec("ALTER EXTENSION pg_trickle UPDATE TO '0.35.0'");
    EXPECT_EQ(needs_full(), "g=true,r=true");
    EXPECT_EQ(scalar("SELECT DISTINCT full_refresh_reason FROM pgtrickle.pgt_stream_tables"),
              "pg_trickle 0.35.0 hashes row ids under each value's own collation");
    exec("INSERT INTO src (name, code) VALUES ('Alice', 'x')");
    for (const char* st : {"g", "r"}) {
        exec("CALL pgtrickle.refresh_stream_table('" + std::string(st) + "')");
        EXPECT_EQ(scalar("SELECT mode || ': ' || reason FROM pgtrickle.pgt_refresh_history h "
                         "JOIN pgtrickle.pgt_stream_tables s USING (pgt_id) WHERE s.pgt_name = '" +
                         std::string(st) + "' ORDER BY history_id DESC LIMIT 1"),
                  "full: pg_trickle 0.35.0 hashes row ids under each value's own collation");
    }
    EXPECT_EQ(needs_full(), "g=false,r=false");
    exec("INSERT INTO src (name, code) VALUES ('aLiCe', 'x'), ('BOB', 'y')");
    exec("DELETE FROM src WHERE name COLLATE \"C\" = 'ALICE'");
    refresh_and_expect_same_images("r", r, "after the upgrade");
    exec("CALL pgtrickle.refresh_stream_table('g')");
    const std::string folded = "SELECT lower(name) COLLATE \"C\", code, n FROM ";
    EXPECT_EQ(multiset_diff(images(folded + "g"), images(folded + "(" + g + ") AS q")), 0)
        << "groups of a case-insensitive and a \"C\" key:\n"
        << listing(rows("SELECT * FROM g"));
    exec("ALTER EXTENSION pg_trickle UPDATE TO '0.34.0'");
    EXPECT_EQ(needs_full(), "g=true,r=true");
    exec("CALL pgtrickle.refresh_stream_table('r')");
    EXPECT_EQ(scalar("SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables WHERE pgt_name "
                     "= 'r'"),
              "full");
    exec("INSERT INTO src (name, code) VALUES ('carol', 'x')");
    exec("CALL pgtrickle.refresh_stream_table('r')");
    expect_matches_query("r", r);
}

// Without a nondeterministic collation no row id changes: nothing is recomputed.
TEST_F(RowIdentity, upgrade_recomputes_nothing_without_nondeterministic_collations) {
    exec("DROP COLLATION ci");
    exec("DROP COLLATION ai");
    exec("ALTER EXTENSION pg_trickle UPDATE TO '0.34.0'");
    exec("CREATE TABLE src (name text, code text COLLATE \"C\")");
    exec("INSERT INTO src VALUES ('alice', 'x')");
    create("r", "SELECT name, code FROM src");
    exec("ALTER EXTENSION pg_trickle UPDATE TO '0.35.0'");
    EXPECT_EQ(scalar("SELECT needs_full_refresh FROM pgtrickle.pgt_stream_tables"), "f");
    exec("INSERT INTO src VALUES ('ALICE', 'x')");
    refresh_and_expect_same_images("r", "SELECT name, code FROM src", "after the upgrade");
}

}  // namespace
}  // namespace pgt::test
