// The catalog layer: stream tables (pgtrickle.pgt_stream_tables, pgt_dependencies) and their
// refresh history (pgt_refresh_history). See generation.h for the rules of the layer.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

extern "C" {
#include "postgres.h"
#include "utils/snapshot.h"
}

namespace pgt::catalog {

/// A stream table as the catalog records it.
struct StreamTable {
    int64_t id = 0;
    std::string schema, name;     ///< of the storage table
    Oid relid = InvalidOid;       ///< the storage table
    Oid query_view = InvalidOid;  ///< pgtrickle.pgt_query_<id>: the defining query
    std::string defining_query;   ///< as the user gave it
    std::optional<std::string> schedule;
    std::string refresh_mode;    ///< auto | differential | full (as asked)
    std::string effective_mode;  ///< differential | full (as maintained)
    std::string cdc_mode;        ///< auto | trigger | wal
    std::string storage_kind;    ///< rows | groups
    std::string status;          ///< initializing | active | suspended | error
    bool needs_full_refresh = false;
    std::optional<std::string> full_refresh_reason;  ///< why, when the catalog records it
    std::optional<std::string> frontier;             ///< JSON; nullopt before the first refresh
    /// Result-changing settings recorded at create (name, value), for every refresh.
    std::vector<std::pair<std::string, std::string>> refresh_settings;
    /// Where the storage is (st_placement): local | reference | distributed, and the column
    /// a distributed storage is distributed by (output_distribution_column; "__pgt_row_id"
    /// for the row identity).
    std::string placement = "local";
    std::optional<std::string> distribution_column;

    /// schema.name, quoted.
    std::string qualified_name() const;
};

/// Stream table `id`, read under `snapshot` (the current one when invalid).
std::optional<StreamTable> stream_table(int64_t id, Snapshot snapshot = InvalidSnapshot);
/// The stream table whose storage table is `relid`.
std::optional<StreamTable> stream_table_of(Oid relid);
/// Every stream table maintained differentially, by id.
std::vector<StreamTable> differential_stream_tables();

/// Record where stream table `id`'s storage is (st_placement, output_distribution_column).
/// Nothing on catalogs before 0.33.0 (has_st_placement).
void set_placement(int64_t id, const std::string& placement,
                   const std::optional<std::string>& distribution_column);

/// A new stream table's id (from the catalog's sequence).
int64_t next_stream_table_id();

/// What create_stream_table records first (the definition follows: record_definition).
struct NewStreamTable {
    int64_t id = 0;
    std::string schema, name;  ///< the storage table, which must exist
    std::string defining_query;
    Oid query_view = InvalidOid;
    std::optional<std::string> schedule;
    std::string refresh_mode, cdc_mode;
    bool initialize = true;
};
void insert_stream_table(const NewStreamTable& st);

/// How a stream table is maintained, as create and alter decide it.
struct Definition {
    std::string defining_query;
    Oid query_view = InvalidOid;
    std::string refresh_mode;
    bool differential = false;
    std::optional<std::string> mode_reason;  ///< why not differential
    std::string storage_kind;                ///< rows | groups
    std::vector<Oid> sources;                ///< every table the query reads
    /// Per source that is not captured (a Citus table read only by stream tables maintained
    /// by full refresh): its stable name and placement, recorded as a captured one's are.
    std::map<Oid, std::pair<std::string, std::string>> uncaptured;
};
/// Record the definition, the sources read (pgt_dependencies, with their capture
/// placement) and this session's result-changing settings (kResultSettings); the frontier
/// is reset (the next refresh is a full one).
void record_definition(int64_t id, const Definition& d);

/// The storage table was recreated under the same name.
void set_storage_relation(int64_t id, const std::string& qualified_name);
/// Schedule ("" = refreshed on demand only).
void set_schedule(int64_t id, const std::string& schedule);
/// Status 'active' or 'suspended'. Resuming clears the error count and makes the next
/// refresh a full one (a suspended stream table let its sources' buffers be cleaned).
void set_status(int64_t id, const std::string& status);
/// The stream table is maintained by full refresh from now on (effective_mode 'full').
void maintain_by_full_refresh(int64_t id, const std::string& reason);

/// The sources stream table `id` reads.
std::vector<Oid> sources_read(int64_t id);
/// Quoted names of the stream tables other than `except_id` that read relation `relid`.
std::vector<std::string> readers_of(Oid relid, int64_t except_id);
/// (upstream, downstream) pairs: downstream reads upstream's storage table.
std::vector<std::pair<int64_t, int64_t>> stream_table_edges();
void delete_dependencies(int64_t id);
void delete_stream_table(int64_t id);

/// A stream table the scheduler refreshes.
struct Scheduled {
    int64_t id = 0;
    std::string schedule, status;
    std::optional<int64_t> last_refresh_ms;  ///< epoch ms
    std::optional<int64_t> retry_at_ms;      ///< after a failure: not before
    std::vector<Oid> sources;
};
/// Stream tables with a schedule whose status lets them be refreshed.
std::vector<Scheduled> scheduled_stream_tables();

/// A refresh succeeded: its frontier (JSON) and outcome, errors cleared, status active.
void store_refresh(int64_t id, const std::string& frontier, const std::string& mode, int64_t rows,
                   Snapshot snapshot);

/// The next refresh of `id` recomputes; `reason` is shown as that refresh's reason (the
/// first reason pending is kept).
void mark_for_full_refresh(int64_t id, const std::string& reason);
/// The next refresh of every stream table reading captured source `source_key` recomputes.
void mark_readers_for_full_refresh(const std::string& source_key, const std::string& reason);

/// A scheduled refresh failed. A failure `of_the_query` counts toward suspension
/// (`max_errors` in a row suspends) and makes the next attempt a full refresh; another one
/// (a node unreachable, a slot failing) is retried as it was, never suspends. Returns the
/// consecutive failure count, or nullopt when the stream table is suspended or gone.
std::optional<int> record_refresh_failure(int64_t id, const std::string& message, bool of_the_query,
                                          int max_errors);
/// Not retried before `delay_ms` from now.
void set_retry_delay(int64_t id, int64_t delay_ms);

// ---- history ---------------------------------------------------------------------------

/// One refresh (mode differential | full), keeping `keep` rows per stream table.
void record_history(int64_t id, const std::string& started_at, const std::string& mode,
                    int64_t rows, const std::optional<std::string>& reason,
                    const std::string& trigger, int keep, Snapshot snapshot);
/// A failed refresh (mode 'failed').
void record_failed_history(int64_t id, const std::string& started_at, const std::string& error,
                           const std::string& trigger);
/// Refreshes a crash or restart left unfinished are marked failed.
void mark_interrupted_history();

// ---- event triggers --------------------------------------------------------------------

/// Within ddl_command_end: a view replaced by CREATE OR REPLACE VIEW that a stream table
/// reads (directly or through other views), as (stream table, view).
std::optional<std::pair<std::string, std::string>> stream_table_on_replaced_view();
/// Within ddl_command_end: the stream table whose storage table is `relid` follows a rename.
void follow_rename(Oid relid);
/// Within sql_drop: a dropped relation that is a stream table's storage or defining view,
/// as (stream table, object type, object identity).
struct DroppedPart {
    std::string stream_table, object_type, object_identity;
};
std::optional<DroppedPart> stream_table_part_dropped();

}  // namespace pgt::catalog
