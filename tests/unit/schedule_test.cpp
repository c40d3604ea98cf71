#include <gtest/gtest.h>

#include "core/schedule.h"

namespace pgt {
namespace {

TEST(Schedule, durations_combine_units) {
    EXPECT_EQ(parse_schedule("30s").every.count(), 30000);
    EXPECT_EQ(parse_schedule("5m").every.count(), 300000);
    EXPECT_EQ(parse_schedule("1h30m").every.count(), 5400000);
    EXPECT_EQ(parse_schedule("250ms").every.count(), 250);
    EXPECT_EQ(parse_schedule(" 2d ").every.count(), 172800000);
}

TEST(Schedule, cron_fields_and_macros) {
    auto s = parse_schedule("*/5 * * * *");
    EXPECT_FALSE(s.error) << *s.error;
    EXPECT_EQ(s.kind, Schedule::Kind::cron);
    EXPECT_EQ(parse_schedule("@hourly").cron, "0 * * * *");
    EXPECT_FALSE(parse_schedule("0 9-17 * * 1-5").error);
    EXPECT_FALSE(parse_schedule("0,30 0 1 1,6 0").error);
}

TEST(Schedule, invalid_texts_name_the_problem) {
    EXPECT_NE(parse_schedule("").error->find("empty"), std::string::npos);
    EXPECT_NE(parse_schedule("5 parsecs").error->find("5 fields"), std::string::npos);
    EXPECT_NE(parse_schedule("5x").error->find("unknown unit"), std::string::npos);
    EXPECT_NE(parse_schedule("10").error->find("missing unit"), std::string::npos);
    EXPECT_NE(parse_schedule("0s").error->find("positive"), std::string::npos);
    EXPECT_NE(parse_schedule("61 * * * *").error->find("out of range"), std::string::npos);
    EXPECT_NE(parse_schedule("*/0 * * * *").error->find("step"), std::string::npos);
    EXPECT_NE(parse_schedule("@often").error->find("unknown macro"), std::string::npos);
}

}  // namespace
}  // namespace pgt
