// libpq connections from a backend to other nodes of a Citus cluster (the worker-slot poller
// and slot provisioning). Waits are interruptible (query cancel, statement_timeout,
// termination, postmaster death): libpq runs non-blocking and the backend waits on its latch
// and the socket, so a stuck worker never wedges a backend. Every wait also has a deadline:
// pg_trickle.remote_connect_timeout for a connect, pg_trickle.remote_command_timeout for a
// command, and TCP keepalives and tcp_user_timeout let the kernel notice a node that
// vanished from the network.
//
// Errors are reported as Citus reports them: a PostgreSQL error of the node keeps its
// SQLSTATE, message, DETAIL and HINT; its CONTEXT is the node's own followed by "while
// executing command on host:port". The node's NOTICEs and WARNINGs are re-raised locally at
// their level, with the same CONTEXT line, once the command has returned. With
// pg_trickle.log_remote_commands every command is logged (LOG) with the node.
#pragma once

#include <cstdint>
#include <functional>
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

class Deadline;  // when a connect or a command must be done (connection.cpp)

/// The CONTEXT line that names the node of a remote failure or message, as Citus writes it:
/// "while executing command on host:port".
std::string context_line(const Node& node);

/// A failure talking to a node. what() is the primary message (the node's own for an error
/// the node raised); context() ends with context_line(node). sqlstate() is the node's
/// SQLSTATE for an error the node raised, 08001 when no connection could be made (also
/// within pg_trickle.remote_connect_timeout), 08006 when the connection broke or a command
/// took longer than pg_trickle.remote_command_timeout (the connection is then closed).
class RemoteError : public Error {
  public:
    /// `node_context`: the node's own CONTEXT lines, if any (placed before the node's line).
    RemoteError(int sqlstate, const std::string& message, std::string detail, std::string hint,
                Node node, bool connection_failure, const std::string& node_context = {});
    const Node& node() const { return node_; }
    /// The node could not be reached, the connection broke or a command timed out (as
    /// opposed to an error the node raised for a command).
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

/// One row of a streamed result (Connection::exec_rows), valid only during the callback
/// that receives it.
class RowView {
  public:
    explicit RowView(const pg_result* res) : res_(res) {}
    int columns() const;
    bool is_null(int column) const;
    /// The cell's bytes (empty for NULL), valid during the callback only.
    std::string_view value(int column) const;

  private:
    const pg_result* res_;
};

/// The libpq keywords/values to reach `node` as `user` in database `dbname`, the way Citus
/// connects: host and port from pg_dist_node, then citus.node_conninfo, then the
/// pg_dist_authinfo row of (node, user) (or the wildcard node 0), else libpq's own defaults
/// (.pgpass of the server's OS user); TCP keepalives and tcp_user_timeout unless those
/// options name them (node_conninfo::connection_defaults). Runs catalog look-ups: call
/// inside a transaction.
std::map<std::string, std::string> conninfo_for(const Node& node, const std::string& user,
                                                const std::string& dbname);

/// One connection to one node, closed when destroyed (and on any connection failure, timeout
/// or interrupted command: ok() is false from then on and the cache replaces it).
class Connection {
  public:
    /// Connect (interruptibly, at most pg_trickle.remote_connect_timeout), then set the
    /// session's search_path to pg_catalog, pg_temp (the node's role and database defaults
    /// must not decide what our commands resolve to). Throws RemoteError.
    Connection(Node node, const std::map<std::string, std::string>& conninfo);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    const Node& node() const { return node_; }
    bool ok() const;
    /// Connected and no command running (what a cached connection must be to be reused).
    bool idle() const;

    /// Run one command with text parameters ($1, $2, ...; nullopt = NULL) and wait for its
    /// whole result, interruptibly and at most pg_trickle.remote_command_timeout.
    /// `binary_results`: cells in binary format. Throws RemoteError (the node's error
    /// re-raised with its SQLSTATE, message, DETAIL, HINT and CONTEXT; 08006 on a timeout or
    /// a broken connection, which is then closed). On a query cancel / statement_timeout of
    /// this backend the remote command is cancelled, the connection closed, and the
    /// PostgreSQL error propagates as PgError. The whole result is held in memory: use
    /// exec_rows for results that can be large.
    Result exec(const std::string& sql, const std::vector<std::optional<std::string>>& params = {},
                bool binary_results = false);

