// Reading what `pgtrickle dump` needs: every stream table's definition and options, the
// stream tables each one reads, and where the dump comes from.
#pragma once

#include <vector>

#include "client/connection.h"
#include "core/dump.h"

namespace pgt::client {

/// The stream tables of the connected database and the origin for the dump's header.
struct DumpSource {
    dump::Origin origin;
    /// In dependency order: each stream table after the stream tables it reads; otherwise
    /// by schema and name.
    std::vector<dump::StreamTableDef> stream_tables;
};

/// Reads the definitions in one repeatable-read, read-only transaction (a consistent
/// snapshot). Throws ExtensionMissing when pg_trickle is not installed.
DumpSource read_dump_source(Node& node, const std::string& tool_version);

}  // namespace pgt::client
