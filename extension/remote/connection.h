// libpq connections from a backend to other nodes of a Citus cluster (the worker-slot poller
// and slot provisioning). Waits are interruptible (query cancel, statement_timeout,
// termination, postmaster death): libpq runs non-blocking and the backend waits on its latch
// and the socket, so a stuck worker never wedges a backend. Every failure is a RemoteError
// that names the node; a PostgreSQL error from the node keeps its SQLSTATE, DETAIL and HINT.
// With pg_trickle.log_remote_commands every command is logged (LOG) with the node.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "boundary/guard.h"

struct pg_conn;
struct pg_result;

namespace pgt::remote {

/// A node as pg_dist_node names it.
struct Node {
    int32_t nodeid = 0;  ///< pg_dist_node.nodeid (selects pg_dist_authinfo rows)
    std::string host;
    int port = 0;
    std::string label() const { return host + ":" + std::to_string(port); }
};

/// A failure talking to a node. what() ends with "(node host:port)"; sqlstate() is the
/// node's SQLSTATE for an error the node raised, 08001 when no connection could be made,
/// 08006 when the connection broke.
class RemoteError : public Error {
  public:
    RemoteError(int sqlstate, const std::string& message, std::string detail, std::string hint,
                Node node, bool connection_failure);
    const Node& node() const { return node_; }
    /// The node could not be reached or the connection broke (as opposed to an error the
    /// node raised for a command).
    bool connection_failure() const { return connection_failure_; }

  private:
    Node node_;
    bool connection_failure_;
};

/// The result of one command. Cells are raw bytes: text format unless the command asked
/// for binary results.
class Result {
  public:
    explicit Result(pg_result* res);
    ~Result();
    Result(Result&&) noexcept;
    Result& operator=(Result&&) noexcept;
    Result(const Result&) = delete;
    Result& operator=(const Result&) = delete;

    int rows() const;
    int columns() const;
    bool is_null(int row, int column) const;
    /// The cell's bytes (empty for NULL); valid as long as the Result lives.
    std::string_view value(int row, int column) const;
    std::string text(int row, int column) const { return std::string(value(row, column)); }
    /// The libpq result (null for an empty Result).
    const pg_result* get() const { return res_; }

  private:
    pg_result* res_;
};

/// The libpq keywords/values to reach `node` as `user` in database `dbname`, the way Citus
/// connects: host and port from pg_dist_node, then citus.node_conninfo, then the
/// pg_dist_authinfo row of (node, user) (or the wildcard node 0), else libpq's own defaults
/// (.pgpass of the server's OS user). Runs catalog look-ups: call inside a transaction.
std::map<std::string, std::string> conninfo_for(const Node& node, const std::string& user,
                                                const std::string& dbname);

/// One connection to one node, closed when destroyed (and on any connection failure).
class Connection {
  public:
    /// Connect (interruptibly, at most `connect_timeout_s` seconds). Throws RemoteError.
    Connection(Node node, const std::map<std::string, std::string>& conninfo,
               int connect_timeout_s = 10);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    const Node& node() const { return node_; }
    bool ok() const;
    /// Connected and no command running (what a cached connection must be to be reused).
    bool idle() const;

    /// Run one command with text parameters ($1, $2, ...; nullopt = NULL) and wait for its
    /// result, interruptibly. `binary_results`: cells in binary format. Throws RemoteError
    /// (the node's error re-raised with its SQLSTATE, message, DETAIL, HINT and the node);
    /// on a query cancel / timeout of this backend the remote command is cancelled too and
    /// the PostgreSQL error propagates as PgError.
    Result exec(const std::string& sql, const std::vector<std::optional<std::string>>& params = {},
                bool binary_results = false);

  private:
    void connect(const std::map<std::string, std::string>& conninfo, int connect_timeout_s);
    /// Wait for the command sent by exec to finish; its result or a RemoteError.
    Result await_result();
    /// The RemoteError of a failed command: the node's error, or a broken connection.
    RemoteError error_of(const Result& failed);
    /// The connection broke: its error, the connection closed.
    RemoteError broken();
    /// Ask the node to cancel the running command (best effort).
    void cancel() noexcept;
    /// Close the connection (ok() is false from now on).
    void close() noexcept;

    Node node_;
    pg_conn* conn_ = nullptr;
    bool fd_acquired_ = false;  ///< counted with AcquireExternalFD
};

/// A per-backend cache of connections, keyed by node and user: the scheduler polls the same
/// workers every tick. A connection that failed is dropped from the cache.
Connection& cached_connection(const Node& node, const std::string& user);

/// The cached connection to `node` as `user` if there is one and it is idle; never
/// connects and never reads the catalog (usable while a transaction aborts).
Connection* idle_cached_connection(const Node& node, const std::string& user) noexcept;
/// Drop the cached connection of `node` (all users), e.g. after an error on it.
void forget_connection(const Node& node) noexcept;
/// Close every cached connection.
void forget_all_connections() noexcept;

}  // namespace pgt::remote
