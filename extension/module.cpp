// Module entry point: version magic and settings (pg_trickle.*).
#include <climits>

#include "boundary/guard.h"
#include "scheduler/scheduler.h"
#include "settings.h"
extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"
}

extern "C" {
PG_MODULE_MAGIC;
}

namespace pgt::settings {
bool enabled = true;
int scheduler_interval_ms = 1000;
int max_consecutive_errors = 5;
int wake_threshold_ms = 1000;
int history_rows_per_table = 100;
int citus_worker_retry_ticks = 5;
int citus_st_lock_lease_ms = 60000;
int citus_slot_max_lag_bytes = 1024 * 1024 * 1024;
int citus_st_placement = static_cast<int>(StPlacement::local);
int citus_reference_max_rows = 100000;
bool log_remote_commands = false;
int remote_command_timeout = 60000;
int remote_connect_timeout = 10000;
char* fault_injection = nullptr;
}  // namespace pgt::settings

// NOLINTNEXTLINE(bugprone-reserved-identifier): the name PostgreSQL calls
extern "C" PGDLLEXPORT void _PG_init(void);

void _PG_init(void) {
    using namespace pgt::settings;
    DefineCustomBoolVariable("pg_trickle.enabled", "Whether the scheduler refreshes stream tables.",
                             nullptr, &enabled, true, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pg_trickle.scheduler_interval_ms",
                            "How often the scheduler looks for due refreshes.", nullptr,
                            &scheduler_interval_ms, 1000, 10, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS,
                            nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pg_trickle.citus_worker_retry_ticks",
                            "Consecutive per-worker poll failures before a WARNING (0 disables).",
                            nullptr, &citus_worker_retry_ticks, 5, 0, 1000000, PGC_SIGHUP, 0,
                            nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pg_trickle.citus_st_lock_lease_ms",
                            "Duration of a distributed refresh lease.", nullptr,
                            &citus_st_lock_lease_ms, 60000, 1000, INT_MAX, PGC_SIGHUP, GUC_UNIT_MS,
                            nullptr, nullptr, nullptr);
    DefineCustomIntVariable(
        "pg_trickle.citus_slot_max_lag_bytes",
        "Unread WAL of a slot beyond which it is recreated and its readers fully refreshed "
        "(0 disables the limit).",
        nullptr, &citus_slot_max_lag_bytes, 1024 * 1024 * 1024, 0, INT_MAX, PGC_SIGHUP,
        GUC_UNIT_BYTE, nullptr, nullptr, nullptr);
    static const config_enum_entry placements[] = {
        {"auto", static_cast<int>(StPlacement::automatic), false},
        {"local", static_cast<int>(StPlacement::local), false},
        {nullptr, 0, false}};
    DefineCustomEnumVariable(
        "pg_trickle.citus_st_placement",
        "Where create_stream_table stores a stream table over a distributed source when no "
        "output_distribution_column is given: 'local' (on the coordinator) or 'auto' (reference "
        "or distributed by size).",
        nullptr, &citus_st_placement, static_cast<int>(StPlacement::local), placements, PGC_USERSET,
        0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable(
        "pg_trickle.citus_reference_max_rows",
        "With citus_st_placement 'auto': stream tables of fewer rows become reference tables, "
        "others are distributed by their row identity.",
        nullptr, &citus_reference_max_rows, 100000, 0, INT_MAX, PGC_USERSET, 0, nullptr, nullptr,
        nullptr);
    DefineCustomBoolVariable("pg_trickle.log_remote_commands",
                             "Log every command sent to another node.", nullptr,
                             &log_remote_commands, false, PGC_SUSET, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable(
        "pg_trickle.remote_command_timeout",
        "The longest one command sent to another node may take, from sending it to its whole "
        "result (0: no limit).",
        "A command past it is cancelled and its connection closed (SQLSTATE 08006).",
        &remote_command_timeout, 60000, 0, INT_MAX, PGC_SUSET, GUC_UNIT_MS, nullptr, nullptr,
        nullptr);
    DefineCustomIntVariable("pg_trickle.remote_connect_timeout",
                            "The longest a connection to another node may take to establish (0: "
                            "no limit).",
                            nullptr, &remote_connect_timeout, 10000, 0, INT_MAX, PGC_SUSET,
                            GUC_UNIT_MS, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pg_trickle.max_consecutive_errors",
                            "Consecutive failed refreshes after which a stream table is suspended.",
                            nullptr, &max_consecutive_errors, 5, 1, 1000000, PGC_SIGHUP, 0, nullptr,
                            nullptr, nullptr);
    DefineCustomIntVariable(
        "pg_trickle.wake_threshold_ms",
        "Stream tables scheduled at most this often are refreshed as soon as a writer commits.",
        nullptr, &wake_threshold_ms, 1000, 0, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, nullptr,
        nullptr, nullptr);
    DefineCustomIntVariable(
        "pg_trickle.history_rows_per_table", "Refresh history rows kept per stream table.", nullptr,
        &history_rows_per_table, 100, 1, 1000000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomStringVariable(
        "pg_trickle.fault_injection",
        "Testing only: 'pg_call:N' raises an error at the N-th guarded PostgreSQL call, "
        "'cpp_call:N' throws a C++ exception there.",
        nullptr, &fault_injection, "", PGC_SUSET, GUC_NOT_IN_SAMPLE, nullptr,
        [](const char*, void*) { pgt::detail::reset_fault_injection(); }, nullptr);
    MarkGUCPrefixReserved("pg_trickle");
    if (process_shared_preload_libraries_in_progress) {
        pgt::scheduler::init_preloaded();
    }
}
