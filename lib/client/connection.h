// Connections to pg_trickle nodes. The target comes from --dsn, else PGTRICKLE_DSN, else
// libpq's own defaults (PGHOST, PGPORT, PGUSER, PGDATABASE, ~/.pgpass, service files),
// which libpq applies when given an empty connection string.
//
// search_path: the CLI often runs as a superuser in databases whose owner (or any role
// with a say in the database's or role's defaults) chooses the search_path. Every
// connection therefore pins it to `pg_catalog, pg_temp` right after connecting (as pg_dump
// does), so that no unqualified name in the CLI's own SQL can resolve to somebody's planted
// operator, function or type (CVE-2018-1058). The user's own SQL and names (the --query of
// create, alter and explain; stream table and source names) are resolved with the
// search_path the session had before, as psql would: UserSearchPath, statement by statement.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include <pqxx/connection>
#include <pqxx/connection_base>

#include "client/conninfo.h"

namespace pgt::client {

/// Where a connection string came from, for messages. cluster_node: a node of the Citus
/// cluster (pg_dist_node) reached with the coordinator's settings (client/node_connect.h).
enum class DsnOrigin { flag, env, libpq_defaults, cluster_node };

/// "--dsn", "PGTRICKLE_DSN", "libpq defaults" or "pg_dist_node, with the coordinator's
/// connection settings".
const char* origin_name(DsnOrigin o);

/// A libpq connection string and its origin.
struct ConnectionSpec {
    std::string conninfo;  ///< may be empty: libpq defaults
    DsnOrigin origin = DsnOrigin::libpq_defaults;
};

/// Picks the connection string: the --dsn value if given, else PGTRICKLE_DSN if set and
/// not empty (env_dsn is its value, or nullptr), else the empty string for libpq defaults.
ConnectionSpec resolve_connection(const std::optional<std::string>& flag_dsn, const char* env_dsn);

/// Thrown when the connection string itself is malformed; what() says where it came from.
class InvalidDsn : public std::runtime_error {
  public:
    InvalidDsn(const std::string& msg, DsnOrigin origin)
        : std::runtime_error(msg), origin_(origin) {}
    DsnOrigin origin() const { return origin_; }

  private:
    DsnOrigin origin_;
};

/// Thrown when a node cannot be reached (refused, unknown host, authentication, missing
/// database). what() names the node and libpq's reason; hint() says what to check.
class ConnectionError : public std::runtime_error {
  public:
    ConnectionError(const std::string& msg, std::string node, std::string hint)
        : std::runtime_error(msg), node_(std::move(node)), hint_(std::move(hint)) {}
    const std::string& node() const { return node_; }
    const std::string& hint() const { return hint_; }

  private:
    std::string node_;
    std::string hint_;
};

/// The node a connection string would reach, without connecting (see conninfo_target);
/// throws InvalidDsn when the string is malformed.
std::string describe_target(const ConnectionSpec& spec);

/// Hooks through which the client layer reports to the user without printing itself.
struct Diagnostics {
    /// A NOTICE or WARNING sent by the server (text as libpq formats it).
    std::function<void(const std::string&)> notice;
    /// A SQL statement about to run (for -v).
    std::function<void(const std::string&)> trace;
};

/// The search_path of every connection the CLI opens, for its own statements.
inline constexpr const char* pinned_search_path = "pg_catalog, pg_temp";

/// Pins the session's search_path to pinned_search_path (through libpqxx's session
/// variables, so that a connection libpqxx re-establishes is pinned again before any other
/// statement) and returns the search_path the session had before: the database's or role's
/// default, PGOPTIONS, or the server's. Call it right after connecting, outside any
/// transaction.
std::string pin_search_path(pqxx::connection_base& conn);

/// An open connection to one node, with its display name ("host:port"). Its search_path is
/// pinned (pin_search_path) from the start.
class Node {
  public:
    /// Connects and pins the search_path; throws InvalidDsn or ConnectionError.
    static std::unique_ptr<Node> connect(const ConnectionSpec& spec, Diagnostics diag);
    ~Node();
    Node(const Node&) = delete;
    Node& operator=(const Node&) = delete;

    /// "host:port" of the server this connection reached.
    const std::string& name() const { return name_; }
    /// The libpqxx connection.
    pqxx::connection& conn() { return *conn_; }
    /// Reports a statement about to run to the trace hook, if any.
    void trace(const std::string& sql) const;
    /// The search_path the session had before it was pinned (the user's, as psql has it).
    const std::string& user_search_path() const { return user_search_path_; }

  private:
    class NoticeForwarder;
    Node(std::string name, std::unique_ptr<pqxx::connection> conn, Diagnostics diag);

    std::string name_;
    std::string user_search_path_;
    std::unique_ptr<pqxx::connection> conn_;
    std::unique_ptr<NoticeForwarder> notices_;  // declared after conn_: destroyed first
    Diagnostics diag_;
};

/// While alive, the session's search_path is the user's (Node::user_search_path()) instead
/// of the pinned one: for the statements that carry the user's own SQL or names, which the
/// server must resolve as psql would, and for nothing else. Needs no transaction open on the
/// connection. The destructor pins the search_path again; when that fails the connection is
/// closed, so that no later statement runs with the user's search_path.
class UserSearchPath {
  public:
    explicit UserSearchPath(Node& node);
    ~UserSearchPath();
    UserSearchPath(const UserSearchPath&) = delete;
    UserSearchPath& operator=(const UserSearchPath&) = delete;

  private:
    Node& node_;
};

}  // namespace pgt::client
