// Unit tests for the pure parts of the status and refresh logic: the health rule
// (lib/client/status.h) and the refresh order of dependent stream tables
// (lib/client/stream_tables.h).
#include "client/status.h"
#include "client/stream_tables.h"

#include <gtest/gtest.h>

using pgt::client::assess_health;
using pgt::client::dependency_order;
using pgt::client::HealthRules;
using pgt::client::StatusSnapshot;
using pgt::json::Value;

namespace {

Value stream_table(const char* name, const char* status, Value last_error = nullptr) {
    Value v = Value::object();
    v.set("pgt_schema", "public");
    v.set("pgt_name", name);
    v.set("status", status);
    v.set("schedule", nullptr);
    v.set("last_error", std::move(last_error));
    v.set("stale", false);
    v.set("staleness_seconds", 1.0);
    return v;
}

// A snapshot of the given rows with a running scheduler.
StatusSnapshot snapshot(std::vector<Value> rows) {
    StatusSnapshot snap;
    for (Value& r : rows) {
        snap.stream_tables.push_back(std::move(r));
    }
    snap.scheduler_pid = 4242;
    return snap;
}

}  // namespace

TEST(StatusHealth, no_stream_tables_is_healthy) {
    auto h = assess_health(snapshot({}));
    EXPECT_TRUE(h.healthy);
    EXPECT_EQ(h.message, "no stream tables");
}

TEST(StatusHealth, active_and_initializing_stream_tables_are_healthy) {
    auto h =
        assess_health(snapshot({stream_table("a", "active"), stream_table("b", "initializing")}));
    EXPECT_TRUE(h.healthy);
    EXPECT_TRUE(h.problems.empty());
    EXPECT_EQ(h.message, "2 stream tables, all healthy");
}

TEST(StatusHealth, error_and_suspended_stream_tables_are_unhealthy_and_named) {
    auto h = assess_health(
        snapshot({stream_table("a", "active"), stream_table("b", "error", "division by zero"),
                  stream_table("c", "suspended")}));
    EXPECT_FALSE(h.healthy);
    ASSERT_EQ(h.problems.size(), 2u);
    EXPECT_EQ(h.problems[0].message, "public.b (error: division by zero)");
    EXPECT_EQ(h.problems[0].reason, "error");
    EXPECT_EQ(h.problems[0].subject, "public.b");
    EXPECT_EQ(h.problems[1].message, "public.c (suspended)");
    EXPECT_EQ(h.problems[1].reason, "suspended");
    EXPECT_EQ(h.message,
              "2 of 3 stream tables unhealthy: public.b (error: division by zero), "
              "public.c (suspended)");
}

TEST(StatusHealth, stale_column_makes_a_stream_table_unhealthy) {
    Value st = stream_table("a", "active");
    st.set("stale", true);
    st.set("schedule", "1m");
    st.set("staleness_seconds", 185.0);
    auto h = assess_health(snapshot({st}));
    EXPECT_FALSE(h.healthy);
    ASSERT_EQ(h.problems.size(), 1u);
    EXPECT_EQ(h.problems[0].reason, "stale");
    EXPECT_EQ(h.problems[0].message, "public.a (stale: last refreshed 3m05s ago, schedule 1m)");
}

TEST(StatusHealth, max_staleness_applies_only_when_exceeded_and_refreshed) {
    Value old = stream_table("old", "active");
    old.set("staleness_seconds", 90.0);
    Value fresh = stream_table("fresh", "active");
    fresh.set("staleness_seconds", 10.0);
    Value never = stream_table("never", "initializing");
    never.set("staleness_seconds", nullptr);
    HealthRules rules;
    rules.max_staleness_seconds = 60;
    auto h = assess_health(snapshot({old, fresh, never}), rules);
    EXPECT_FALSE(h.healthy);
    ASSERT_EQ(h.problems.size(), 1u);
    EXPECT_EQ(h.problems[0].reason, "max_staleness");
    EXPECT_EQ(h.problems[0].message, "public.old (staleness 1m30s exceeds 1m00s)");
    EXPECT_TRUE(assess_health(snapshot({old, fresh, never})).healthy);
}

TEST(StatusHealth, missing_scheduler_is_unhealthy_only_with_a_scheduled_stream_table) {
    StatusSnapshot unscheduled = snapshot({stream_table("a", "active")});
    unscheduled.scheduler_pid.reset();
    EXPECT_TRUE(assess_health(unscheduled).healthy);

    Value scheduled = stream_table("b", "active");
    scheduled.set("schedule", "5s");
    StatusSnapshot snap = snapshot({stream_table("a", "active"), scheduled});
    EXPECT_TRUE(assess_health(snap).healthy);
    snap.scheduler_pid.reset();
    auto h = assess_health(snap);
    EXPECT_FALSE(h.healthy);
    ASSERT_EQ(h.problems.size(), 1u);
    EXPECT_EQ(h.problems[0].subject, "scheduler");
    EXPECT_EQ(h.problems[0].reason, "scheduler_not_running");
    EXPECT_EQ(h.message.rfind("2 stream tables; the scheduler is not running but 1 stream "
                              "table has a schedule",
                              0),
              0u);
}

TEST(StatusHealth, a_hot_standby_has_no_scheduler_and_that_is_healthy) {
    Value scheduled = stream_table("b", "active");
    scheduled.set("schedule", "5s");
    StatusSnapshot snap = snapshot({scheduled});
    snap.scheduler_pid.reset();
    EXPECT_FALSE(assess_health(snap).healthy);
    snap.in_recovery = true;
    EXPECT_TRUE(assess_health(snap).healthy);
    snap.scheduler_enabled = false;
    EXPECT_TRUE(assess_health(snap).healthy);
}

TEST(StatusHealth, stream_table_and_scheduler_problems_are_both_in_the_message) {
    Value st = stream_table("b", "suspended");
    st.set("schedule", "5s");
    StatusSnapshot snap = snapshot({st});
    snap.scheduler_pid.reset();
    auto h = assess_health(snap);
    ASSERT_EQ(h.problems.size(), 2u);
    EXPECT_EQ(h.message.rfind("1 of 1 stream table unhealthy: public.b (suspended); the "
                              "scheduler is not running",
                              0),
              0u);
}

TEST(RefreshOrder, upstream_stream_tables_come_first_otherwise_input_order) {
    // 0 reads 2, 2 reads 3; 1 is independent.
    auto order = dependency_order(4, {{2, 0}, {3, 2}});
    EXPECT_EQ(order, (std::vector<std::size_t>{1, 3, 2, 0}));
}

TEST(RefreshOrder, no_edges_keeps_input_order) {
    EXPECT_EQ(dependency_order(3, {}), (std::vector<std::size_t>{0, 1, 2}));
    EXPECT_TRUE(dependency_order(0, {}).empty());
}

TEST(RefreshOrder, cycles_and_bad_edges_do_not_lose_items) {
    auto order = dependency_order(4, {{0, 1}, {1, 0}, {2, 2}, {9, 3}});
    EXPECT_EQ(order, (std::vector<std::size_t>{2, 3, 0, 1}));
}
