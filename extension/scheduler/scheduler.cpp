// Background workers (model: pg_cron, the Citus maintenance daemon): signal handlers before
// unblocking signals, WaitLatch with WL_EXIT_ON_PM_DEATH, one transaction per refresh, the
// worker's name in pg_stat_activity, work left in flight by a crash marked on start.
#include "scheduler/scheduler.h"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "capture/wal.h"
#include "catalog/generation.h"
#include "catalog/sources.h"
#include "catalog/stream_tables.h"
#include "citus/citus.h"
#include "common/oids.h"
#include "core/schedule.h"
#include "core/scheduling.h"
#include "boundary/guard.h"
#include "boundary/pg.h"
#include "refresh/refresh.h"
#include "remote/connection.h"
#include "scheduler/worker.h"
#include "settings.h"
#include "boundary/spi.h"

extern "C" {
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
}

namespace pgt::scheduler {
namespace {

constexpr int kMaxDatabases = 128;
constexpr long kLauncherNapMs = 5000;
constexpr long kNoExtensionRecheckMs = 60000;
constexpr long kQuiesceMs = 10000;

constexpr int kMaxChanged = 64;

/// Per-database scheduler state in shared memory (one entry per database, not to be
/// confused with replication slots).
struct DatabaseEntry {
    Oid dboid;
    pid_t worker_pid;
    Latch* latch;       // the worker's latch, set by committing writers
    pid_t poller_pid;   // the database's WAL poller (poller.cpp), 0 when none runs
    bool no_extension;  // the last worker found no pg_trickle here
    TimestampTz checked_at;
    TimestampTz quiesce_until;  // database being dropped/renamed: do not start a worker
    bool wants_wakeups;         // some stream table here is refreshed on commit
    int nchanged;               // sources written by commits since the scheduler looked
    bool changed_overflow;      // more than kMaxChanged: treat every source as changed
    Oid changed[kMaxChanged];
};

struct Shared {
    LWLock* lock;
    pid_t launcher_pid;
    Latch* launcher_latch;
    DatabaseEntry dbs[kMaxDatabases];
};

Shared* g_shared = nullptr;
bool g_preloaded = false;
// Sources this transaction wrote (backend-local, published at commit).
constexpr int kMaxWritten = 16;
Oid g_written[kMaxWritten];
int g_nwritten = 0;
bool g_written_overflow = false;
shmem_request_hook_type prev_shmem_request_hook = nullptr;
shmem_startup_hook_type prev_shmem_startup_hook = nullptr;
ProcessUtility_hook_type prev_process_utility_hook = nullptr;

void shmem_request() {
    if (prev_shmem_request_hook) {
        prev_shmem_request_hook();
    }
    RequestAddinShmemSpace(MAXALIGN(sizeof(Shared)));
    RequestNamedLWLockTranche("pg_trickle", 1);
}

void shmem_startup() {
    if (prev_shmem_startup_hook) {
        prev_shmem_startup_hook();
    }
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found = false;
    g_shared =
        static_cast<Shared*>(ShmemInitStruct("pg_trickle scheduler", sizeof(Shared), &found));
    if (!found) {
        memset(g_shared, 0, sizeof(Shared));
        g_shared->lock = &(GetNamedLWLockTranche("pg_trickle"))->lock;
    }
    LWLockRelease(AddinShmemInitLock);
}

DatabaseEntry* find_database_entry(Oid dboid, bool create) {
    DatabaseEntry* free_entry = nullptr;
    for (auto& s : g_shared->dbs) {
        if (s.dboid == dboid) {
            return &s;
        }
        if (s.dboid == InvalidOid && free_entry == nullptr) {
            free_entry = &s;
        }
    }
    if (create && free_entry) {
        memset(free_entry, 0, sizeof(DatabaseEntry));
        free_entry->dboid = dboid;
    }
    return create ? free_entry : nullptr;
}

/// Commit callback: a transaction that wrote to captured sources tells its database's
/// scheduler which ones, and wakes it, when some stream table there wants that.
void on_xact(XactEvent event, void*) {
    if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
        event != XACT_EVENT_PARALLEL_COMMIT && event != XACT_EVENT_PARALLEL_ABORT) {
        return;
    }
    const bool publish =
        (g_nwritten > 0 || g_written_overflow) && event == XACT_EVENT_COMMIT && g_shared != nullptr;
    const int n = g_nwritten;
    const bool overflow = g_written_overflow;
    g_nwritten = 0;
    g_written_overflow = false;
    if (!publish) {
        return;
    }
    LWLockAcquire(g_shared->lock, LW_SHARED);
    DatabaseEntry* s = find_database_entry(MyDatabaseId, false);
    const bool wanted = s != nullptr && s->wants_wakeups && s->latch != nullptr;
    LWLockRelease(g_shared->lock);
    if (!wanted) {
        return;
    }
    Latch* latch = nullptr;
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    s = find_database_entry(MyDatabaseId, false);
    if (s != nullptr) {
        s->changed_overflow = s->changed_overflow || overflow;
        for (int i = 0; i < n && !s->changed_overflow; ++i) {
            bool known = false;
            for (int j = 0; j < s->nchanged && !known; ++j) {
                known = s->changed[j] == g_written[i];
            }
            if (known) {
                continue;
            }
            if (s->nchanged == kMaxChanged) {
                s->changed_overflow = true;
            } else {
                s->changed[s->nchanged++] = g_written[i];
            }
        }
        latch = s->latch;
    }
    LWLockRelease(g_shared->lock);
    if (latch) {
        SetLatch(latch);
    }
}

/// Register a dynamic background worker of database `dboid` that runs `function` of this
/// library, named "pg_trickle <kind> for database <dboid>" (type "pg_trickle <kind>") and
/// reporting to this process. The postmaster never restarts it: whoever started it does.
bool register_database_worker(const char* function, const char* kind, Oid dboid,
                              BackgroundWorkerHandle** handle) {
    BackgroundWorker w;
    memset(&w, 0, sizeof(w));
    w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    w.bgw_start_time = BgWorkerStart_RecoveryFinished;
    w.bgw_restart_time = BGW_NEVER_RESTART;
    snprintf(w.bgw_library_name, BGW_MAXLEN, "pg_trickle");
    snprintf(w.bgw_function_name, BGW_MAXLEN, "%s", function);
    snprintf(w.bgw_name, BGW_MAXLEN, "pg_trickle %s for database %u", kind, dboid);
    snprintf(w.bgw_type, BGW_MAXLEN, "pg_trickle %s", kind);
    w.bgw_main_arg = ObjectIdGetDatum(dboid);
    w.bgw_notify_pid = MyProcPid;
    return RegisterDynamicBackgroundWorker(&w, handle);
}

/// This database's WAL poller (poller.cpp): started by its scheduler when WAL-captured
/// sources exist and none runs; it exits by itself when there are none left.
void ensure_poller() {
    static BackgroundWorkerHandle* handle = nullptr;
    LWLockAcquire(g_shared->lock, LW_SHARED);
    DatabaseEntry* s = find_database_entry(MyDatabaseId, false);
    const bool running = s != nullptr && s->poller_pid != 0;
    LWLockRelease(g_shared->lock);
    if (running) {
        return;
    }
    if (handle != nullptr) {
        pid_t pid = 0;
        if (GetBackgroundWorkerPid(handle, &pid) == BGWH_NOT_YET_STARTED) {
            return;  // starting: it registers itself
        }
        pfree(handle);
        handle = nullptr;
    }
    // The scheduler starts it again when needed.
    MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
    const bool started =
        register_database_worker("pgtrickle_poller_main", "poller", MyDatabaseId, &handle);
    MemoryContextSwitchTo(old);
    if (!started) {
        handle = nullptr;
        ereport(LOG,
                (errmsg("pg_trickle: could not start the WAL poller of database %u", MyDatabaseId),
                 errhint("Raise max_worker_processes.")));
    }
}

void detach_poller(int, Datum arg) {
    const Oid dboid = DatumGetObjectId(arg);
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    if (DatabaseEntry* s = find_database_entry(dboid, false); s && s->poller_pid == MyProcPid) {
        s->poller_pid = 0;
    }
    LWLockRelease(g_shared->lock);
}

/// DROP DATABASE (and renames, and use as a template) need the database to themselves: stop
/// its scheduler first and keep the launcher from restarting it for a while.
void quiesce_database(const char* dbname) {
    if (g_shared == nullptr || dbname == nullptr) {
        return;
    }
    const Oid dboid = get_database_oid(dbname, true);
    if (!OidIsValid(dboid)) {
        return;
    }
    pid_t pid = 0;
    pid_t poller = 0;
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    if (DatabaseEntry* s = find_database_entry(dboid, false)) {
        s->quiesce_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), kQuiesceMs);
        pid = s->worker_pid;
        poller = s->poller_pid;
    }
    LWLockRelease(g_shared->lock);
    if (pid == 0 && poller == 0) {
        return;
    }
    // The scheduler first (it would start the poller again), then the poller.
    if (pid != 0) {
        kill(pid, SIGTERM);
    }
    if (poller != 0) {
        kill(poller, SIGTERM);
    }
    for (int i = 0; i < 500; ++i) {  // up to 5 s
        LWLockAcquire(g_shared->lock, LW_SHARED);
        DatabaseEntry* s = find_database_entry(dboid, false);
        const bool gone = s == nullptr || ((pid == 0 || s->worker_pid != pid) &&
                                           (poller == 0 || s->poller_pid != poller));
        LWLockRelease(g_shared->lock);
        if (gone) {
            return;
        }
        pg_usleep(10000);
        CHECK_FOR_INTERRUPTS();
    }
}

