// pg_trickle.* settings (defined in module.cpp, documented in docs/settings.md).
#pragma once

namespace pgt::settings {
extern bool enabled;
extern int scheduler_interval_ms;
extern int max_consecutive_errors;
extern int wake_threshold_ms;
extern int history_rows_per_table;
extern int citus_worker_retry_ticks;
extern int citus_st_lock_lease_ms;
extern int citus_slot_max_lag_bytes;
/// pg_trickle.citus_st_placement: how create_stream_table places the storage of a stream
/// table over a distributed source when no output_distribution_column is given.
enum class StPlacement { automatic, local };
extern int citus_st_placement;
/// pg_trickle.citus_reference_max_rows: below it, 'auto' makes the storage a reference table.
extern int citus_reference_max_rows;
extern bool log_remote_commands;
/// ms; the longest one remote command may take from send to its whole result (0: no limit).
extern int remote_command_timeout;
/// ms; the longest a connection to another node may take to establish (0: no limit).
extern int remote_connect_timeout;
/// Test hook: "pg_call:N" / "cpp_call:N" injects a fault at the N-th guarded call.
extern char* fault_injection;
}  // namespace pgt::settings
