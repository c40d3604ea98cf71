// ADD COLUMN on a source while changes are pending in its buffer: buffer rows written before
// the column existed must read the value the source's existing rows have (its DEFAULT), or
// an old/new-state computation (a grouped FROM subquery consolidates over every column of
// its table) keeps both the old and the new version of a group. A default the buffer cannot
// reproduce (volatile, generated, identity) makes the readers recompute.
#include "pg_fixture.h"

namespace pgt::test {
namespace {

const char* const kGroupedSub =
    "SELECT s.k, s.n, s.mx FROM (SELECT k, count(*) AS n, max(v) AS mx FROM t GROUP BY k) s";

class CaptureAddColumn : public PgTest {
  protected:
    void create(const std::string& name, const std::string& q) {
        exec("CALL pgtrickle.create_stream_table(name => '" + name + "', query => $q$" + q +
             "$q$)");
    }
    void refresh_and_check(const std::string& name, const std::string& q) {
        exec("CALL pgtrickle.refresh_stream_table('" + name + "')");
        expect_matches_query(name, q);
    }
    std::string mode_of(const std::string& name) {
        return scalar(
            "SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables WHERE pgt_name = '" + name +
            "'");
    }
    /// Rows, pending changes of every kind, then `alter`, then more changes.
    void setup_with_pending(const std::string& alter) {
        exec("CREATE TABLE t (id int PRIMARY KEY, k int, v int)");
        exec("INSERT INTO t SELECT g, g % 4, g FROM generate_series(1, 40) g");
        create("st", kGroupedSub);
        exec("INSERT INTO t SELECT g, g % 4, g FROM generate_series(41, 50) g");
        exec("UPDATE t SET v = v + 100 WHERE id % 5 = 0");
        exec("DELETE FROM t WHERE id % 7 = 0");
        exec(alter);
        exec("INSERT INTO t (id, k, v) SELECT g, g % 4, g FROM generate_series(51, 55) g");
        exec("UPDATE t SET v = v + 1000 WHERE id % 3 = 0");
        exec("DELETE FROM t WHERE id % 11 = 0");
    }
};

TEST_F(CaptureAddColumn, default_constant_with_pending_changes_grouped_subquery) {
    setup_with_pending("ALTER TABLE t ADD COLUMN c int DEFAULT 5");
    refresh_and_check("st", kGroupedSub);
    EXPECT_EQ(mode_of("st"), "differential");
    exec("UPDATE t SET c = c + 1 WHERE id % 2 = 0");
    exec("DELETE FROM t WHERE id % 13 = 0");
    refresh_and_check("st", kGroupedSub);
}

TEST_F(CaptureAddColumn, not_null_default_with_pending_changes) {
    setup_with_pending("ALTER TABLE t ADD COLUMN c text NOT NULL DEFAULT 'x'");
    refresh_and_check("st", kGroupedSub);
    EXPECT_EQ(mode_of("st"), "differential");
}

TEST_F(CaptureAddColumn, stable_default_with_pending_changes) {
    setup_with_pending("ALTER TABLE t ADD COLUMN c timestamptz DEFAULT now()");
    refresh_and_check("st", kGroupedSub);
    EXPECT_EQ(mode_of("st"), "differential");
}

TEST_F(CaptureAddColumn, no_default_stays_differential) {
    setup_with_pending("ALTER TABLE t ADD COLUMN c int");
    refresh_and_check("st", kGroupedSub);
    EXPECT_EQ(mode_of("st"), "differential");
}

TEST_F(CaptureAddColumn, two_columns_in_one_statement_and_a_later_add) {
    setup_with_pending(
        "ALTER TABLE t ADD COLUMN c int DEFAULT 5, ADD COLUMN d numeric NOT NULL DEFAULT 1.5");
    exec("ALTER TABLE t ADD COLUMN e varchar(3) DEFAULT 'abc'");
    exec("UPDATE t SET v = v + 1 WHERE id % 4 = 0");
    refresh_and_check("st", kGroupedSub);
    EXPECT_EQ(mode_of("st"), "differential");
}

TEST_F(CaptureAddColumn, volatile_default_with_pending_changes_recomputes) {
    setup_with_pending("ALTER TABLE t ADD COLUMN c int DEFAULT (random() * 1000)::int");
    refresh_and_check("st", kGroupedSub);
    EXPECT_EQ(mode_of("st"), "full");  // the buffered rows cannot know the values
    // Afterwards, maintained differentially again.
    exec("INSERT INTO t (id, k, v) VALUES (100, 1, 1)");
    exec("UPDATE t SET v = v + 1 WHERE id % 2 = 0");
    refresh_and_check("st", kGroupedSub);
    EXPECT_EQ(mode_of("st"), "differential");
}

TEST_F(CaptureAddColumn, generated_and_identity_columns_with_pending_changes) {
    setup_with_pending("ALTER TABLE t ADD COLUMN g int GENERATED ALWAYS AS (v * 2) STORED");
    refresh_and_check("st", kGroupedSub);
    exec("UPDATE t SET v = v + 1 WHERE id % 2 = 0");
    exec("ALTER TABLE t ADD COLUMN i int GENERATED ALWAYS AS IDENTITY");
    exec("DELETE FROM t WHERE id % 9 = 0");
    refresh_and_check("st", kGroupedSub);
}

TEST_F(CaptureAddColumn, volatile_default_with_empty_buffer_stays_differential) {
    exec("CREATE TABLE t (id int PRIMARY KEY, k int, v int)");
    exec("INSERT INTO t SELECT g, g % 4, g FROM generate_series(1, 40) g");
    create("st", kGroupedSub);
    exec("ALTER TABLE t ADD COLUMN c int DEFAULT (random() * 1000)::int");
    exec("UPDATE t SET v = v + 1 WHERE id % 2 = 0");
    refresh_and_check("st", kGroupedSub);
    EXPECT_EQ(mode_of("st"), "differential");
}

TEST_F(CaptureAddColumn, partitioned_source_with_pending_changes) {
    exec("CREATE TABLE t (id int, k int, v int) PARTITION BY RANGE (id)");
    exec("CREATE TABLE t1 PARTITION OF t FOR VALUES FROM (0) TO (30)");
    exec("CREATE TABLE t2 PARTITION OF t FOR VALUES FROM (30) TO (1000)");
    exec("INSERT INTO t SELECT g, g % 4, g FROM generate_series(1, 40) g");
    create("st", kGroupedSub);
    exec("INSERT INTO t SELECT g, g % 4, g FROM generate_series(41, 50) g");
    exec("UPDATE t SET v = v + 100 WHERE id % 5 = 0");
    exec("DELETE FROM t WHERE id % 7 = 0");
    exec("ALTER TABLE t ADD COLUMN c int DEFAULT 5");
    exec("UPDATE t SET v = v + 1000 WHERE id % 3 = 0");
    exec("DELETE FROM t WHERE id % 11 = 0");
    refresh_and_check("st", kGroupedSub);
    exec("UPDATE t SET c = c + 1, v = v + 1 WHERE id % 2 = 0");
    refresh_and_check("st", kGroupedSub);
    EXPECT_EQ(mode_of("st"), "differential");
}

TEST_F(CaptureAddColumn, stream_table_reads_the_new_column) {
    // `other` keeps the buffer rows of before the ADD COLUMN pending while `st` is redefined
    // to read the new column.
    const std::string q2 =
        "SELECT s.k, s.n, s.sc FROM (SELECT k, count(*) AS n, sum(c) AS sc, max(v) AS mx FROM t "
        "GROUP BY k) s";
    const std::string q3 = "SELECT s.c, s.n FROM (SELECT c, count(*) AS n FROM t GROUP BY c) s";
    exec("CREATE TABLE t (id int PRIMARY KEY, k int, v int)");
    exec("INSERT INTO t SELECT g, g % 4, g FROM generate_series(1, 40) g");
    create("st", kGroupedSub);
    create("other", kGroupedSub);
    exec("INSERT INTO t SELECT g, g % 4, g FROM generate_series(41, 50) g");
    exec("UPDATE t SET v = v + 100 WHERE id % 5 = 0");
    exec("ALTER TABLE t ADD COLUMN c int NOT NULL DEFAULT 5");
    exec("CALL pgtrickle.alter_stream_table('st', query => $q$" + q2 + "$q$)");
    create("third", q3);
    exec("INSERT INTO t (id, k, v, c) SELECT g, g % 4, g, g % 3 FROM generate_series(51, 60) g");
    exec("UPDATE t SET c = c + 1 WHERE id % 4 = 0");
    exec("DELETE FROM t WHERE id % 7 = 0");
    refresh_and_check("st", q2);
    refresh_and_check("other", kGroupedSub);
    refresh_and_check("third", q3);
    EXPECT_EQ(mode_of("other"), "differential");
    EXPECT_EQ(mode_of("third"), "differential");
    exec("UPDATE t SET c = c + 1, v = v + 1 WHERE id % 3 = 0");
    refresh_and_check("st", q2);
    refresh_and_check("third", q3);
    EXPECT_EQ(mode_of("st"), "differential");
}

TEST_F(CaptureAddColumn, add_column_in_the_transaction_of_pending_writes) {
    exec("CREATE TABLE t (id int PRIMARY KEY, k int, v int)");
    exec("INSERT INTO t SELECT g, g % 4, g FROM generate_series(1, 40) g");
    create("st", kGroupedSub);
    exec(
        "BEGIN; INSERT INTO t VALUES (41, 1, 41); UPDATE t SET v = v + 1 WHERE id % 2 = 0; "
        "ALTER TABLE t ADD COLUMN c int DEFAULT 7; UPDATE t SET v = v + 1 WHERE id % 3 = 0; "
        "COMMIT");
    refresh_and_check("st", kGroupedSub);
    EXPECT_EQ(mode_of("st"), "differential");
}

// Casts to composite types, maintained differentially.
class EngineComposite : public CaptureAddColumn {
  protected:
    void SetUp() override {
        CaptureAddColumn::SetUp();
        exec("CREATE TYPE mytype AS (a int, b text)");
        exec("CREATE TABLE t (id int PRIMARY KEY, k int, a int, b text)");
        exec("INSERT INTO t SELECT g, g % 4, g % 5, 'b' || (g % 3) FROM generate_series(1, 40) g");
    }
    void check_differential(const std::string& q) {
        create("st", q);
        EXPECT_EQ(scalar("SELECT effective_mode FROM pgtrickle.pgt_stream_tables WHERE pgt_name = "
                         "'st'"),
                  "differential")
            << scalar("SELECT mode_reason FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'st'");
        exec("INSERT INTO t SELECT g, g % 4, g % 5, 'b' || (g % 3) FROM generate_series(41, 50) g");
        exec("UPDATE t SET a = a + 1 WHERE id % 3 = 0");
        exec("UPDATE t SET b = NULL WHERE id % 8 = 0");
        exec("DELETE FROM t WHERE id % 7 = 0");
        refresh_and_check("st", q);
        EXPECT_EQ(mode_of("st"), "differential");
        exec("UPDATE t SET b = 'z', a = NULL WHERE id % 5 = 0");
        exec("DELETE FROM t WHERE id % 6 = 0");
        refresh_and_check("st", q);
    }
};

TEST_F(EngineComposite, row_cast_in_select_list) {
    check_differential("SELECT id, ROW(a, b)::mytype AS r FROM t");
}

TEST_F(EngineComposite, implicit_row_cast_and_field_of_it) {
    check_differential("SELECT id, (a, b)::mytype AS r, ((a, b)::mytype).b AS rb FROM t");
}

TEST_F(EngineComposite, grouped_by_a_composite_cast) {
    check_differential(
        "SELECT (a, b)::mytype AS r, count(*) AS n, sum(id) AS s FROM t GROUP BY (a, b)::mytype");
}

TEST_F(EngineComposite, composite_cast_in_a_grouped_subquery) {
    check_differential(
        "SELECT s.r, s.n FROM (SELECT (a, b)::mytype AS r, count(*) AS n FROM t GROUP BY 1) s");
}

TEST_F(EngineComposite, composite_cast_in_a_plain_subquery_then_grouped) {
    check_differential(
        "SELECT s.k, count(*) AS n, max((s.r).a) AS m FROM (SELECT k, ROW(a, b)::mytype AS r FROM "
        "t) s GROUP BY s.k");
}

TEST_F(EngineComposite, cast_to_a_composite_type_with_a_dropped_attribute) {
    exec("ALTER TYPE mytype ADD ATTRIBUTE gone int, ADD ATTRIBUTE c numeric");
    exec("ALTER TYPE mytype DROP ATTRIBUTE gone");
    check_differential(
        "SELECT k, (a, b, a * 1.5)::mytype AS r, count(*) AS n FROM t GROUP BY k, (a, b, a * "
        "1.5)::mytype");
}

TEST_F(EngineComposite, min_max_over_a_subquery_aliased_like_internal_names) {
    check_differential(
        "SELECT s.k, max(s.a) AS mx, min(s.b) AS mn FROM (SELECT k, a, b FROM t) s GROUP BY s.k");
}

TEST_F(EngineComposite, distinct_composite_cast) {
    check_differential("SELECT DISTINCT (a, b)::mytype AS r FROM t");
}

}  // namespace
}  // namespace pgt::test
