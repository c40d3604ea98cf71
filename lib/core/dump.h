// `pgtrickle dump`: the SQL script that recreates stream tables with their options.
// Pure: the caller reads the definitions and puts them in dependency order.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace pgt::dump {

/// One stream table as pgtrickle.create_stream_table would be called to recreate it.
struct StreamTableDef {
    std::string schema;
    std::string name;
    std::string query;                    ///< the defining query as the user gave it
    std::optional<std::string> schedule;  ///< none: refreshed on demand only
    std::string refresh_mode = "auto";
    std::string cdc_mode = "auto";
    std::optional<std::string> output_distribution_column;
    /// Where its storage is (st_placement: local, reference or distributed); nullopt from
    /// catalogs that do not record it. Restored as dumped: the script turns the automatic
    /// choice off, a distributed one gets its output_distribution_column, a reference one
    /// create_reference_table after its create.
    std::optional<std::string> placement;
    std::string status = "active";        ///< "suspended" is restored by an alter after the create
    std::vector<std::string> depends_on;  ///< stream tables it reads, as schema.name in SQL
    /// The settings its query runs under (TimeZone, DateStyle, ...), name -> value: set
    /// with SET LOCAL before its create so that the restored one records the same.
    std::vector<std::pair<std::string, std::string>> settings;
};

/// Where a dump came from, for its header comment.
struct Origin {
    std::string database;
    std::string server_version;     ///< PostgreSQL's server_version
    std::string extension_version;  ///< pg_trickle's extversion
    std::string tool_version;       ///< pgtrickle's version
};

/// The script: a header comment, then inside BEGIN/COMMIT (one per stream table when one of
/// them is stored on Citus workers: a create there writes on them) a CREATE SCHEMA IF NOT EXISTS
/// for every schema other than public, and per stream table (in the given order) one
/// CALL pgtrickle.create_stream_table with named arguments and, when it is suspended,
/// a CALL pgtrickle.alter_stream_table(status => 'suspended'). Names are quoted
/// identifiers inside literals; all text is quoted with quote_literal semantics.
std::string render_sql(const std::vector<StreamTableDef>& defs, const Origin& origin);

}  // namespace pgt::dump