    /// Run one command like exec, but hand its rows one at a time to `on_row` as they
    /// arrive (libpq's single-row mode): memory stays bounded by one row whatever the
    /// result's size. The deadline (pg_trickle.remote_command_timeout) counts the time spent
    /// waiting for the node, not the time spent in `on_row`. When `on_row` throws, the
    /// remote command is cancelled, the connection closed, and the exception propagates
    /// unchanged. A node's error after some rows were delivered is thrown as RemoteError
    /// (those rows were delivered: the caller's transaction must not commit them).
    void exec_rows(const std::string& sql, const std::vector<std::optional<std::string>>& params,
                   bool binary_results, const std::function<void(const RowView&)>& on_row);

    /// Run one command for a transaction-abort or subtransaction-abort callback (such as
    /// dropping the slots a failed transaction created): never ereports, never processes
    /// interrupts (CHECK_FOR_INTERRUPTS), never waits longer than `timeout_ms` (at least 1),
    /// is not logged by pg_trickle.log_remote_commands and drops the node's notices. Returns
    /// true when the command succeeded; false when the connection is not idle, the node
    /// raised an error, the connection broke, or the time ran out (the command is then
    /// cancelled and the connection closed). Anywhere else use exec: it is interruptible
    /// and reports errors.
    bool try_exec_during_abort(const std::string& sql,
                               const std::vector<std::optional<std::string>>& params,
                               int timeout_ms) noexcept;

  private:
    /// A NOTICE or WARNING the node sent, kept until the command returns.
    struct Notice {
        std::string severity;  ///< non-localized: NOTICE, WARNING, INFO, LOG, DEBUG
        std::string sqlstate, message, detail, hint, context;
    };

    void connect(const std::map<std::string, std::string>& conninfo);
    /// Log the command (pg_trickle.log_remote_commands) and send it; the connection must be
    /// ok. Throws RemoteError when it cannot be sent.
    void send(const std::string& sql, const std::vector<std::optional<std::string>>& params,
              bool binary_results);
    /// Run `collect` (which waits for the command's results) so that anything but a
    /// RemoteError leaves no command running: it cancels the command and closes first.
    template <typename Collect>
    auto guarded(Collect&& collect) -> decltype(collect());
    /// Send what libpq still buffers, within the deadline.
    void flush(const Deadline& deadline);
    /// The command's next result (null: no more), read within the deadline.
    pg_result* next_result(const Deadline& deadline);
    /// A command that started a COPY: the connection closed, the error.
    RemoteError copy_refused();
    /// Re-raise the node's notices collected during the last command (then forget them).
    void emit_notices();
    /// The RemoteError of a failed command: the node's error, or a broken connection.
    RemoteError error_of(const pg_result* failed);
    /// The connection broke: its error, the connection closed.
    RemoteError broken();
    /// The command ran past its deadline: cancelled, the connection closed, the error.
    RemoteError timed_out(int timeout_ms);
    /// Ask the node to cancel the running command (best effort, never blocks).
    void cancel() noexcept;
    /// Close the connection (ok() is false from now on).
    void close() noexcept;

    /// libpq's notice receiver: keeps the notice (never ereports, never throws).
    static void receive_notice(void* arg, const pg_result* res) noexcept;

    Node node_;
    pg_conn* conn_ = nullptr;
    bool fd_acquired_ = false;     ///< counted with AcquireExternalFD
    std::vector<Notice> notices_;  ///< at most kept_notices, the rest only counted
    int notices_dropped_ = 0;
    bool dropped_warning_ = false;  ///< a dropped notice was a WARNING
};

/// A per-backend cache of connections, keyed by node and user: the scheduler polls the same
/// workers every tick. A connection that failed (closed) is replaced at its next look-up.
Connection& cached_connection(const Node& node, const std::string& user);

/// The cached connection to `node` as `user` if there is one and it is idle; never
/// connects and never reads the catalog (usable while a transaction aborts, with
/// Connection::try_exec_during_abort).
Connection* idle_cached_connection(const Node& node, const std::string& user) noexcept;
/// Drop the cached connection of `node` (all users), e.g. after an error on it.
void forget_connection(const Node& node) noexcept;
/// Close every cached connection.
void forget_all_connections() noexcept;

/// Cancel requests still being delivered (for tests: a cancel to a frozen node waits in a
/// helper thread until the node answers or the kernel gives up).
int cancels_in_flight() noexcept;

}  // namespace pgt::remote
