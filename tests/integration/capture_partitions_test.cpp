// Partitioned tables and inheritance hierarchies as sources: writes that reach a source
// through any member of its hierarchy are captured, in the source's column layout, and
// changes of the hierarchy itself (ATTACH, DETACH, INHERIT, NO INHERIT, DROP, TRUNCATE of
// a member) are reflected. Every case is checked against the query re-run.
#include "pg_fixture.h"

namespace pgt::test {
namespace {

const char* const kAgg = "SELECT k, count(*) AS n, sum(v) AS s FROM m GROUP BY k";
const char* const kRows = "SELECT id, k, v FROM m WHERE v > 10";

class CapturePartitions : public PgTest {
  protected:
    void create_stream_tables() {
        exec(std::string("CALL pgtrickle.create_stream_table(name => 'agg', query => $q$") + kAgg +
             "$q$)");
        exec(std::string("CALL pgtrickle.create_stream_table(name => 'rws', query => $q$") + kRows +
             "$q$)");
    }
    void refresh_and_check() {
        exec("CALL pgtrickle.refresh_stream_table('agg')");
        exec("CALL pgtrickle.refresh_stream_table('rws')");
        expect_matches_query("agg", kAgg);
        expect_matches_query("rws", kRows);
    }
    std::string mode(const std::string& st) {
        return scalar(
            "SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables WHERE pgt_name = '" + st +
            "'");
    }
};

TEST_F(CapturePartitions, dml_directly_on_partitions_is_captured_in_the_parents_layout) {
    exec("CREATE TABLE m (id int, k int, v int) PARTITION BY RANGE (id)");
    exec("CREATE TABLE p1 PARTITION OF m FOR VALUES FROM (0) TO (100)");
    exec("CREATE TABLE p2 (junk text, v int, k int, id int)");
    exec("ALTER TABLE p2 DROP COLUMN junk");
    exec("ALTER TABLE m ATTACH PARTITION p2 FOR VALUES FROM (100) TO (200)");
    exec("INSERT INTO m SELECT g, g % 4, g FROM generate_series(0, 199) g");
    create_stream_tables();
    exec("INSERT INTO p1 VALUES (50, 9, 1000)");  // into a partition directly
    exec("INSERT INTO p2 (id, k, v) VALUES (150, 7, 77), (151, 7, 5)");
    exec("UPDATE p2 SET v = v + 1000 WHERE id % 3 = 0");
    exec("DELETE FROM p1 WHERE id % 5 = 0");
    exec("UPDATE m SET id = id + 100 WHERE id BETWEEN 10 AND 20");  // moves rows to p2
    exec("INSERT INTO m VALUES (5, 1, 55)");                        // routed through the parent
    refresh_and_check();
    EXPECT_EQ(mode("agg"), "differential");
    EXPECT_EQ(mode("rws"), "differential");
}

TEST_F(CapturePartitions, truncate_of_one_partition_forces_a_full_refresh) {
    exec("CREATE TABLE m (id int, k int, v int) PARTITION BY LIST (k)");
    exec("CREATE TABLE p0 PARTITION OF m FOR VALUES IN (0, 1)");
    exec("CREATE TABLE p2 PARTITION OF m FOR VALUES IN (2, 3)");
    exec("INSERT INTO m SELECT g, g % 4, g FROM generate_series(1, 100) g");
    create_stream_tables();
    exec("TRUNCATE p2");
    refresh_and_check();
    EXPECT_EQ(mode("agg"), "full");
    exec("INSERT INTO p2 VALUES (1000, 2, 99)");
    refresh_and_check();
    EXPECT_EQ(mode("agg"), "differential");
}

TEST_F(CapturePartitions, attach_with_rows_and_detach_change_the_parents_contents) {
    exec("CREATE TABLE m (id int, k int, v int) PARTITION BY RANGE (id)");
    exec("CREATE TABLE p1 PARTITION OF m FOR VALUES FROM (0) TO (100)");
    exec("INSERT INTO m SELECT g, g % 4, g FROM generate_series(0, 99) g");
    create_stream_tables();
    exec("CREATE TABLE p2 (v int, id int, k int)");
    exec("INSERT INTO p2 SELECT g, g + 100, g % 3 FROM generate_series(0, 99) g");
    exec("ALTER TABLE m ATTACH PARTITION p2 FOR VALUES FROM (100) TO (200)");
    refresh_and_check();
    // Writes to the attached partition are captured from now on.
    exec("UPDATE p2 SET v = v + 1 WHERE id % 2 = 0");
    refresh_and_check();
    EXPECT_EQ(mode("agg"), "differential");
    exec("ALTER TABLE m DETACH PARTITION p1");
    refresh_and_check();
    // The detached table is no longer part of the source: its writes are not captured.
    exec("INSERT INTO p1 VALUES (1, 1, 1000)");
    exec("INSERT INTO m VALUES (150, 1, 1000)");
    refresh_and_check();
    EXPECT_EQ(mode("agg"), "differential");
}

TEST_F(CapturePartitions, detach_partition_concurrently_is_reflected) {
    exec("CREATE TABLE m (id int, k int, v int) PARTITION BY RANGE (id)");
    exec("CREATE TABLE p1 PARTITION OF m FOR VALUES FROM (0) TO (100)");
    exec("CREATE TABLE p2 PARTITION OF m FOR VALUES FROM (100) TO (200)");
    exec("INSERT INTO m SELECT g, g % 4, g FROM generate_series(0, 199) g");
    create_stream_tables();
    exec("ALTER TABLE m DETACH PARTITION p2 CONCURRENTLY");
    refresh_and_check();
    exec("INSERT INTO p2 VALUES (150, 1, 1000)");  // no longer part of m
    exec("INSERT INTO m VALUES (50, 1, 1000)");
    refresh_and_check();
    EXPECT_EQ(scalar("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'p2'::regclass"), "0");
}

TEST_F(CapturePartitions, foreign_table_partitions_are_refused_not_silently_missed) {
    exec("CREATE FOREIGN DATA WRAPPER nowhere");
    exec("CREATE SERVER elsewhere FOREIGN DATA WRAPPER nowhere");
    exec("CREATE TABLE m (id int, k int, v int) PARTITION BY RANGE (id)");
    exec("CREATE TABLE p1 PARTITION OF m FOR VALUES FROM (0) TO (100)");
    exec("INSERT INTO m SELECT g, g % 4, g FROM generate_series(0, 99) g");
    create_stream_tables();
    const std::string err = error_of(
        "CREATE FOREIGN TABLE fp PARTITION OF m FOR VALUES FROM (100) TO (200) SERVER elsewhere");
    EXPECT_NE(err.find("0A000"), std::string::npos) << err;
    EXPECT_NE(err.find("foreign"), std::string::npos) << err;
    exec("CREATE FOREIGN TABLE fp (id int, k int, v int) SERVER elsewhere");
    EXPECT_NE(error_of("ALTER TABLE m ATTACH PARTITION fp FOR VALUES FROM (100) TO (200)")
                  .find("foreign"),
              std::string::npos);
    exec("CREATE TABLE m2 (id int, k int, v int) PARTITION BY RANGE (id)");
    exec("ALTER TABLE m2 ATTACH PARTITION fp FOR VALUES FROM (100) TO (200)");
    EXPECT_NE(error_of("CALL pgtrickle.create_stream_table(name => 'x', query => 'SELECT k FROM "
                       "m2')")
                  .find("foreign"),
              std::string::npos);
}

TEST_F(CapturePartitions, partitions_created_after_the_stream_table_are_captured) {
    exec("CREATE TABLE m (id int, k int, v int) PARTITION BY RANGE (id)");
    exec("CREATE TABLE p1 PARTITION OF m FOR VALUES FROM (0) TO (100)");
    exec("INSERT INTO m SELECT g, g % 4, g FROM generate_series(0, 99) g");
    create_stream_tables();
    exec("CREATE TABLE p2 PARTITION OF m FOR VALUES FROM (100) TO (200)");
    exec("CREATE TABLE pd PARTITION OF m DEFAULT");
    exec("INSERT INTO p2 VALUES (120, 1, 50), (121, 2, 60)");
    exec("INSERT INTO pd VALUES (900, 3, 70)");
    exec("UPDATE pd SET v = 71");
    refresh_and_check();
    EXPECT_EQ(mode("agg"), "differential");
}

TEST_F(CapturePartitions, multi_level_partitions_are_captured_at_every_level) {
    exec("CREATE TABLE m (id int, k int, v int) PARTITION BY RANGE (id)");
    exec("CREATE TABLE p1 PARTITION OF m FOR VALUES FROM (0) TO (100)");
    exec("CREATE TABLE mid (k int, id int, v int) PARTITION BY LIST (k)");
    exec("CREATE TABLE leaf_a PARTITION OF mid FOR VALUES IN (0, 1)");
    exec("CREATE TABLE leaf_b (x int, v int, id int, k int)");
    exec("ALTER TABLE leaf_b DROP COLUMN x");
    exec("ALTER TABLE mid ATTACH PARTITION leaf_b FOR VALUES IN (2, 3)");
    exec("ALTER TABLE m ATTACH PARTITION mid FOR VALUES FROM (100) TO (200)");
    exec("INSERT INTO m SELECT g, g % 4, g FROM generate_series(0, 199) g");
    create_stream_tables();
    exec("INSERT INTO mid VALUES (0, 150, 500)");  // into the middle level
    exec("UPDATE leaf_b SET v = v * 2");           // into a leaf, directly
    exec("DELETE FROM leaf_a WHERE id % 2 = 0");
    exec("CREATE TABLE leaf_c PARTITION OF mid FOR VALUES IN (4)");  // new leaf, deep
    exec("INSERT INTO leaf_c VALUES (4, 160, 44)");
    refresh_and_check();
    EXPECT_EQ(mode("agg"), "differential");
    exec("ALTER TABLE mid DETACH PARTITION leaf_a");
    refresh_and_check();
}

TEST_F(CapturePartitions, inheritance_children_are_captured) {
    exec("CREATE TABLE m (id int, k int, v int)");
    exec("CREATE TABLE c1 (extra text) INHERITS (m)");
    exec("INSERT INTO m SELECT g, g % 4, g FROM generate_series(1, 50) g");
    exec("INSERT INTO c1 SELECT g, g % 4, g, 'x' FROM generate_series(51, 100) g");
    create_stream_tables();
    exec("INSERT INTO c1 VALUES (200, 1, 200, 'y')");
    exec("UPDATE c1 SET v = v + 1000 WHERE id % 2 = 0");
    exec("UPDATE m SET v = v - 1 WHERE id % 3 = 0");  // reaches the child's rows as well
    exec("CREATE TABLE c2 (id int, k int, v int)");
    exec("INSERT INTO c2 VALUES (300, 2, 30), (301, 3, 31)");
    exec("ALTER TABLE c2 INHERIT m");  // rows join the parent's contents
    refresh_and_check();
    exec("DELETE FROM c2 WHERE id = 300");
    refresh_and_check();
    EXPECT_EQ(mode("agg"), "differential");
    exec("ALTER TABLE c1 NO INHERIT m");  // rows leave it
    refresh_and_check();
    exec("INSERT INTO c1 VALUES (400, 1, 400, 'z')");  // no longer a source
    exec("INSERT INTO m VALUES (401, 1, 401)");
    refresh_and_check();
    EXPECT_EQ(mode("agg"), "differential");
}

TEST_F(CapturePartitions, dropping_a_partition_with_rows_is_reflected) {
    exec("CREATE TABLE m (id int, k int, v int) PARTITION BY RANGE (id)");
    exec("CREATE TABLE p1 PARTITION OF m FOR VALUES FROM (0) TO (100)");
    exec("CREATE TABLE p2 PARTITION OF m FOR VALUES FROM (100) TO (200)");
    exec("INSERT INTO m SELECT g, g % 4, g FROM generate_series(0, 199) g");
    create_stream_tables();
    exec("DROP TABLE p2");
    refresh_and_check();
}

TEST_F(CapturePartitions, partition_read_directly_sees_rows_routed_through_its_parent) {
    exec("CREATE TABLE m (id int, k int, v int) PARTITION BY RANGE (id)");
    exec("CREATE TABLE p1 (v int, k int, id int)");
    exec("ALTER TABLE m ATTACH PARTITION p1 FOR VALUES FROM (0) TO (100)");
    exec("CREATE TABLE p2 PARTITION OF m FOR VALUES FROM (100) TO (200) PARTITION BY LIST (k)");
    exec("CREATE TABLE p2a PARTITION OF p2 FOR VALUES IN (0, 1)");
    exec("CREATE TABLE p2b PARTITION OF p2 FOR VALUES IN (2, 3)");
    exec("INSERT INTO m SELECT g, g % 4, g FROM generate_series(0, 199) g");
    const std::string q1 = "SELECT k, count(*) AS n, sum(v) AS s FROM p1 GROUP BY k";
    const std::string q2 = "SELECT id, k, v FROM p2 WHERE v > 10";
    exec("CALL pgtrickle.create_stream_table(name => 's1', query => $q$" + q1 + "$q$)");
    exec("CALL pgtrickle.create_stream_table(name => 's2', query => $q$" + q2 + "$q$)");
    create_stream_tables();  // and the parent, read by other stream tables
    auto check = [&] {
        exec("CALL pgtrickle.refresh_stream_table('s1')");
        exec("CALL pgtrickle.refresh_stream_table('s2')");
        expect_matches_query("s1", q1);
        expect_matches_query("s2", q2);
        refresh_and_check();
    };
    exec("INSERT INTO m VALUES (1, 1, 1000), (150, 2, 1500)");        // routed
    exec("UPDATE m SET v = v + 1 WHERE id % 7 = 0");                  // through the parent
    exec("UPDATE m SET id = id + 100 WHERE id BETWEEN 10 AND 15");    // p1 -> p2
    exec("UPDATE m SET id = id - 150 WHERE id BETWEEN 160 AND 165");  // p2 -> p1
    exec("UPDATE p2 SET k = 3 WHERE k = 0 AND id < 130");             // p2a -> p2b
    exec("DELETE FROM m WHERE id % 11 = 0");
    exec("INSERT INTO p1 VALUES (5, 1, 50)");  // directly
    exec("DELETE FROM p2a WHERE id % 3 = 0");
    check();
    EXPECT_EQ(mode("s1"), "differential");
    EXPECT_EQ(mode("s2"), "differential");
    exec("TRUNCATE p2b");
    check();
    // A captured plain table that becomes a partition later.
    const std::string q3 = "SELECT k, sum(v) AS s FROM t3 GROUP BY k";
    exec("CREATE TABLE t3 (id int, k int, v int)");
    exec("INSERT INTO t3 VALUES (250, 1, 1)");
    exec("CALL pgtrickle.create_stream_table(name => 's3', query => $q$" + q3 + "$q$)");
    exec("ALTER TABLE m ATTACH PARTITION t3 FOR VALUES FROM (200) TO (300)");
    exec("INSERT INTO m VALUES (260, 2, 5)");
    exec("UPDATE m SET v = v + 10 WHERE id >= 200");
    check();
    exec("CALL pgtrickle.refresh_stream_table('s3')");
    expect_matches_query("s3", q3);
    exec("ALTER TABLE m DETACH PARTITION t3");
    exec("INSERT INTO t3 VALUES (270, 3, 7)");
    check();
    exec("CALL pgtrickle.refresh_stream_table('s3')");
    expect_matches_query("s3", q3);
}

TEST_F(CapturePartitions, inheritance_child_read_directly_sees_updates_through_its_parent) {
    exec("CREATE TABLE m (id int, k int, v int)");
    exec("CREATE TABLE c1 (extra text) INHERITS (m)");
    exec("CREATE TABLE c1x () INHERITS (c1)");
    exec("INSERT INTO c1 SELECT g, g % 4, g, 'x' FROM generate_series(1, 50) g");
    exec("INSERT INTO c1x SELECT g, g % 4, g, 'y' FROM generate_series(51, 60) g");
    const std::string q = "SELECT k, count(*) AS n, sum(v) AS s FROM c1 GROUP BY k";
    exec("CALL pgtrickle.create_stream_table(name => 'sc', query => $q$" + q + "$q$)");
    exec("UPDATE m SET v = v + 100 WHERE id % 2 = 0");
    exec("DELETE FROM m WHERE id % 5 = 0");
    exec("INSERT INTO c1x VALUES (70, 1, 70, 'z')");
    exec("CALL pgtrickle.refresh_stream_table('sc')");
    expect_matches_query("sc", q);
    EXPECT_EQ(mode("sc"), "differential");
}

TEST_F(CapturePartitions, from_only_over_a_table_with_children_is_maintained_by_full_refresh) {
    exec("CREATE TABLE m (id int, k int, v int)");
    exec("CREATE TABLE c1 () INHERITS (m)");
    exec("INSERT INTO m SELECT g, g % 4, g FROM generate_series(1, 50) g");
    exec("INSERT INTO c1 SELECT g, g % 4, g FROM generate_series(51, 100) g");
    const std::string q = "SELECT k, count(*) AS n FROM ONLY m GROUP BY k";
    EXPECT_NE(error_of("CALL pgtrickle.create_stream_table(name => 'own', query => $q$" + q +
                       "$q$, refresh_mode => 'differential')")
                  .find("FROM ONLY"),
              std::string::npos);
    exec("CALL pgtrickle.create_stream_table(name => 'own', query => $q$" + q + "$q$)");
    EXPECT_NE(scalar("SELECT mode_reason FROM pgtrickle.pgt_status WHERE pgt_name = 'own'")
                  .find("FROM ONLY"),
              std::string::npos);
    exec("INSERT INTO c1 VALUES (200, 1, 200)");
    exec("UPDATE m SET k = 0");  // parent and child rows
    exec("INSERT INTO m VALUES (201, 2, 2)");
    exec("CALL pgtrickle.refresh_stream_table('own')");
    expect_matches_query("own", q);
}

TEST_F(CapturePartitions, from_only_reader_falls_back_to_full_refresh_when_children_appear) {
    exec("CREATE TABLE m (id int, k int, v int)");
    exec("INSERT INTO m SELECT g, g % 4, g FROM generate_series(1, 50) g");
    const std::string q = "SELECT k, count(*) AS n FROM ONLY m GROUP BY k";
    exec("CALL pgtrickle.create_stream_table(name => 'own', query => $q$" + q + "$q$)");
    exec(
        "CALL pgtrickle.create_stream_table(name => 'strict', query => $q$SELECT k FROM ONLY m "
        "WHERE v > 3$q$, refresh_mode => 'differential')");
    EXPECT_NE(error_of("CREATE TABLE c1 () INHERITS (m)").find("refresh_mode"), std::string::npos);
    exec("CALL pgtrickle.drop_stream_table('strict')");
    exec("CREATE TABLE c1 () INHERITS (m)");
    EXPECT_EQ(scalar("SELECT effective_mode FROM pgtrickle.pgt_stream_tables"), "full");
    exec("INSERT INTO c1 VALUES (200, 1, 200)");
    exec("UPDATE m SET k = 0 WHERE id < 10");
    exec("CALL pgtrickle.refresh_stream_table('own')");
    expect_matches_query("own", q);
}

}  // namespace
}  // namespace pgt::test
