// Refresh schedules: durations ("30s", "5m", "1h30m", "250ms") and cron expressions
// (5 fields, or @hourly/@daily/@weekly/@monthly/@yearly).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace pgt {

struct Schedule {
    enum class Kind { duration, cron };
    Kind kind = Kind::duration;
    std::chrono::milliseconds every{0};  ///< Kind::duration
    std::string cron;                    ///< Kind::cron, normalised 5 fields
    std::optional<std::string> error;    ///< set when the text is not a valid schedule
};

/// Parse a schedule; never throws: an invalid text sets `error` to the reason.
Schedule parse_schedule(std::string_view text);

}  // namespace pgt