void process_utility(PlannedStmt* pstmt, const char* query, bool read_only_tree,
                     ProcessUtilityContext context, ParamListInfo params, QueryEnvironment* env,
                     DestReceiver* dest, QueryCompletion* qc) {
    Node* stmt = pstmt->utilityStmt;
    if (IsA(stmt, DropdbStmt)) {
        quiesce_database(reinterpret_cast<DropdbStmt*>(stmt)->dbname);
    } else if (IsA(stmt, RenameStmt) &&
               reinterpret_cast<RenameStmt*>(stmt)->renameType == OBJECT_DATABASE) {
        quiesce_database(reinterpret_cast<RenameStmt*>(stmt)->subname);
    } else if (IsA(stmt, CreatedbStmt)) {
        ListCell* lc;
        foreach (lc, reinterpret_cast<CreatedbStmt*>(stmt)->options) {
            auto* opt = static_cast<DefElem*>(lfirst(lc));
            if (strcmp(opt->defname, "template") == 0 && opt->arg) {
                quiesce_database(defGetString(opt));
            }
        }
    }
    const bool creates_extension =
        IsA(stmt, CreateExtensionStmt) &&
        strcmp(reinterpret_cast<CreateExtensionStmt*>(stmt)->extname, "pg_trickle") == 0;
    // TRUNCATE of a WAL-captured (Citus) source: Citus CDC does not report it. The tables are
    // looked up now (a palloc'd list: nothing here needs a destructor) and marked after.
    List* truncated = NIL;
    if (IsA(stmt, TruncateStmt) && get_extension_oid("pg_trickle", true) != InvalidOid) {
        ListCell* lc;
        foreach (lc, reinterpret_cast<TruncateStmt*>(stmt)->relations) {
            const Oid relid = RangeVarGetRelid(static_cast<RangeVar*>(lfirst(lc)), NoLock, true);
            if (OidIsValid(relid)) {
                truncated = lappend_oid(truncated, relid);
            }
        }
    }
    if (prev_process_utility_hook) {
        prev_process_utility_hook(pstmt, query, read_only_tree, context, params, env, dest, qc);
    } else {
        standard_ProcessUtility(pstmt, query, read_only_tree, context, params, env, dest, qc);
    }
    if (truncated != NIL) {
        (void)pgt::guard_cpp([truncated]() -> Datum {
            const std::vector<Oid> relids = pgt::oid_list(truncated);
            pgt::spi::Session spi;
            const pg::AsExtensionOwner as_extension_owner;
            pgt::capture::wal::note_truncate(relids);
            spi.finish();
            return 0;
        });
    }
    if (creates_extension) {
        wake_launcher();
    }
}

