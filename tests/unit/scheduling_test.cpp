#include <gtest/gtest.h>

#include "core/scheduling.h"

namespace pgt {
namespace {

// 2026-11-21 10:07:30 UTC
constexpr int64_t kNow = 1795255650000LL;

TEST(Scheduling, cron_next_fire_follows_fields) {
    EXPECT_EQ(*next_cron_fire("*/5 * * * *", kNow), 1795255800000LL);  // 10:10
    EXPECT_EQ(*next_cron_fire("0 * * * *", kNow), 1795258800000LL);    // 11:00
    EXPECT_EQ(*next_cron_fire("30 9 * * *", kNow), 1795339800000LL);   // next day 09:30
    EXPECT_EQ(*next_cron_fire("0 0 1 * *", kNow), 1796083200000LL);    // 2026-12-01 00:00
    EXPECT_EQ(*next_cron_fire("0 12 * * 0", kNow), 1795348800000LL);   // Sunday 2026-11-22 12:00
    EXPECT_EQ(*next_cron_fire("0 12 * * 7", kNow), 1795348800000LL);   // 7 is Sunday too
    EXPECT_FALSE(next_cron_fire("0 0 31 2 *", kNow).has_value());      // never
}

TEST(Scheduling, due_times_for_durations_and_first_refresh) {
    const auto every = parse_schedule("30s");
    EXPECT_EQ(next_due_ms(every, std::nullopt, kNow), kNow);
    EXPECT_EQ(next_due_ms(every, kNow - 10000, kNow), kNow + 20000);
    EXPECT_EQ(next_due_ms(parse_schedule("@hourly"), kNow, kNow), 1795258800000LL);
}

TEST(Scheduling, backoff_is_exponential_and_capped) {
    EXPECT_EQ(backoff_ms(0), 0);
    EXPECT_EQ(backoff_ms(1), 1000);
    EXPECT_EQ(backoff_ms(3), 4000);
    EXPECT_EQ(backoff_ms(40), 300000);
}

TEST(Scheduling, topological_order_and_cycles) {
    std::multimap<int64_t, int64_t> edges{{1, 2}, {2, 3}, {1, 3}, {4, 2}};
    EXPECT_EQ(*topo_order({3, 2, 1, 4}, edges), (std::vector<int64_t>{1, 4, 2, 3}));
    edges.insert({3, 1});
    std::vector<int64_t> cycle;
    EXPECT_FALSE(topo_order({1, 2, 3, 4}, edges, &cycle).has_value());
    EXPECT_EQ(cycle, (std::vector<int64_t>{1, 2, 3}));
}

}  // namespace
}  // namespace pgt
