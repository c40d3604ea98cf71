// Jittered backoff bounded by attempts and a deadline (lib/core/retry.h).
#include "core/retry.h"

#include <gtest/gtest.h>

using pgt::retry::another_attempt;
using pgt::retry::delay_ms;
using pgt::retry::Policy;

TEST(Retry, delays_double_are_capped_and_jittered_into_the_upper_half) {
    const Policy p;  // 200 ms, doubling, at most 2000 ms
    EXPECT_EQ(delay_ms(p, 1, 0.0), 100);
    EXPECT_EQ(delay_ms(p, 1, 0.999999), 199);
    EXPECT_EQ(delay_ms(p, 2, 0.0), 200);
    EXPECT_EQ(delay_ms(p, 3, 0.0), 400);
    EXPECT_EQ(delay_ms(p, 10, 0.0), 1000);  // capped at 2000 before jitter
    EXPECT_EQ(delay_ms(p, 1000, 1.0), 2000);
    EXPECT_EQ(delay_ms(p, 0, 0.5), 150);  // out-of-range input is clamped
}

TEST(Retry, another_attempt_needs_attempts_left_and_time_left) {
    const Policy p;  // 3 attempts, an attempt needs 100 ms
    EXPECT_TRUE(another_attempt(p, 1, 5000, 200));
    EXPECT_TRUE(another_attempt(p, 2, 5000, 400));
    EXPECT_FALSE(another_attempt(p, 3, 5000, 400));  // attempts used up
    EXPECT_FALSE(another_attempt(p, 1, 250, 200));   // 50 ms would be left
    EXPECT_TRUE(another_attempt(p, 1, 300, 200));
}