void register_launcher() {
    BackgroundWorker w;
    memset(&w, 0, sizeof(w));
    w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    w.bgw_start_time = BgWorkerStart_RecoveryFinished;
    w.bgw_restart_time = 5;
    snprintf(w.bgw_library_name, BGW_MAXLEN, "pg_trickle");
    snprintf(w.bgw_function_name, BGW_MAXLEN, "pgtrickle_launcher_main");
    snprintf(w.bgw_name, BGW_MAXLEN, "pg_trickle launcher");
    snprintf(w.bgw_type, BGW_MAXLEN, "pg_trickle launcher");
    RegisterBackgroundWorker(&w);
}

std::vector<Oid> connectable_databases() {
    // The scan collects into a palloc'd List inside the guard; C++ copies it outside.
    List* oids = nullptr;
    std::vector<Oid> result;
    try {
        pg::start_transaction();
        oids = pg_call([]() noexcept {
            List* out = NIL;
            Relation rel = table_open(DatabaseRelationId, AccessShareLock);
            TableScanDesc scan = table_beginscan_catalog(rel, 0, nullptr);
            HeapTuple tup;
            while (HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection))) {
                auto* db = reinterpret_cast<Form_pg_database>(GETSTRUCT(tup));
                if (db->datallowconn && !db->datistemplate) {
                    out = lappend_oid(out, db->oid);
                }
            }
            table_endscan(scan);
            table_close(rel, AccessShareLock);
            return out;
        });
        result = oid_list(oids);
        pg::commit_transaction();
    } catch (...) {
        // Also when starting or committing failed: a transaction left open would make
        // every later iteration fail.
        pg::abort_transaction();
        throw;
    }
    return result;
}

