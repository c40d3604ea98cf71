// The metrics of `pgtrickle status --format prometheus` (lib/client/status_metrics.h):
// what each family reports for a snapshot, read back with the strict format reader.
#include "client/status_metrics.h"

#include <gtest/gtest.h>

#include "cli_prometheus_parser.h"

using pgt::client::assess_health;
using pgt::client::StatusSnapshot;
using pgt::json::Value;
using pgt::test::parse_exposition;

namespace {

Value row(const char* schema, const char* name, const char* status) {
    Value v = Value::object();
    v.set("pgt_schema", schema);
    v.set("pgt_name", name);
    v.set("status", status);
    v.set("schedule", "5s");
    v.set("last_error", nullptr);
    v.set("stale", false);
    v.set("staleness_seconds", 2.5);
    v.set("schedule_interval_seconds", 5);
    v.set("consecutive_errors", 0);
    v.set("pending_changes", 7);
    v.set("last_refresh_rows", 3);
    Value recent = Value::object();
    recent.set("differential", 12);
    recent.set("full", 1);
    v.set("recent_refreshes", std::move(recent));
    return v;
}

pgt::test::Exposition metrics_of(const StatusSnapshot& snap) {
    return parse_exposition(
        pgt::prometheus::render(pgt::client::status_metrics(snap, assess_health(snap))));
}

}  // namespace

TEST(StatusMetrics, healthy_snapshot_reports_every_family) {
    StatusSnapshot snap;
    snap.stream_tables.push_back(row("public", "orders_summary", "active"));
    Value src = Value::object();
    src.set("source_relid", "orders");
    src.set("source_stable_name", "af6fbc75042189ab");
    src.set("readers", 1);
    snap.sources.push_back(src);
    snap.scheduler_pid = 99;
    const auto ex = metrics_of(snap);
    const std::map<std::string, std::string> st = {{"schema", "public"},
                                                   {"name", "orders_summary"}};
    EXPECT_EQ(ex.value("pgtrickle_up"), 1);
    EXPECT_EQ(ex.value("pgtrickle_healthy"), 1);
    EXPECT_EQ(ex.value("pgtrickle_scheduler_running"), 1);
    EXPECT_EQ(ex.value("pgtrickle_stream_tables"), 1);
    EXPECT_EQ(ex.value("pgtrickle_stream_table_up", st), 1);
    auto with = [&](const char* k, const char* v) {
        auto l = st;
        l[k] = v;
        return l;
    };
    EXPECT_EQ(ex.value("pgtrickle_stream_table_status", with("status", "active")), 1);
    EXPECT_EQ(ex.value("pgtrickle_stream_table_status", with("status", "error")), 0);
    EXPECT_EQ(ex.value("pgtrickle_stream_table_status", with("status", "suspended")), 0);
    EXPECT_EQ(ex.value("pgtrickle_stream_table_status", with("status", "initializing")), 0);
    EXPECT_EQ(ex.value("pgtrickle_stream_table_stale", st), 0);
    EXPECT_EQ(ex.value("pgtrickle_stream_table_staleness_seconds", st), 2.5);
    EXPECT_EQ(ex.value("pgtrickle_stream_table_schedule_interval_seconds", st), 5);
    EXPECT_EQ(ex.value("pgtrickle_stream_table_consecutive_errors", st), 0);
    EXPECT_EQ(ex.value("pgtrickle_stream_table_pending_changes", st), 7);
    EXPECT_EQ(ex.value("pgtrickle_stream_table_last_refresh_rows", st), 3);
    EXPECT_EQ(ex.value("pgtrickle_stream_table_recent_refreshes", with("mode", "differential")),
              12);
    EXPECT_EQ(ex.value("pgtrickle_stream_table_recent_refreshes", with("mode", "full")), 1);
    EXPECT_EQ(ex.value("pgtrickle_source_readers",
                       {{"source", "orders"}, {"stable_name", "af6fbc75042189ab"}}),
              1);
    for (const auto& [name, family] : ex.families) {
        EXPECT_EQ(family.type, "gauge") << name;  // nothing here is a monotonic counter
        EXPECT_FALSE(family.help.empty()) << name;
    }
}

TEST(StatusMetrics, unhealthy_tables_and_missing_scheduler_show_as_zero) {
    StatusSnapshot snap;
    snap.stream_tables.push_back(row("public", "good", "active"));
    Value bad = row("my \"schema\"", "odd\\name\nx", "error");
    bad.set("consecutive_errors", 4);
    bad.set("staleness_seconds", nullptr);
    bad.set("last_refresh_rows", nullptr);
    snap.stream_tables.push_back(bad);
    const auto ex = metrics_of(snap);  // no scheduler pid
    const std::map<std::string, std::string> odd = {{"schema", "my \"schema\""},
                                                    {"name", "odd\\name\nx"}};
    EXPECT_EQ(ex.value("pgtrickle_healthy"), 0);
    EXPECT_EQ(ex.value("pgtrickle_scheduler_running"), 0);
    EXPECT_EQ(ex.value("pgtrickle_stream_table_up", odd), 0);
    // The scheduler's absence is a problem of its own, not of the good stream table.
    EXPECT_EQ(ex.value("pgtrickle_stream_table_up", {{"schema", "public"}, {"name", "good"}}), 1);
    auto status = odd;
    status["status"] = "error";
    EXPECT_EQ(ex.value("pgtrickle_stream_table_status", status), 1);
    EXPECT_EQ(ex.value("pgtrickle_stream_table_consecutive_errors", odd), 4);
    EXPECT_FALSE(ex.value("pgtrickle_stream_table_staleness_seconds", odd).has_value());
    EXPECT_FALSE(ex.value("pgtrickle_stream_table_last_refresh_rows", odd).has_value());
}

