// Rendering of worker slots (pgtrickle.pgt_worker_slots rows from client::read_worker_slots)
// as a table, shared by `pgtrickle slots list` and `pgtrickle status`.
#pragma once

#include <string>

#include "core/json.h"

namespace pgt::cli {

/// A cell for a value of any JSON type: null is empty, strings on one line.
std::string json_cell(const json::Value& v);

/// The table of worker slots: source, worker, slot, frontier, lag, last poll, failures,
/// last error.
std::string worker_slots_table(const json::Value& rows);

/// "2 worker slots", "3 worker slots, 1 failing" (consecutive_failures > 0).
std::string worker_slots_summary(const json::Value& rows);

}  // namespace pgt::cli
