// Stable names of captured sources (DESIGN.md §5).
//
// stable_name = lower-hex(XXH64(database || '/' || schema || '.' || table, seed 0)), 16 chars,
// over the UTF-8 bytes of the unquoted names as the catalog stores them. Unlike an OID it is
// the same after dump/restore, after a major upgrade and on every node of a Citus cluster.
// It is computed once when a source is first captured and stored; renames keep it.
#pragma once
#include <string>
#include <string_view>

namespace pgt {

/// The 16-character lower-hex stable name of database/schema.table.
std::string stable_name(std::string_view database, std::string_view schema, std::string_view table);

/// True when `s` has the shape of a stable name (16 lower-hex characters).
bool is_stable_name(std::string_view s);

/// The schema of the change buffers and the capture trigger functions.
inline constexpr char kChangeSchema[] = "pgtrickle_changes";

/// Names of the objects that capture one source, derived from its key: a stable name
/// (0.32.0 and later) or a decimal OID (0.31.0 installations).
struct CaptureObjectNames {
    std::string buffer_table;      ///< in schema pgtrickle_changes
    std::string trigger_function;  ///< in schema pgtrickle_changes
    std::string trigger_insert, trigger_update, trigger_delete, trigger_truncate;
    std::string xid_index;  ///< index on the buffer's transaction id
    std::string slot;       ///< logical replication slot and publication (WAL capture)
    /// State copy of a Citus source whose rows a differential delta reads (in
    /// pgtrickle_changes), and its index on the row image.
    std::string state_table, state_image_index;
};
CaptureObjectNames capture_object_names(std::string_view key);

/// The change buffer column that captures source attribute `attnum`: c<attnum> (named by
/// attribute number, so renaming a source column needs no buffer change).
std::string buffer_column_name(int attnum);

/// The source attribute number that buffer column `name` captures (c<attnum>, 1 to 32767),
/// or 0 when `name` is not a capture column (__pgt_xid, __pgt_op, anything else).
int buffer_column_attnum(const char* name);

}  // namespace pgt