TEST(StatusMetrics, unreachable_scrape_reports_only_up_zero) {
    const auto ex = parse_exposition(pgt::prometheus::render(pgt::client::unreachable_metrics()));
    EXPECT_EQ(ex.order, (std::vector<std::string>{"pgtrickle_up"}));
    EXPECT_EQ(ex.value("pgtrickle_up"), 0);
}

namespace {

Value worker_slot(const char* worker, Value lag, int failures, Value age) {
    Value v = Value::object();
    v.set("source", "public.orders");
    v.set("worker", worker);
    v.set("lag_bytes", std::move(lag));
    v.set("consecutive_failures", failures);
    v.set("last_poll_age_seconds", std::move(age));
    v.set("worker_frontier", "0/1000");
    v.set("last_error", nullptr);
    return v;
}

}  // namespace

TEST(StatusMetrics, worker_slot_families_only_with_worker_slots) {
    StatusSnapshot without;
    without.scheduler_pid = 1;
    for (const auto& name : metrics_of(without).order) {
        EXPECT_EQ(name.rfind("pgtrickle_worker_slot_", 0), std::string::npos) << name;
    }
    StatusSnapshot snap = without;
    snap.worker_slots.push_back(worker_slot("10.0.0.1:5432", 8192, 0, 1.5));
    snap.worker_slots.push_back(worker_slot("10.0.0.2:5432", nullptr, 3, nullptr));
    const auto ex = metrics_of(snap);
    const std::map<std::string, std::string> w1 = {{"source", "public.orders"},
                                                   {"worker", "10.0.0.1:5432"}};
    const std::map<std::string, std::string> w2 = {{"source", "public.orders"},
                                                   {"worker", "10.0.0.2:5432"}};
    EXPECT_EQ(ex.value("pgtrickle_worker_slot_lag_bytes", w1), 8192);
    EXPECT_FALSE(ex.value("pgtrickle_worker_slot_lag_bytes", w2).has_value());  // unknown
    EXPECT_EQ(ex.value("pgtrickle_worker_slot_consecutive_failures", w1), 0);
    EXPECT_EQ(ex.value("pgtrickle_worker_slot_consecutive_failures", w2), 3);
    EXPECT_EQ(ex.value("pgtrickle_worker_slot_last_poll_age_seconds", w1), 1.5);
    EXPECT_FALSE(ex.value("pgtrickle_worker_slot_last_poll_age_seconds", w2).has_value());
}

TEST(StatusMetrics, worker_slot_up_says_which_slot_is_healthy) {
    StatusSnapshot snap;
    snap.scheduler_pid = 1;
    snap.worker_slots.push_back(worker_slot("10.0.0.1:5432", 8192, 0, 1.5));
    snap.worker_slots.push_back(worker_slot("10.0.0.2:5432", nullptr, 3, nullptr));
    Value no_frontier = worker_slot("10.0.0.3:5432", nullptr, 0, nullptr);
    no_frontier.set("worker_frontier", nullptr);
    snap.worker_slots.push_back(no_frontier);
    const auto ex = metrics_of(snap);
    auto labels = [](const char* worker) {
        return std::map<std::string, std::string>{{"source", "public.orders"}, {"worker", worker}};
    };
    EXPECT_EQ(ex.value("pgtrickle_worker_slot_up", labels("10.0.0.1:5432")), 1);
    EXPECT_EQ(ex.value("pgtrickle_worker_slot_up", labels("10.0.0.2:5432")), 0);
    EXPECT_EQ(ex.value("pgtrickle_worker_slot_up", labels("10.0.0.3:5432")), 0);
    EXPECT_EQ(ex.value("pgtrickle_healthy"), 0);
}

TEST(StatusMetrics, node_up_only_with_citus_nodes) {
    StatusSnapshot snap;
    snap.scheduler_pid = 1;
    EXPECT_EQ(metrics_of(snap).families.count("pgtrickle_node_up"), 0u);
    pgt::client::NodeReachability c;
    c.node = "10.0.0.1:5432";
    c.role = "coordinator";
    c.reachable = true;
    pgt::client::NodeReachability w = c;
    w.node = "10.0.0.2:5432";
    w.role = "worker";
    w.reachable = false;
    pgt::client::NodeReachability u = w;
    u.node = "10.0.0.3:5432";
    u.reachable.reset();
    snap.nodes = {c, w, u};
    const auto ex = metrics_of(snap);
    EXPECT_EQ(ex.value("pgtrickle_node_up", {{"node", "10.0.0.1:5432"}, {"role", "coordinator"}}),
              1);
    EXPECT_EQ(ex.value("pgtrickle_node_up", {{"node", "10.0.0.2:5432"}, {"role", "worker"}}), 0);
    EXPECT_EQ(ex.value("pgtrickle_node_up", {{"node", "10.0.0.3:5432"}, {"role", "worker"}}), 0);
    EXPECT_EQ(ex.value("pgtrickle_healthy"), 0);
}
