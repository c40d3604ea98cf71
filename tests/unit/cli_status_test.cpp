// Unit tests for the pure parts of the status and refresh logic: the health rule
// (lib/client/status.h) and the refresh order of dependent stream tables
// (lib/client/stream_tables.h).
#include "client/status.h"
#include "client/stream_tables.h"

#include <gtest/gtest.h>

using pgt::client::assess_health;
using pgt::client::dependency_order;
using pgt::json::Value;

namespace {

Value stream_table(const char* name, const char* status, Value last_error = nullptr) {
    Value v = Value::object();
    v.set("pgt_schema", "public");
    v.set("pgt_name", name);
    v.set("status", status);
    v.set("last_error", std::move(last_error));
    return v;
}

}  // namespace

TEST(StatusHealth, no_stream_tables_is_healthy) {
    auto h = assess_health(Value::array());
    EXPECT_TRUE(h.healthy);
    EXPECT_EQ(h.message, "no stream tables");
}

TEST(StatusHealth, active_and_initializing_stream_tables_are_healthy) {
    Value rows = Value::array();
    rows.push_back(stream_table("a", "active"));
    rows.push_back(stream_table("b", "initializing"));
    auto h = assess_health(rows);
    EXPECT_TRUE(h.healthy);
    EXPECT_TRUE(h.problems.empty());
    EXPECT_EQ(h.message, "2 stream tables, all healthy");
}

TEST(StatusHealth, error_and_suspended_stream_tables_are_unhealthy_and_named) {
    Value rows = Value::array();
    rows.push_back(stream_table("a", "active"));
    rows.push_back(stream_table("b", "error", "division by zero"));
    rows.push_back(stream_table("c", "suspended"));
    auto h = assess_health(rows);
    EXPECT_FALSE(h.healthy);
    ASSERT_EQ(h.problems.size(), 2u);
    EXPECT_EQ(h.problems[0], "public.b (error: division by zero)");
    EXPECT_EQ(h.problems[1], "public.c (suspended)");
    EXPECT_EQ(h.message,
              "2 of 3 stream tables unhealthy: public.b (error: division by zero), "
              "public.c (suspended)");
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
