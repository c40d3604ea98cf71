// Stream-table lifecycle through the extension's SQL API (create, alter, drop, refresh,
// explain). Every value is bound as a parameter; nothing from the user is pasted into SQL.
// CALLs run outside an explicit transaction block so procedures may control transactions.
// Statements that carry the user's query (create, alter --query, explain) run with the
// user's search_path (UserSearchPath), the others pinned, with the stream table's name
// resolved beforehand as the user's SQL would resolve it (qualify_relation).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "client/connection.h"
#include "client/server_error.h"
#include "core/json.h"

namespace pgt::client {

/// Arguments of pgtrickle.create_stream_table (defaults as in the SQL API).
struct CreateRequest {
    std::string name;
    std::string query;
    std::optional<std::string> schedule;  ///< none: refreshed on demand only
    std::string refresh_mode = "auto";    ///< auto, differential or full
    bool initialize = true;               ///< populate the stream table now
    /// Citus: store it distributed by this column (output_distribution_column); passed only
    /// when set (catalogs before 0.33.0 lack the argument).
    std::optional<std::string> distribution_column;
};

/// CALL pgtrickle.create_stream_table(...), with the user's search_path.
void create_stream_table(Node& node, const CreateRequest& req);

/// Arguments of pgtrickle.alter_stream_table; unset fields stay as they are (NULL).
struct AlterRequest {
    std::string name;
    std::optional<std::string> query;
    std::optional<std::string> schedule;
    std::optional<std::string> refresh_mode;
    std::optional<std::string> status;  ///< active or suspended
    /// True when at least one field would change.
    bool changes_anything() const { return query || schedule || refresh_mode || status; }
};

/// CALL pgtrickle.alter_stream_table(...): with the user's search_path when it changes the
/// query, else pinned.
void alter_stream_table(Node& node, const AlterRequest& req);

/// CALL pgtrickle.drop_stream_table(name, cascade).
void drop_stream_table(Node& node, const std::string& name, bool cascade);

/// CALL pgtrickle.refresh_stream_table(name, full).
void refresh_stream_table(Node& node, const std::string& name, bool full);

/// The result of refreshing one stream table during refresh_all().
struct RefreshResult {
    std::string name;  ///< schema-qualified, quoted as needed
    bool ok = false;
    double seconds = 0;
    std::optional<ServerError> error;  ///< set when the refresh failed with a SQL error
};

/// Refreshes every stream table, upstream ones before the stream tables that read them,
/// each in its own transaction; a failure does not stop the others. on_result is called
/// after each refresh (for progress). A lost connection throws (pqxx::broken_connection).
std::vector<RefreshResult> refresh_all(Node& node, bool full,
                                       const std::function<void(const RefreshResult&)>& on_result);

/// Orders n items so that for every edge (upstream, reader) the upstream item comes
/// first; otherwise the input order is kept. Items on a cycle keep their input order
/// after all others.
std::vector<std::size_t> dependency_order(
    std::size_t n, const std::vector<std::pair<std::size_t, std::size_t>>& edges);

/// SELECT pgtrickle.explain_stream_table(query), with the user's search_path:
/// {"mode","differential","reason","text","tree"} as returned by the server.
json::Value explain_query(Node& node, const std::string& query);

}  // namespace pgt::client