bool start_db_worker(Oid dboid, BackgroundWorkerHandle** handle) {
    // The launcher restarts it, unless told not to.
    return register_database_worker("pgtrickle_scheduler_main", "scheduler", dboid, handle);
}

// ---- the per-database scheduler ---------------------------------------------------------

struct StreamTable {
    int64_t id;
    std::vector<Oid> sources;
    Schedule schedule;
    std::optional<int64_t> last_ms;
    std::optional<int64_t> retry_ms;
    std::string status;
};

int64_t now_ms() {
    return GetCurrentTimestamp() / 1000 + (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * 86400000LL;
}

/// Read the catalog: scheduled stream tables and the dependency edges between them.
void load(std::vector<StreamTable>& sts, std::multimap<int64_t, int64_t>& edges,
          bool& wal_sources) {
    spi::Session spi;
    wal_sources = !catalog::wal_sources().empty();
    for (const auto& row : catalog::scheduled_stream_tables()) {
        StreamTable st;
        st.id = row.id;
        st.schedule = parse_schedule(row.schedule);
        if (st.schedule.error) {
            continue;
        }
        st.last_ms = row.last_refresh_ms;
        st.retry_ms = row.retry_at_ms;
        st.status = row.status;
        st.sources = row.sources;
        sts.push_back(std::move(st));
    }
    for (const auto& [up, down] : catalog::stream_table_edges()) {
        edges.emplace(up, down);
    }
    spi.finish();
}

void record_failure(int64_t id, const std::string& message, TimestampTz started,
                    bool of_the_query) {
    spi::Session spi;
    if (const auto n = catalog::record_refresh_failure(id, message, of_the_query,
                                                       settings::max_consecutive_errors)) {
        catalog::set_retry_delay(id, backoff_ms(*n));
    }
    catalog::record_failed_history(id, timestamptz_to_str(started), message, "schedule");
    spi.finish();
}

/// One refresh in its own transaction; a failure rolls it back and is recorded in another.
void refresh_one(int64_t id, const char* trigger) {
    const TimestampTz started = GetCurrentTimestamp();
    std::string error;
    bool of_the_query = true;
    try {
        (void)in_catalog_transaction([&] {
            spi::Session spi;
            (void)refresh_stream_table(id, false, /*wait_for_lock=*/false, trigger);
            spi.finish();
        });
        return;
    } catch (const std::exception& e) {
        error = describe(e);
        of_the_query = !transient_failure(e);
    }
    ereport(LOG,
            (errmsg("pg_trickle: refresh of stream table %lld failed: %s",
                    static_cast<long long>(id), error.c_str()),
             of_the_query ? 0 : errdetail("Retried with backoff; not counted toward suspension.")));
    (void)in_catalog_transaction([&] { record_failure(id, error, started, of_the_query); });
}

/// One pass: refresh what is due, upstream before downstream. Returns ms until the next due
/// refresh (capped by the caller).
long tick() {
    // Sources written by commits since the last look (taken before reading the catalog:
    // a commit after this sets the latch again).
    std::vector<Oid> changed;
    bool changed_all = false;
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    if (DatabaseEntry* entry = find_database_entry(MyDatabaseId, false)) {
        changed.assign(entry->changed, entry->changed + entry->nchanged);
        changed_all = entry->changed_overflow;
        entry->nchanged = 0;
        entry->changed_overflow = false;
    }
    LWLockRelease(g_shared->lock);

    std::vector<StreamTable> sts;
    std::multimap<int64_t, int64_t> edges;
    bool wal_sources = false;
    const bool installed = in_catalog_transaction([&] { load(sts, edges, wal_sources); });
    if (!installed) {
        ereport(LOG,
                (errmsg("pg_trickle: extension not installed in this database, scheduler exits")));
        proc_exit(0);
    }
    if (wal_sources) {
        ensure_poller();
    }
    const int64_t now = now_ms();
    std::map<int64_t, bool> due;  // id -> refreshed because a writer woke us
    bool any_short = false;
    long wait = LONG_MAX;
    for (const auto& st : sts) {
        int64_t at = next_due_ms(st.schedule, st.last_ms, now);
        // Short schedules are refreshed as soon as a writer of one of their sources commits.
        const bool short_schedule = settings::wake_threshold_ms > 0 &&
                                    st.schedule.kind == Schedule::Kind::duration &&
                                    st.schedule.every.count() <= settings::wake_threshold_ms;
        any_short = any_short || short_schedule;
        bool by_wake = false;
        if (short_schedule && at > now) {
            for (Oid src : st.sources) {
                by_wake = by_wake || changed_all ||
                          std::find(changed.begin(), changed.end(), src) != changed.end();
            }
            if (by_wake) {
                at = now;
            }
        }
        if (st.status == "error" && st.retry_ms) {
            at = std::max(at, *st.retry_ms);
        }
        // Stream tables due a little later join this tick (within a tenth of their period,
        // at most 100 ms): staggered schedules then share ticks instead of each waking the
        // scheduler, which re-reads the catalog every tick.
        const int64_t slack = st.schedule.kind == Schedule::Kind::duration
                                  ? std::min<int64_t>(100, st.schedule.every.count() / 10)
                                  : 100;
        if (at <= now + slack) {
            due[st.id] = by_wake;
        } else {
            wait = std::min<long>(wait, static_cast<long>(at - now));
        }
    }
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    if (DatabaseEntry* entry = find_database_entry(MyDatabaseId, false)) {
        entry->wants_wakeups = any_short;
    }
    LWLockRelease(g_shared->lock);
    std::vector<int64_t> all;
    all.reserve(sts.size());
    for (const auto& st : sts) {
        all.push_back(st.id);
    }
    auto order = topo_order(all, edges);
    std::vector<int64_t> ordered = order ? *order : all;
    for (int64_t id : ordered) {
        auto d = due.find(id);
        if (d == due.end()) {
            continue;
        }
        CHECK_FOR_INTERRUPTS();
        refresh_one(id, d->second ? "wake" : "schedule");
    }
    return wait;
}

/// Work a crash or restart left in flight is marked failed, never trusted.
void mark_interrupted_work() {
    (void)in_catalog_transaction([&] {
        spi::Session spi;
        catalog::mark_interrupted_history();
        spi.finish();
    });
}

void detach_database_entry(int, Datum arg) {
    const Oid dboid = DatumGetObjectId(arg);
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    if (DatabaseEntry* s = find_database_entry(dboid, false); s && s->worker_pid == MyProcPid) {
        s->worker_pid = 0;
        s->latch = nullptr;
    }
    LWLockRelease(g_shared->lock);
}

}  // namespace

