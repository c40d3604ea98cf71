#include "core/retry.h"

#include <algorithm>

namespace pgt::retry {

int64_t delay_ms(const Policy& policy, int attempt, double unit) {
    const int shift = std::clamp(attempt - 1, 0, 30);
    const int64_t base = std::max<int64_t>(policy.base_delay_ms, 0);
    const int64_t full = std::min<int64_t>(base << std::min(shift, 20), policy.max_delay_ms);
    const double jitter = 0.5 + 0.5 * std::clamp(unit, 0.0, 1.0);
    return static_cast<int64_t>(static_cast<double>(full) * jitter);
}

bool another_attempt(const Policy& policy, int attempt, int64_t remaining_ms, int64_t delay) {
    return attempt < policy.max_attempts && remaining_ms - delay >= policy.min_attempt_ms;
}

}  // namespace pgt::retry
