// Trigger-based change capture: one change buffer per source table, shared by every stream
// table that reads it, filled by statement-level AFTER triggers with transition tables.
//
// Buffer rows: "__pgt_xid" (xid8 of the writing transaction), "__pgt_op" ('I' inserted row,
// 'D' deleted row, 'T' "recompute" marker: truncate, or a change of the source's hierarchy)
// and one column c<attnum> per source column (named by attribute number, so renaming a
// source column needs no buffer change), of the source column's type and collation.
// Partitions and inheritance children of a source carry the source's triggers and write
// into the source's buffer (see docs/sources.md).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "capture/source_names.h"

extern "C" {
#include "postgres.h"
#include "nodes/parsenodes.h"
}

namespace pgt::capture {

/// Stable name and buffer of a source: from the catalog when captured, else as it would be.
SourceNames resolve(Oid relid);

/// Capture `relid` (plain or partitioned table) if it is not captured yet, and make sure the
/// buffer has a column for every current source column. Returns the stable name.
std::string ensure_source(Oid relid);

/// A source captured by triggers is captured through WAL from now on (wal::prepare_sources
/// made its slot, with the source locked): its triggers and capture function go.
void switch_to_wal(Oid relid);

/// A source captured through WAL is captured by triggers from now on (wal::prepare_sources
/// drained its slot with the source locked, and drops the slot next).
void switch_to_triggers(Oid relid);

/// Whether pg_trickle is creating capture triggers itself right now (the event trigger then
/// knows a CREATE TRIGGER of a capture trigger is not a restore).
bool creating_triggers();

/// Re-sync buffer columns and the trigger function with the source's current columns (after
/// ALTER TABLE on the source). Does not create triggers. `untrusted`: the buffer's rows may
/// have been written under other attribute numbers (a restore re-creating the capture
/// trigger, after which attribute numbers are compacted): its readers recompute once.
void sync_source(Oid relid, bool untrusted = false);

/// After DDL that may have changed inheritance or partitioning (CREATE TABLE ... PARTITION OF
/// / INHERITS, ATTACH / DETACH PARTITION, INHERIT / NO INHERIT): give every member of each
/// captured source's hierarchy the source's capture triggers, take them from tables that
/// left it, and tell readers to recompute when a member with rows joined or left.
void reconcile_all();

/// Every plain or partitioned table an analyzed query reads (through views, subqueries,
/// sublinks and CTEs), each once.
std::vector<Oid> tables_read(Query* query);

/// Why the stream table defined by `view` cannot be maintained differentially from the
/// change buffers, if it reads a table with FROM ONLY that has partitions or inheritance
/// children: the buffer of a table holds its members' rows too, without telling them apart.
std::optional<std::string> only_limitation(Oid view);

/// A capture trigger named `trigger_name` was dropped with its table (DROP TABLE of a
/// partition or child): the source lost that table's rows, so its readers recompute.
void note_dropped_member(const std::string& trigger_name);

/// Remove capture of `relid` when no stream table reads it any more.
void drop_source_if_unused(Oid relid);

/// The stable name of `relid`: the stored one when it is captured, else computed from its
/// current database, schema and table names.
std::string stable_name_of(Oid relid);

}  // namespace pgt::capture