void init_preloaded() {
    g_preloaded = true;
    prev_shmem_request_hook = shmem_request_hook;
    shmem_request_hook = shmem_request;
    prev_shmem_startup_hook = shmem_startup_hook;
    shmem_startup_hook = shmem_startup;
    prev_process_utility_hook = ProcessUtility_hook;
    ProcessUtility_hook = process_utility;
    RegisterXactCallback(on_xact, nullptr);
    register_launcher();
}

bool preloaded() {
    return g_preloaded;
}

void wake_launcher() {
    if (g_shared == nullptr) {
        return;
    }
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    if (DatabaseEntry* s = find_database_entry(MyDatabaseId, true)) {
        s->no_extension = false;
    }
    Latch* l = g_shared->launcher_latch;
    LWLockRelease(g_shared->lock);
    if (l) {
        SetLatch(l);
    }
}

bool register_poller(Oid dboid) {
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    DatabaseEntry* s = find_database_entry(dboid, true);
    bool mine = false;
    if (s != nullptr && (s->poller_pid == 0 || s->poller_pid == MyProcPid) &&
        GetCurrentTimestamp() >= s->quiesce_until) {
        s->poller_pid = MyProcPid;
        mine = true;
    }
    LWLockRelease(g_shared->lock);
    if (mine) {
        on_shmem_exit(detach_poller, ObjectIdGetDatum(dboid));
    }
    return mine;
}

