// Pure scheduling logic of the background worker: when a stream table is due, retry backoff
// after failures, and the refresh order of dependent stream tables.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/schedule.h"

namespace pgt {

/// Next time (Unix milliseconds, UTC) a cron expression (5 fields, as normalised by
/// parse_schedule) fires strictly after `after_ms`; nullopt if it never does within 4 years.
std::optional<int64_t> next_cron_fire(const std::string& cron, int64_t after_ms);

/// When a stream table with `schedule` last refreshed at `last_ms` (nullopt: never) is due.
/// Never-refreshed tables are due at once.
int64_t next_due_ms(const Schedule& schedule, std::optional<int64_t> last_ms, int64_t now_ms);

/// Delay before retrying after `consecutive_errors` failures: exponential from 1 s, capped at
/// 5 minutes.
int64_t backoff_ms(int consecutive_errors);

/// Topological order of `nodes` given edges upstream -> downstream (ids not in `nodes` are
/// ignored). Returns nullopt when there is a cycle; `cycle` then names its members.
std::optional<std::vector<int64_t>> topo_order(const std::vector<int64_t>& nodes,
                                               const std::multimap<int64_t, int64_t>& edges,
                                               std::vector<int64_t>* cycle = nullptr);

}  // namespace pgt
