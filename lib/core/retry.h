// Retries against other nodes: jittered exponential backoff, bounded by both the number of
// attempts and a deadline (the house rule for anything that talks to nodes). Pure: the
// caller supplies the clock and the randomness.
#pragma once

#include <cstdint>

namespace pgt::retry {

/// How often and how patiently to try.
struct Policy {
    int max_attempts = 3;          ///< attempts in all, the first one included
    int64_t base_delay_ms = 200;   ///< delay after the first failed attempt (before jitter)
    int64_t max_delay_ms = 2000;   ///< cap of one delay (before jitter)
    int64_t min_attempt_ms = 100;  ///< an attempt needs at least this much of the deadline
};

/// The delay after failed attempt `attempt` (1-based): base * 2^(attempt-1), capped at
/// max_delay_ms, then scaled into [50%, 100%) by `unit` in [0, 1) ("equal jitter").
int64_t delay_ms(const Policy& policy, int attempt, double unit);

/// Whether to make attempt `attempt` + 1 after failed attempt `attempt`, which leaves
/// `remaining_ms` until the deadline once the delay `delay` has been slept: false when
/// attempts are used up or too little time would be left for it.
bool another_attempt(const Policy& policy, int attempt, int64_t remaining_ms, int64_t delay);

}  // namespace pgt::retry
