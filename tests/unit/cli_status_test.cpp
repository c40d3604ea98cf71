// Unit tests for the pure parts of the status and refresh logic: the health rules of stream
// tables, the scheduler, worker slots and Citus nodes (lib/client/status.h) and the refresh
// order of dependent stream tables (lib/client/stream_tables.h).
#include "client/status.h"
#include "client/stream_tables.h"

#include <gtest/gtest.h>

using pgt::client::assess_health;
using pgt::client::dependency_order;
using pgt::client::HealthRules;
using pgt::client::node_status;
using pgt::client::NodeReachability;
using pgt::client::StatusSnapshot;
using pgt::client::worker_slot_status;
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

// A worker slot row as read_worker_slots returns it, healthy.
Value slot(const char* worker) {
    Value v = Value::object();
    v.set("source", "public.orders");
    v.set("worker", worker);
    v.set("worker_frontier", "0/3000");
    v.set("consecutive_failures", 0);
    v.set("last_error", nullptr);
    v.set("failing_since", nullptr);
    return v;
}

NodeReachability node(const char* name, const char* role, std::optional<bool> reachable,
                      const char* error = "") {
    NodeReachability n;
    n.node = name;
    n.role = role;
    n.reachable = reachable;
    n.error = error;
    return n;
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

TEST(WorkerSlotHealth, a_polled_slot_without_failures_is_ok) {
    const auto st = worker_slot_status(slot("10.0.0.1:5432"));
    EXPECT_EQ(st.code, "ok");
    EXPECT_TRUE(st.ok());
    EXPECT_EQ(st.message, "healthy");
}

TEST(WorkerSlotHealth, failed_polls_make_a_slot_failing_with_since_and_why) {
    Value s = slot("10.0.0.2:5432");
    s.set("consecutive_failures", 3);
    s.set("failing_since", "2024-05-01 10:00:00+00");
    s.set("last_error", "could not connect to node 10.0.0.2:5432: Connection refused");
    const auto st = worker_slot_status(s);
    EXPECT_EQ(st.code, "failing");
    EXPECT_FALSE(st.ok());
    EXPECT_EQ(st.message,
              "3 failed polls since 2024-05-01 10:00:00+00: could not connect to node "
              "10.0.0.2:5432: Connection refused");
    // Catalogs before 0.35.0 have no failing_since.
    s.set("consecutive_failures", 1);
    s.set("failing_since", nullptr);
    s.set("last_error", nullptr);
    EXPECT_EQ(worker_slot_status(s).message, "1 failed poll");
}

TEST(WorkerSlotHealth, a_slot_without_frontier_is_not_capturable_even_without_failures) {
    Value s = slot("10.0.0.3:5432");
    s.set("worker_frontier", nullptr);
    s.set("last_error", "wal_level is replica on 10.0.0.3:5432");
    const auto st = worker_slot_status(s);
    EXPECT_EQ(st.code, "not_capturable");
    EXPECT_EQ(st.message,
              "no frontier: the node cannot capture this source: wal_level is replica on "
              "10.0.0.3:5432");
    s.set("consecutive_failures", 2);
    EXPECT_EQ(worker_slot_status(s).code, "not_capturable");
}

TEST(WorkerSlotHealth, a_note_left_by_a_recovery_is_not_a_failure) {
    // provisioning recreated a lost slot and noted why; the next successful poll clears it.
    Value s = slot("10.0.0.1:5432");
    s.set("last_error", "slot pgtrickle_x was lost; readers fully refreshed");
    const auto st = worker_slot_status(s);
    EXPECT_TRUE(st.ok());
    EXPECT_EQ(st.message,
              "healthy (recovered: slot pgtrickle_x was lost; readers fully refreshed)");
}

TEST(StatusHealth, a_failing_worker_slot_is_unhealthy_and_named) {
    StatusSnapshot snap = snapshot({stream_table("a", "active")});
    snap.worker_slots.push_back(slot("10.0.0.1:5432"));
    Value bad = slot("10.0.0.2:5432");
    bad.set("consecutive_failures", 2);
    bad.set("last_error", "timeout");
    snap.worker_slots.push_back(bad);
    const auto h = assess_health(snap);
    EXPECT_FALSE(h.healthy);
    ASSERT_EQ(h.problems.size(), 1u);
    EXPECT_EQ(h.problems[0].subject, "public.orders@10.0.0.2:5432");
    EXPECT_EQ(h.problems[0].reason, "worker_slot_failing");
    EXPECT_EQ(h.problems[0].message, "public.orders@10.0.0.2:5432 (2 failed polls: timeout)");
    EXPECT_EQ(h.message,
              "1 stream table; 1 of 2 worker slots failing: public.orders@10.0.0.2:5432 (2 "
              "failed polls: timeout)");
}

TEST(NodeHealth, reached_unreachable_and_unknown_nodes) {
    EXPECT_EQ(node_status(node("c:1", "coordinator", true)).code, "ok");
    const auto down = node_status(node("w:2", "worker", false, "connection refused"));
    EXPECT_EQ(down.code, "unreachable");
    EXPECT_EQ(down.message, "the coordinator cannot reach it: connection refused");
    const auto unknown = node_status(node("w:3", "worker", std::nullopt, "the check timed out"));
    EXPECT_EQ(unknown.code, "unknown");
    EXPECT_EQ(unknown.message, "the check timed out");
}

TEST(StatusHealth, an_unreachable_or_unknown_node_is_unhealthy_after_the_slots) {
    StatusSnapshot snap = snapshot({stream_table("a", "active")});
    snap.worker_slots.push_back(slot("w1:5432"));
    snap.nodes = {node("c:5432", "coordinator", true), node("w1:5432", "worker", true),
                  node("w2:5432", "worker", false, "connection refused")};
    auto h = assess_health(snap);
    EXPECT_FALSE(h.healthy);
    ASSERT_EQ(h.problems.size(), 1u);
    EXPECT_EQ(h.problems[0].subject, "w2:5432");
    EXPECT_EQ(h.problems[0].reason, "node_unreachable");
    EXPECT_EQ(h.message,
              "1 stream table; 1 of 3 nodes not reachable: w2:5432 (worker, unreachable: "
              "connection refused)");
    snap.nodes[2].reachable.reset();
    snap.nodes[2].error =
        "the reachability check failed: canceling statement due to "
        "statement timeout";
    h = assess_health(snap);
    ASSERT_EQ(h.problems.size(), 1u);
    EXPECT_EQ(h.problems[0].reason, "node_unknown");
    snap.nodes[2].reachable = true;
    h = assess_health(snap);
    EXPECT_TRUE(h.healthy);
    EXPECT_EQ(h.message, "1 stream table, 1 worker slot, 3 nodes, all healthy");
}

TEST(StatusHealth, a_node_on_another_pg_trickle_version_is_unhealthy_and_named) {
    StatusSnapshot snap = snapshot({stream_table("a", "active")});
    snap.nodes = {node("c:5432", "coordinator", true), node("w1:5432", "worker", true),
                  node("w2:5432", "worker", true)};
    snap.nodes[2].version_mismatch = true;
    snap.nodes[2].error = "pg_trickle is at 0.31.0 there, while pg_trickle is at 0.35.0 ...";
    EXPECT_EQ(node_status(snap.nodes[2]).code, "version_mismatch");
    const auto h = assess_health(snap);
    EXPECT_FALSE(h.healthy);
    ASSERT_EQ(h.problems.size(), 1u);
    EXPECT_EQ(h.problems[0].subject, "w2:5432");
    EXPECT_EQ(h.problems[0].reason, "node_version_mismatch");
    EXPECT_EQ(h.message,
              "1 stream table; 1 of 3 nodes on another pg_trickle version: w2:5432 (worker, "
              "version_mismatch: pg_trickle is at 0.31.0 there, while pg_trickle is at 0.35.0 "
              "...)");
}

TEST(StatusHealth, every_kind_of_problem_in_order_and_in_the_message) {
    Value st = stream_table("b", "error", "boom");
    st.set("schedule", "5s");
    StatusSnapshot snap = snapshot({st});
    snap.scheduler_pid.reset();
    Value s = slot("w1:5432");
    s.set("worker_frontier", nullptr);
    snap.worker_slots.push_back(s);
    snap.nodes = {node("w1:5432", "worker", false, "refused")};
    const auto h = assess_health(snap);
    ASSERT_EQ(h.problems.size(), 4u);
    EXPECT_EQ(h.problems[0].reason, "error");
    EXPECT_EQ(h.problems[1].reason, "scheduler_not_running");
    EXPECT_EQ(h.problems[2].reason, "worker_slot_not_capturable");
    EXPECT_EQ(h.problems[3].reason, "node_unreachable");
    EXPECT_EQ(h.message.rfind("1 of 1 stream table unhealthy: public.b (error: boom); the "
                              "scheduler is not running",
                              0),
              0u);
    EXPECT_NE(h.message.find("; 1 of 1 worker slot failing: public.orders@w1:5432 (no "
                             "frontier: the node cannot capture this source); 1 of 1 node not "
                             "reachable: w1:5432 (worker, unreachable: refused)"),
              std::string::npos)
        << h.message;
}

TEST(StatusHealth, no_stream_tables_but_a_node_down_is_unhealthy) {
    StatusSnapshot snap = snapshot({});
    snap.nodes = {node("c:1", "coordinator", true), node("w:2", "worker", false, "refused")};
    auto h = assess_health(snap);
    EXPECT_FALSE(h.healthy);
    EXPECT_EQ(h.message,
              "no stream tables; 1 of 2 nodes not reachable: w:2 (worker, "
              "unreachable: refused)");
    snap.nodes[1].reachable = true;
    EXPECT_EQ(assess_health(snap).message, "no stream tables, 2 nodes, all healthy");
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
