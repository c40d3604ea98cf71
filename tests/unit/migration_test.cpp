#include <gtest/gtest.h>

#include "core/migration.h"
#include "core/stable_name.h"

namespace pgt::migration {
namespace {

TEST(Migration, steps_walk_the_version_chain_both_ways) {
    auto up = steps("0.31.0", "0.35.0");
    ASSERT_EQ(up.size(), 4u);
    EXPECT_EQ(up.front().from, "0.31.0");
    EXPECT_EQ(up.back().to, "0.35.0");
    auto down = steps("0.35.0", "0.31.0");
    ASSERT_EQ(down.size(), 4u);
    EXPECT_EQ(down.back().to, "0.31.0");
    EXPECT_TRUE(steps("0.33.0", "0.33.0").empty());
    EXPECT_TRUE(steps("0.30.0", "0.35.0").empty());
}

TEST(Migration, upgrade_renames_every_capture_object_to_stable_names) {
    const auto p = plan("127.0.0.1:5432", "shop", "0.31.0", "0.35.0",
                        {{"16384", "public", "orders", std::nullopt}}, 3);
    EXPECT_TRUE(p.problems.empty());
    const std::string sn = stable_name("shop", "public", "orders");
    ASSERT_EQ(p.renames.size(), 7u);  // buffer, index, function, 4 triggers
    EXPECT_EQ(p.renames[0].from, "pgtrickle_changes.changes_16384");
    EXPECT_EQ(p.renames[0].to, "pgtrickle_changes.changes_" + sn);
    EXPECT_EQ(p.renames[3].kind, "trigger");
    EXPECT_EQ(p.renames[3].on, "\"public\".\"orders\"");
    EXPECT_EQ(p.frontier_rekeys, 3);
}

TEST(Migration, rollback_renames_back_to_oids_and_no_rename_within_one_naming_scheme) {
    const auto back = plan("n", "shop", "0.35.0", "0.31.0",
                           {{"16384", "public", "orders", std::string("abc")}}, 1);
    ASSERT_FALSE(back.renames.empty());
    EXPECT_EQ(back.renames[0].from, "pgtrickle_changes.changes_abc");
    EXPECT_EQ(back.renames[0].to, "pgtrickle_changes.changes_16384");
    EXPECT_TRUE(plan("n", "shop", "0.33.0", "0.35.0", {{"1", "s", "t", std::string("abc")}}, 1)
                    .renames.empty());
    EXPECT_TRUE(plan("n", "shop", "0.35.0", "0.35.0", {}, 0).nothing_to_do());
}

TEST(Migration, a_wal_captured_source_renames_its_buffer_and_takes_over_its_slot) {
    migration::Source wal{"16384", "public", "orders", std::nullopt, true};
    const auto p = plan("n", "shop", "0.31.0", "0.35.0", {wal}, 1);
    EXPECT_TRUE(p.problems.empty());
    const std::string sn = stable_name("shop", "public", "orders");
    ASSERT_EQ(p.renames.size(), 3u);  // buffer, index, slot: no triggers
    EXPECT_EQ(p.renames[2].kind, "slot");
    EXPECT_EQ(p.renames[2].from, "pgtrickle_16384");
    EXPECT_EQ(p.renames[2].to, "pgtrickle_" + sn);
    EXPECT_EQ(p.renames[2].on, "\"public\".\"orders\"");
    // Catalogs before 0.35.0 cannot read a slot: neither reached nor gone back to.
    const auto short_of_wal = plan("n", "shop", "0.31.0", "0.34.0", {wal}, 1);
    ASSERT_EQ(short_of_wal.problems.size(), 1u);
    EXPECT_NE(short_of_wal.problems[0].find("migrate to 0.35.0 or later"), std::string::npos);
    wal.stable_name = sn;
    const auto back = plan("n", "shop", "0.35.0", "0.31.0", {wal}, 1);
    ASSERT_EQ(back.problems.size(), 1u);
    EXPECT_NE(back.problems[0].find("cdc_mode => 'trigger'"), std::string::npos);
    EXPECT_TRUE(plan("n", "shop", "0.35.0", "0.31.0", {{"16384", "public", "orders", sn, false}}, 1)
                    .problems.empty());
}

TEST(Migration, collisions_and_unknown_versions_are_problems) {
    const auto p = plan("n", "a", "0.31.0", "0.35.0",
                        {{"1", "b.c", "d", std::nullopt}, {"2", "b", "c.d", std::nullopt}}, 0);
    ASSERT_EQ(p.problems.size(), 1u);
    EXPECT_NE(p.problems[0].find("collision"), std::string::npos);
    EXPECT_FALSE(plan("n", "a", "0.29.0", "0.35.0", {}, 0).problems.empty());
}

TEST(MigrationOrder, an_upgrade_goes_to_the_workers_first) {
    EXPECT_EQ(apply_order("0.31.0", "0.35.0", 3), (std::vector<std::size_t>{1, 2, 0}));
    // After a run that stopped half-way: the coordinator still old, so workers first again.
    EXPECT_EQ(apply_order("0.34.0", "0.35.0", 2), (std::vector<std::size_t>{1, 0}));
}

TEST(MigrationOrder, a_downgrade_goes_to_the_coordinator_first) {
    EXPECT_EQ(apply_order("0.35.0", "0.31.0", 3), (std::vector<std::size_t>{0, 1, 2}));
}

TEST(MigrationOrder, the_coordinator_already_at_the_target_comes_last_and_one_node_is_alone) {
    EXPECT_EQ(apply_order("0.35.0", "0.35.0", 3), (std::vector<std::size_t>{1, 2, 0}));
    EXPECT_EQ(apply_order("0.31.0", "0.35.0", 1), (std::vector<std::size_t>{0}));
    EXPECT_TRUE(apply_order("0.31.0", "0.35.0", 0).empty());
}

TEST(MigrationOutcome, a_stop_is_partial_only_when_some_node_is_at_the_target) {
    using pgt::ExitCode;
    using O = Outcome;
    EXPECT_EQ(stopped_run_code({O::migrated, O::failed, O::not_attempted}, ExitCode::sql_error),
              ExitCode::partial_failure);
    // Already there from an earlier run: the cluster is still split.
    EXPECT_EQ(stopped_run_code({O::up_to_date, O::failed, O::not_attempted}, ExitCode::connection),
              ExitCode::partial_failure);
    // The first node failed, nothing is at the target: that failure's own code.
    EXPECT_EQ(
        stopped_run_code({O::failed, O::not_attempted, O::not_attempted}, ExitCode::sql_error),
        ExitCode::sql_error);
    EXPECT_STREQ(outcome_name(O::not_attempted), "not_attempted");
    EXPECT_STREQ(outcome_name(O::up_to_date), "up_to_date");
}

}  // namespace
}  // namespace pgt::migration