int scheduler_pid() {
    if (g_shared == nullptr) {
        return 0;
    }
    LWLockAcquire(g_shared->lock, LW_SHARED);
    DatabaseEntry* s = find_database_entry(MyDatabaseId, false);
    const int pid = s ? s->worker_pid : 0;
    LWLockRelease(g_shared->lock);
    return pid;
}

void note_captured_write(Oid relid) {
    for (int i = 0; i < g_nwritten; ++i) {
        if (g_written[i] == relid) {
            return;
        }
    }
    if (g_nwritten == kMaxWritten) {
        g_written_overflow = true;
    } else {
        g_written[g_nwritten++] = relid;
    }
}

bool transient_failure(const std::exception& e) {
    if (dynamic_cast<const remote::RemoteError*>(&e) != nullptr ||
        dynamic_cast<const capture::wal::SlotLost*>(&e) != nullptr ||
        dynamic_cast<const capture::wal::NodeNotCapturable*>(&e) != nullptr ||
        dynamic_cast<const capture::wal::NodeUnreachable*>(&e) != nullptr ||
        dynamic_cast<const capture::wal::SlotsNotProvisioned*>(&e) != nullptr) {
        return true;
    }
    // pg_trickle's own errors and PostgreSQL's (a deadlock, a statement timeout) alike.
    int code = 0;
    if (const auto* error = dynamic_cast<const Error*>(&e)) {
        code = error->sqlstate();
    } else if (const auto* pg_error = dynamic_cast<const PgError*>(&e)) {
        code = pg_error->sqlstate();
    } else {
        return false;
    }
    const int error_class = ERRCODE_TO_CATEGORY(code);
    return error_class == ERRCODE_CONNECTION_EXCEPTION ||    // 08: node connections
           error_class == ERRCODE_INSUFFICIENT_RESOURCES ||  // 53
           error_class == ERRCODE_TRANSACTION_ROLLBACK ||    // 40: deadlock, serialization
           code == ERRCODE_LOCK_NOT_AVAILABLE ||             // 55P03
           code == ERRCODE_QUERY_CANCELED ||                 // 57014: a timeout
           code == ERRCODE_ADMIN_SHUTDOWN || code == ERRCODE_CRASH_SHUTDOWN ||
           code == ERRCODE_CANNOT_CONNECT_NOW;
}

void enter_database(Oid dboid, const char* application_name) {
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
    pgstat_report_appname(application_name);
    SetConfigOption("default_transaction_isolation", "read committed", PGC_SUSET, PGC_S_OVERRIDE);
    SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
}

}  // namespace pgt::scheduler

using namespace pgt::scheduler;
using pgt::pg_call;
namespace pg = pgt::pg;

