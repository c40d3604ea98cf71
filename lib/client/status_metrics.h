// The Prometheus metrics of a status snapshot (`pgtrickle status --format prometheus`):
// which families exist, their names, help texts and labels. Pure over the snapshot.
#pragma once

#include <vector>

#include "client/status.h"
#include "core/prometheus.h"

namespace pgt::client {

/// Every metric family of a snapshot and its health verdict, starting with pgtrickle_up 1.
/// Stream-table series carry the labels schema and name; per-table values that are NULL
/// (staleness of a never-refreshed stream table, ...) have no sample.
std::vector<prometheus::Family> status_metrics(const StatusSnapshot& snap, const Health& health);

/// The families of a scrape that could not read the database: pgtrickle_up 0 only.
std::vector<prometheus::Family> unreachable_metrics();

}  // namespace pgt::client
