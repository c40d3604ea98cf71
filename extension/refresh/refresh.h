// The refresh executor: brings one stream table up to date in the current transaction.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "core/delta_sql.h"
#include "engine/translate.h"

extern "C" {
#include "postgres.h"
}

namespace pgt {

struct RefreshOutcome {
    std::string mode;    ///< "differential", "full" or "none" (nothing changed)
    int64_t rows = 0;    ///< rows written to the storage table
    std::string reason;  ///< why a full refresh, if it was one
};

/// Refresh stream table `pgt_id`: take its lock, then, under one snapshot, consume the
/// changes its frontier has not seen (by transaction visibility), apply them, advance the
/// frontier and clean up buffers, all in the caller's transaction. `force_full` recomputes.
/// Without `wait_for_lock` a refresh already running elsewhere makes this return mode
/// "busy" at once. `trigger` ("manual", "schedule", "wake") goes into the refresh history.
RefreshOutcome refresh_stream_table(int64_t pgt_id, bool force_full, bool wait_for_lock = true,
                                    const char* trigger = "manual");

/// The defining query of a stream table, translated (reads its query view).
Translation translate_stream_table(Oid query_view);

/// Translate an analyzed query and decide how it is maintained.
/// Per table (attribute numbers): the column sets a query looks its rows up by (joins,
/// correlated sublinks, GROUP BY), and the columns it reads (0: the whole row).
struct CopyKeys {
    std::map<Oid, std::vector<std::vector<int>>> keys;
    std::map<Oid, std::set<int>> used;
};

struct Analysis {
    Translation translation;
    bool differential = false;
    std::string reason;  ///< why not differential
    ivm::StorageLayout layout;
    /// Citus sources the differential delta reads the rows of, which need a state copy
    /// (capture/state_copy.h) before the first refresh.
    std::vector<Oid> state_copies;
    /// What the state copies are indexed on.
    CopyKeys copy_keys;
};

/// Give Citus source `relid` its state copy (capture::state::ensure), indexed on what `keys`
/// says the query looks its rows up by, with the columns it reads included.
void ensure_copy(Oid relid, const CopyKeys& keys);
Analysis analyze_for_mode(Query* query, const std::string& refresh_mode,
                          const std::vector<ivm::Column>& columns);

}  // namespace pgt