namespace {

/// One look at the databases: start a scheduler where one is missing, forget dropped ones.
void launcher_iteration(std::map<Oid, BackgroundWorkerHandle*>& handles) {
    const std::vector<Oid> dbs = connectable_databases();
    const TimestampTz now = GetCurrentTimestamp();
    for (Oid db : dbs) {
        auto h = handles.find(db);
        if (h != handles.end()) {
            pid_t pid;
            const BgwHandleStatus st = GetBackgroundWorkerPid(h->second, &pid);
            if (st == BGWH_STARTED || st == BGWH_NOT_YET_STARTED) {
                continue;
            }
            pfree(h->second);
            handles.erase(h);
        }
        LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
        DatabaseEntry* s = find_database_entry(db, true);
        bool start = s != nullptr && s->worker_pid == 0 && now >= s->quiesce_until &&
                     !(s->no_extension &&
                       !TimestampDifferenceExceeds(s->checked_at, now, kNoExtensionRecheckMs));
        LWLockRelease(g_shared->lock);
        if (!start) {
            continue;
        }
        BackgroundWorkerHandle* handle = nullptr;
        if (start_db_worker(db, &handle)) {
            handles[db] = handle;
        } else {
            ereport(LOG, (errmsg("pg_trickle: could not start a scheduler for database %u", db),
                          errhint("Raise max_worker_processes.")));
        }
    }
    // Forget entries of databases that no longer exist.
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    for (auto& s : g_shared->dbs) {
        if (s.dboid != InvalidOid && s.worker_pid == 0 &&
            std::find(dbs.begin(), dbs.end(), s.dboid) == dbs.end()) {
            memset(&s, 0, sizeof(s));
        }
    }
    LWLockRelease(g_shared->lock);
}

/// Report an iteration's failure; its transaction, if any, was rolled back already. A
/// WARNING: an iteration fails only on what no refresh failure explains (a catalog query,
/// the poller's provisioning), and the next one will most likely fail the same way.
void log_failure(const char* what, const std::exception& e) {
    ereport(WARNING, (errmsg("pg_trickle: %s failed: %s", what, pgt::describe(e).c_str())));
}

}  // namespace

// The background workers' entry points: guarded like SQL functions (PGT_WORKER_MAIN); each
// loop iteration runs its C++ work in a try/catch, never under PG_TRY, and a failed
// iteration is rolled back (never committed) before the loop goes on.

PGT_WORKER_MAIN(pgtrickle_launcher_main) {
    (void)arg;
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    BackgroundWorkerInitializeConnection(nullptr, nullptr, 0);
    pgstat_report_appname("pg_trickle launcher");
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    g_shared->launcher_pid = MyProcPid;
    g_shared->launcher_latch = MyLatch;
    LWLockRelease(g_shared->lock);
    std::map<Oid, BackgroundWorkerHandle*> handles;
    for (;;) {
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, kLauncherNapMs,
                        PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
        }
        try {
            launcher_iteration(handles);
        } catch (const std::exception& e) {
            log_failure("launcher iteration", e);
        }
    }
}

PGT_WORKER_MAIN(pgtrickle_scheduler_main) {
    const Oid dboid = DatumGetObjectId(arg);
    pgt::scheduler::enter_database(dboid, "pg_trickle scheduler");

    bool installed = false;
    pg::in_transaction([&] {
        installed =
            pg_call([]() noexcept { return OidIsValid(get_extension_oid("pg_trickle", true)); });
    });
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    DatabaseEntry* entry = find_database_entry(dboid, true);
    if (entry) {
        entry->checked_at = GetCurrentTimestamp();
        entry->no_extension = !installed;
        if (installed) {
            entry->worker_pid = MyProcPid;
            entry->latch = MyLatch;
        }
    }
    LWLockRelease(g_shared->lock);
    if (!installed || entry == nullptr) {
        proc_exit(0);
    }
    on_shmem_exit(detach_database_entry, ObjectIdGetDatum(dboid));
    mark_interrupted_work();

    MemoryContext loop_cxt = AllocSetContextCreate(TopMemoryContext, "pg_trickle scheduler loop",
                                                   ALLOCSET_DEFAULT_SIZES);
    long wait = 0;
    for (;;) {
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
        }
        if (pgt::settings::enabled) {
            MemoryContext old = MemoryContextSwitchTo(loop_cxt);
            try {
                wait = tick();
            } catch (const std::exception& e) {
                // A deadlock or lock wait with DDL on the catalog (ALTER EXTENSION UPDATE
                // rewriting it) passes: the next tick reads again. Anything else is a bug
                // worth a WARNING.
                if (pgt::scheduler::transient_failure(e)) {
                    ereport(LOG, (errmsg("pg_trickle: scheduler tick deferred: %s",
                                         pgt::describe(e).c_str())));
                } else {
                    log_failure("scheduler tick", e);
                }
                wait = 1000;
            }
            MemoryContextSwitchTo(old);
            MemoryContextReset(loop_cxt);
        } else {
            wait = LONG_MAX;
        }
        const long nap =
            std::max<long>(1, std::min<long>(wait, pgt::settings::scheduler_interval_ms));
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, nap,
                        PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
    }
}
