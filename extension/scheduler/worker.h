// What the scheduler's background workers (scheduler.cpp: launcher and per-database
// scheduler; poller.cpp: per-database WAL poller) share. Private to scheduler/.
#pragma once

#include <exception>

#include "boundary/pg.h"
#include "catalog/generation.h"

extern "C" {
#include "postgres.h"
}

namespace pgt::scheduler {

/// Start a per-database worker: signal handlers, the connection to database `dboid`, its
/// application name, and the settings every statement it runs relies on (READ COMMITTED
/// whatever default_transaction_isolation says; search_path pinned to pg_catalog, pg_temp
/// whatever the database's or its owner's default: every statement also sits in a pinned
/// scope, pg::AsExtensionOwner, this is the floor).
void enter_database(Oid dboid, const char* application_name);

/// Run `work` in a transaction of its own with pg_trickle locked in place
/// (catalog::lock_extension), so that a DROP EXTENSION cannot pull the catalog from under it;
/// does nothing and returns false when pg_trickle is not installed (any more).
template <typename F>
bool in_catalog_transaction(F&& work) {
    bool installed = false;
    pg::in_transaction([&] {
        installed = catalog::lock_extension();
        if (installed) {
            work();
        }
    });
    return installed;
}

/// Whether a failure came from something outside a stream table's query that heals by
/// itself: a node that cannot be reached, a slot being recreated, a connection, lock or
/// resource shortage. Such failures are retried with backoff and never suspend a stream
/// table (docs/settings.md, "Failures"); a worker logs them at LOG, not WARNING.
bool transient_failure(const std::exception& e);

}  // namespace pgt::scheduler
