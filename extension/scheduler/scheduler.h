// The scheduler: a launcher background worker starts one scheduler worker per database
// that has pg_trickle installed; each refreshes its stream tables when due, in dependency
// order. Writers wake their database's scheduler at commit (a latch, not LISTEN).
#pragma once

extern "C" {
#include "postgres.h"
}

namespace pgt::scheduler {

/// Called from _PG_init when loaded through shared_preload_libraries: shared memory,
/// the launcher worker, the commit callback and the utility hook.
void init_preloaded();

/// Whether the library was preloaded (the scheduler exists).
bool preloaded();

/// Ask the launcher to (re)start this database's scheduler soon (after CREATE EXTENSION or
/// create_stream_table).
void wake_launcher();

/// PID of this database's scheduler, or 0.
int scheduler_pid();

/// The WAL poller of database `dboid` (poller.cpp) registers itself when it starts; false
/// when another one serves the database (or the database is being dropped): it exits.
bool register_poller(Oid dboid);

/// Called by capture triggers: this transaction wrote to captured source `relid`; its
/// commit tells the scheduler (which wakes for stream tables with short schedules).
void note_captured_write(Oid relid);

}  // namespace pgt::scheduler
