// Reading pg_trickle's catalog: whether the extension is installed, and query results as
// JSON objects typed by their column types (so numbers stay numbers in --format json).
#pragma once

#include <optional>
#include <stdexcept>
#include <string>

#include <pqxx/result>

#include "client/connection.h"
#include "core/json.h"

namespace pgt::client {

/// Thrown when the pg_trickle extension is not installed in the connected database.
class ExtensionMissing : public std::runtime_error {
  public:
    explicit ExtensionMissing(const std::string& database)
        : std::runtime_error("the pg_trickle extension is not installed in database \"" + database +
                             "\""),
          database_(database) {}
    const std::string& database() const { return database_; }

  private:
    std::string database_;
};

/// Thrown when a stream table named on the command line does not exist.
class NotFound : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

/// Facts about the extension in the connected database.
struct ExtensionInfo {
    std::string database;                  ///< current_database()
    std::optional<std::string> installed;  ///< pg_extension.extversion
    std::optional<std::string> available;  ///< default_version of the installed files
};

/// Reads ExtensionInfo.
ExtensionInfo read_extension_info(Node& node);

/// Throws ExtensionMissing unless pg_trickle is installed in the connected database.
void require_extension(Node& node);

/// True when the citus extension is installed in the connected database.
bool has_citus(Node& node);

/// The relation `name` names as the user's SQL would name it (quoted parts kept, an
/// unqualified name looked up with the user's search_path): its schema-qualified, quoted
/// name ("public"."orders"), or nullopt when no such relation exists. Needs no transaction
/// open on the connection. A name that is not a valid SQL name fails with the server's error.
std::optional<std::string> qualify_relation(Node& node, const std::string& name);

/// Like qualify_relation, but returns the relation's OID (as text).
std::optional<std::string> resolve_relation(Node& node, const std::string& name);

/// One row as a JSON object keyed by column name: booleans, integers, floats and
/// numerics become JSON booleans and numbers, json/jsonb are embedded, NULL is null,
/// everything else is the column's text.
json::Value row_to_json(const pqxx::row& row);

/// All rows of a result as a JSON array of row_to_json objects.
json::Value rows_to_json(const pqxx::result& result);

}  // namespace pgt::client
