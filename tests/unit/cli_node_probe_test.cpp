// The pure parts of the Citus node probe of `pgtrickle status` (lib/client/node_probe.h):
// how rounds of answers decide each node's reachability and pg_trickle version, which nodes
// are on another version than the coordinator, and which nodes a stream table's worker
// slots are on.
#include "client/node_probe.h"

#include <gtest/gtest.h>

using pgt::client::apply_probe_round;
using pgt::client::mark_version_mismatches;
using pgt::client::NodeReachability;
using pgt::client::nodes_of_slots;
using pgt::client::ProbeAnswer;
using pgt::json::Value;

namespace {

std::vector<NodeReachability> three_nodes() {
    std::vector<NodeReachability> nodes(3);
    const char* names[] = {"c:5432", "w1:5432", "w2:5432"};
    for (int i = 0; i < 3; ++i) {
        nodes[i].nodeid = i + 1;
        nodes[i].node = names[i];
        nodes[i].role = i == 0 ? "coordinator" : "worker";
    }
    return nodes;
}

}  // namespace

TEST(NodeProbe, answers_decide_reachable_and_unreachable_nodes) {
    auto nodes = three_nodes();
    apply_probe_round(nodes,
                      {{1, true, "1"},
                       {2, true, "1"},
                       {3, false, "failed to connect to w2:5432\nDETAIL: Connection refused"}},
                      std::nullopt);
    EXPECT_EQ(nodes[0].reachable, true);
    EXPECT_EQ(nodes[1].reachable, true);
    EXPECT_EQ(nodes[2].reachable, false);
    EXPECT_EQ(nodes[2].error, "failed to connect to w2:5432");
}

TEST(NodeProbe, a_node_that_answers_in_a_later_round_is_reachable) {
    auto nodes = three_nodes();
    apply_probe_round(nodes, {{1, true, "1"}, {2, true, "1"}, {3, false, "blip"}}, std::nullopt);
    apply_probe_round(nodes, {{1, true, "1"}, {2, false, "down now"}, {3, true, "1"}},
                      std::nullopt);
    // Reached once is reached: a later failure of w1 within the same check does not count.
    EXPECT_EQ(nodes[1].reachable, true);
    EXPECT_EQ(nodes[2].reachable, true);
    EXPECT_TRUE(nodes[2].error.empty());
}

TEST(NodeProbe, a_failed_round_leaves_unanswered_nodes_unknown_and_keeps_failures) {
    auto nodes = three_nodes();
    apply_probe_round(nodes, {{1, true, "1"}, {3, false, "refused"}}, std::nullopt);
    EXPECT_FALSE(nodes[1].reachable.has_value());
    EXPECT_NE(nodes[1].error.find("did not reach it"), std::string::npos);
    apply_probe_round(nodes, {}, std::string("canceling statement due to statement timeout"));
    EXPECT_EQ(nodes[0].reachable, true);
    EXPECT_FALSE(nodes[1].reachable.has_value());
    EXPECT_EQ(nodes[1].error,
              "the reachability check failed: canceling statement due to statement timeout");
    EXPECT_EQ(nodes[2].reachable, false);
    EXPECT_EQ(nodes[2].error, "refused");
}

TEST(NodeProbe, a_failure_without_a_message_still_says_something) {
    auto nodes = three_nodes();
    apply_probe_round(nodes, {{2, false, ""}}, std::nullopt);
    EXPECT_EQ(nodes[1].reachable, false);
    EXPECT_FALSE(nodes[1].error.empty());
}

TEST(NodeProbe, nodes_of_slots_keeps_the_nodes_holding_a_slot_in_node_order) {
    Value slots = Value::array();
    for (const char* w : {"w2:5432", "w2:5432", "c:5432"}) {
        Value s = Value::object();
        s.set("worker", w);
        slots.push_back(s);
    }
    const auto kept = nodes_of_slots(three_nodes(), slots);
    ASSERT_EQ(kept.size(), 2u);
    EXPECT_EQ(kept[0].node, "c:5432");
    EXPECT_EQ(kept[1].node, "w2:5432");
    EXPECT_TRUE(nodes_of_slots(three_nodes(), Value::array()).empty());
}

TEST(NodeProbe, a_reached_node_answers_with_its_pg_trickle_version) {
    auto nodes = three_nodes();
    apply_probe_round(nodes, {{1, true, "0.35.0"}, {2, true, ""}, {3, false, "refused"}},
                      std::nullopt);
    EXPECT_EQ(nodes[0].extension_version, "0.35.0");
    EXPECT_EQ(nodes[1].extension_version, "");
    EXPECT_FALSE(nodes[2].extension_version.has_value());
}

TEST(NodeProbe, a_reached_node_on_another_version_or_without_pg_trickle_is_a_mismatch) {
    auto nodes = three_nodes();
    apply_probe_round(nodes, {{1, true, "0.35.0"}, {2, true, "0.31.0"}, {3, true, ""}},
                      std::nullopt);
    mark_version_mismatches(nodes, "0.35.0");
    EXPECT_FALSE(nodes[0].version_mismatch);
    EXPECT_TRUE(nodes[0].error.empty());
    EXPECT_TRUE(nodes[1].version_mismatch);
    EXPECT_EQ(nodes[1].error.rfind("pg_trickle is at 0.31.0 there, while pg_trickle is at 0.35.0 "
                                   "on the node the CLI connected to",
                                   0),
              0u);
    EXPECT_NE(nodes[1].error.find("pgtrickle migrate"), std::string::npos);
    EXPECT_TRUE(nodes[2].version_mismatch);
    EXPECT_EQ(nodes[2].error.rfind("pg_trickle is not installed there", 0), 0u);
}

TEST(NodeProbe, an_unreached_node_is_no_version_mismatch) {
    auto nodes = three_nodes();
    apply_probe_round(nodes, {{1, true, "0.35.0"}, {2, false, "refused"}}, std::nullopt);
    mark_version_mismatches(nodes, "0.35.0");
    EXPECT_FALSE(nodes[1].version_mismatch);
    EXPECT_EQ(nodes[1].error, "refused");
    EXPECT_FALSE(nodes[2].version_mismatch);
}
