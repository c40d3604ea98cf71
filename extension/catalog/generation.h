// The catalog layer (extension/catalog/): every statement pg_trickle runs on its catalog
// (schema pgtrickle) goes through it, as the extension's owner with search_path pinned to
// pg_catalog, pg_temp (pg::AsExtensionOwner), schema-qualified. Callers get C++ structs.
//
// This file: the installed catalog generation. One pg_trickle.so serves every extension
// version that can be installed or reached by ALTER EXTENSION UPDATE: 0.31.0 names capture
// objects by OID and has no stable-name columns; 0.32.0 and later name them by stable name;
// 0.35.0 adds WAL capture, recorded refresh settings and full-refresh reasons. The rest of the
// layer hides these differences; the checks are public for the code that must refuse a
// feature an older catalog cannot hold.
#pragma once

#include <string>

namespace pgt::catalog {

/// Whether pg_trickle is installed in the current database.
bool extension_installed();

/// Whether pg_trickle is installed, and if so keep it so until the transaction ends (a lock
/// that DROP EXTENSION waits for): the background workers read the catalog under it, so a
/// DROP EXTENSION between their look and their reads cannot make those reads fail.
bool lock_extension();

/// Whether the installed catalog has stable names (pgt_change_tracking.source_stable_name).
bool has_stable_names();

/// Whether the installed catalog records refresh settings (0.35.0:
/// pgt_stream_tables.refresh_settings).
bool has_refresh_settings();

/// The catalog knows WAL capture (0.35.0: pgt_worker_slots with worker_lsn, failing_since).
/// Older catalogs (a node not upgraded yet) capture with triggers only.
bool has_wal_capture();

/// The catalog records why a full refresh was scheduled (0.35.0:
/// pgt_stream_tables.full_refresh_reason).
bool has_full_refresh_reason();

/// The catalog records a stream table's storage placement (0.33.0: pgt_stream_tables.
/// st_placement and output_distribution_column); older ones keep every storage local.
bool has_st_placement();

/// The catalog has pgtrickle.row_image_id (0.35.0): deltas are consolidated by the values'
/// binary images (ivm::RowIdentity::image), else by their equality.
bool has_row_image_id();

/// The settings that change what a query returns, recorded at create and applied to every
/// refresh of the stream table (TimeZone, DateStyle, IntervalStyle, ...).
extern const char* const kResultSettings[];
extern const int kResultSettingCount;

/// The cluster's system identifier as text (as pg_control_system() shows it).
std::string system_identifier();

namespace detail {
/// SQL expression for the key of a captured source (its stable name, or its OID on
/// 0.31.0-style rows) given the alias of a pgt_change_tracking row.
std::string source_key_sql(const std::string& alias);
/// A SET item for an UPDATE of pgt_stream_tables that sets needs_full_refresh: records
/// `reason_sql` as the reason unless one is pending already ("" on older catalogs).
std::string full_refresh_reason_set(const std::string& reason_sql);
}  // namespace detail

}  // namespace pgt::catalog
