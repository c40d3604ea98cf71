// libpq connections to other nodes (connection.h). libpq runs non-blocking; every wait is a
// WaitLatchOrSocket on the backend's latch and the connection's socket inside pg_call, so a
// query cancel, statement_timeout or termination interrupts it as a PgError, and has a
// deadline. libpq itself never ereports and is called outside the guards; so is the notice
// receiver, which only keeps the node's notices for emit_notices.
#include "remote/connection.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <tuple>
#include <utility>

#include "boundary/pg.h"
#include "core/node_conninfo.h"
#include "settings.h"

extern "C" {
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace_d.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "postmaster/postmaster.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/errcodes.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/wait_event.h"
}

#include <libpq-fe.h>

namespace pgt::remote {

using Clock = std::chrono::steady_clock;

/// When a connect or a command must be done: `timeout_ms` from now, or never when it is 0.
class Deadline {
  public:
    explicit Deadline(int timeout_ms)
        : timeout_ms_(std::max(timeout_ms, 0)),
          at_(Clock::now() + std::chrono::milliseconds(timeout_ms_)) {}
    int timeout_ms() const { return timeout_ms_; }
    bool expired() const { return timeout_ms_ > 0 && Clock::now() >= at_; }
    /// Milliseconds left (rounded up, at least 0), or -1 without a limit.
    long remaining_ms() const {
        if (timeout_ms_ == 0) {
            return -1;
        }
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(at_ - Clock::now());
        return std::max<long>(0, static_cast<long>(left.count()));
    }
    /// Move the deadline later by `d` (time spent on something else than the node).
    void extend(Clock::duration d) { at_ += d; }

  private:
    int timeout_ms_;
    Clock::time_point at_;
};

namespace {

constexpr const char* application_name = "pg_trickle";

int sqlstate_of(const char* code) {
    return MAKE_SQLSTATE(code[0], code[1], code[2], code[3], code[4]);
}

std::string trimmed(const char* s) {
    std::string out = s ? s : "";
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ' || out.back() == '\t')) {
        out.pop_back();
    }
    return out;
}

/// libpq's error text split into its first line (the message) and the rest (the detail).
std::pair<std::string, std::string> split_libpq_message(const char* text) {
    std::string all = trimmed(text);
    // A message the node sent before closing comes with its severity ("FATAL:  ...").
    for (const char* severity : {"FATAL:  ", "ERROR:  "}) {
        if (all.rfind(severity, 0) == 0) {
            all.erase(0, std::strlen(severity));
        }
    }
    if (all.empty()) {
        all = "unknown libpq error";
    }
    const auto nl = all.find('\n');
    if (nl == std::string::npos) {
        return {all, {}};
    }
    std::string rest = all.substr(nl + 1);
    const auto start = rest.find_first_not_of(" \t");
    return {all.substr(0, nl), start == std::string::npos ? std::string() : rest.substr(start)};
}

RemoteError connection_error(int sqlstate, const std::string& what, const char* libpq_message,
                             const Node& node) {
    auto [message, detail] = split_libpq_message(libpq_message);
    return RemoteError(sqlstate, what + ": " + message, std::move(detail), {}, node, true);
}

/// Notices kept per command; more are only counted (a function raising a NOTICE per row
/// must not fill the coordinator's memory).
constexpr size_t kept_notices = 100;

/// Cancel requests being sent by helper threads (cancel_in_background); at most
/// max_cancels_in_flight at a time, further ones are skipped (best effort).
std::atomic<int> g_cancels_in_flight{0};
constexpr int max_cancels_in_flight = 8;

/// Send a cancel request for the command running on `conn`, without waiting for it.
/// PQcancel blocks until the node's postmaster has read the request and closed its
/// connection, which a frozen node never does; so it runs in a detached helper thread, with
/// every signal blocked (PostgreSQL's signal handlers run in the backend's own thread), that
/// touches nothing but its own PGcancel. The connection itself is closed by the caller.
void cancel_in_background(pg_conn* conn) noexcept {
    PGcancel* request = PQgetCancel(conn);
    if (request == nullptr) {
        return;
    }
    if (g_cancels_in_flight.fetch_add(1) >= max_cancels_in_flight) {
        g_cancels_in_flight.fetch_sub(1);
        PQfreeCancel(request);
        return;
    }
    sigset_t all, previous;
    sigfillset(&all);
    // The new thread inherits this mask; the backend's own mask is restored right after.
    const bool masked = pthread_sigmask(SIG_SETMASK, &all, &previous) == 0;
    try {
        std::thread([request]() noexcept {
            char errbuf[256];
            (void)PQcancel(request, errbuf, sizeof errbuf);
            PQfreeCancel(request);
            g_cancels_in_flight.fetch_sub(1);
        }).detach();
    } catch (...) {
        // No thread (resources): no cancel; the caller closes the connection anyway.
        PQfreeCancel(request);
        g_cancels_in_flight.fetch_sub(1);
    }
    if (masked) {
        pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    }
}

/// The elevel to re-raise a node's notice at (never ERROR: a notice does not abort).
int elevel_of(const std::string& severity) {
    if (severity == "WARNING") {
        return WARNING;
    }
    if (severity == "INFO") {
        return INFO;
    }
    if (severity == "LOG") {
        return LOG;
    }
    if (severity == "DEBUG") {
        return DEBUG1;
    }
    return NOTICE;
}

/// Wait for `events` on `sock` (and the latch), at most `timeout_ms` (-1: no limit); the
/// latch is reset and interrupts are processed, so a cancel raises a PgError here.
int wait_for(int events, pgsocket sock, long timeout_ms) {
    int wake = events | WL_LATCH_SET | WL_EXIT_ON_PM_DEATH;
    if (timeout_ms >= 0) {
        wake |= WL_TIMEOUT;
    }
    return pg_call([&]() noexcept {
        const int rc = WaitLatchOrSocket(MyLatch, wake, sock, timeout_ms, PG_WAIT_EXTENSION);
        if (rc & WL_LATCH_SET) {
            ResetLatch(MyLatch);
        }
        CHECK_FOR_INTERRUPTS();
        return rc;
    });
}

node_conninfo::Options parse_conninfo(const std::string& text, const char* what) {
    node_conninfo::Options out;
    if (text.empty()) {
        return out;
    }
    char* err = nullptr;
    PQconninfoOption* options = PQconninfoParse(text.c_str(), &err);
    if (options == nullptr) {
        const std::string detail = trimmed(err ? err : "out of memory");
        PQfreemem(err);
        throw Error(ERRCODE_INVALID_PARAMETER_VALUE, std::string("could not parse ") + what,
                    detail);
    }
    for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
        if (o->val != nullptr && o->val[0] != '\0') {
            out[o->keyword] = o->val;
        }
    }
    PQconninfoFree(options);
    return out;
}

/// A setting's value, or "" when it does not exist (a Citus setting without Citus loaded).
std::string config_option(const char* name) {
    const char* value = pg_call([&]() noexcept { return GetConfigOption(name, true, false); });
    return value ? value : "";
}

/// One row of pg_dist_authinfo, palloc'd by the catalog scan.
struct AuthinfoRow {
    int32 nodeid;
    char* authinfo;
};

/// The pg_dist_authinfo rows of `role` for nodes `node_id` and the wildcard (empty when
/// Citus's table does not exist). The table is read directly, as Citus reads it: it is
/// revoked from PUBLIC, and connecting must not require the caller to read it.
std::vector<std::pair<int32_t, std::string>> authinfo_rows(const std::string& role,
                                                           int32_t node_id) {
    const Oid relid = pg_call(
        []() noexcept { return get_relname_relid("pg_dist_authinfo", PG_CATALOG_NAMESPACE); });
    std::vector<std::pair<int32_t, std::string>> rows;
    if (relid == InvalidOid) {
        return rows;
    }
    const char* role_c = role.c_str();
    const List* found = pg_call([&]() noexcept {
        const AttrNumber nodeid_att = get_attnum(relid, "nodeid");
        const AttrNumber role_att = get_attnum(relid, "rolename");
        const AttrNumber authinfo_att = get_attnum(relid, "authinfo");
        if (nodeid_att == InvalidAttrNumber || role_att == InvalidAttrNumber ||
            authinfo_att == InvalidAttrNumber) {
            elog(ERROR, "pg_dist_authinfo lacks nodeid, rolename or authinfo");
        }
        List* list = NIL;
        Relation rel = table_open(relid, AccessShareLock);
        SysScanDesc scan = systable_beginscan(rel, InvalidOid, false, nullptr, 0, nullptr);
        HeapTuple tup;
        while (HeapTupleIsValid(tup = systable_getnext(scan))) {
            bool null_node = false, null_role = false, null_info = false;
            const Datum node = heap_getattr(tup, nodeid_att, RelationGetDescr(rel), &null_node);
            const Datum name = heap_getattr(tup, role_att, RelationGetDescr(rel), &null_role);
            const Datum info = heap_getattr(tup, authinfo_att, RelationGetDescr(rel), &null_info);
            if (null_node || null_role || null_info ||
                std::strcmp(NameStr(*DatumGetName(name)), role_c) != 0) {
                continue;
            }
            const int32 id = DatumGetInt32(node);
            if (id != node_id && id != node_conninfo::wildcard_node_id) {
                continue;
            }
            auto* row = static_cast<AuthinfoRow*>(palloc(sizeof(AuthinfoRow)));
            row->nodeid = id;
            row->authinfo = TextDatumGetCString(info);
            list = lappend(list, row);
        }
        systable_endscan(scan);
        table_close(rel, AccessShareLock);
        return list;
    });
    if (found != NIL) {
        for (int i = 0; i < found->length; ++i) {
            const auto* row = static_cast<const AuthinfoRow*>(found->elements[i].ptr_value);
            rows.emplace_back(row->nodeid, row->authinfo);
        }
    }
    return rows;
}

/// Connections this backend keeps open, by host, port and user (the database is ours).
using CacheKey = std::tuple<std::string, int, std::string>;
std::map<CacheKey, std::unique_ptr<Connection>>& cache() {
    // Never destroyed: the process exit closes the sockets.
    static auto* connections = new std::map<CacheKey, std::unique_ptr<Connection>>();
    return *connections;
}

}  // namespace

// ---- RemoteError ------------------------------------------------------------------------

std::string context_line(const Node& node) {
    return "while executing command on " + node.label();
}

namespace {
std::string remote_context(const std::string& node_context, const Node& node) {
    std::string own = trimmed(node_context.c_str());
    return own.empty() ? context_line(node) : own + "\n" + context_line(node);
}
}  // namespace

RemoteError::RemoteError(int sqlstate, const std::string& message, std::string detail,
                         std::string hint, Node node, bool connection_failure,
                         const std::string& node_context)
    : Error(sqlstate, message, std::move(detail), std::move(hint),
            remote_context(node_context, node)),
      node_(std::move(node)),
      connection_failure_(connection_failure) {}

// ---- Result -----------------------------------------------------------------------------

Result::Result(pg_result* res) : res_(res) {}

Result::~Result() {
    PQclear(res_);
}

Result::Result(Result&& other) noexcept : res_(std::exchange(other.res_, nullptr)) {}

Result& Result::operator=(Result&& other) noexcept {
    if (this != &other) {
        PQclear(res_);
        res_ = std::exchange(other.res_, nullptr);
    }
    return *this;
}

int Result::rows() const {
    return res_ ? PQntuples(res_) : 0;
}

int Result::columns() const {
    return res_ ? PQnfields(res_) : 0;
}

bool Result::is_null(int row, int column) const {
    return PQgetisnull(res_, row, column) != 0;
}

std::string_view Result::value(int row, int column) const {
    if (is_null(row, column)) {
        return {};
    }
    return {PQgetvalue(res_, row, column), static_cast<size_t>(PQgetlength(res_, row, column))};
}

// ---- RowView ----------------------------------------------------------------------------

int RowView::columns() const {
    return PQnfields(res_);
}

bool RowView::is_null(int column) const {
    return PQgetisnull(res_, 0, column) != 0;
}

std::string_view RowView::value(int column) const {
    if (is_null(column)) {
        return {};
    }
    return {PQgetvalue(res_, 0, column), static_cast<size_t>(PQgetlength(res_, 0, column))};
}

// ---- conninfo ---------------------------------------------------------------------------

std::map<std::string, std::string> conninfo_for(const Node& node, const std::string& user,
                                                const std::string& dbname) {
    node_conninfo::Target target;
    target.host = node.host;
    target.port = node.port;
    target.dbname = dbname;
    target.user = user;
    target.client_encoding = pg_call([]() noexcept { return GetDatabaseEncodingName(); });
    target.application_name = application_name;

    const node_conninfo::Options cluster =
        parse_conninfo(config_option("citus.node_conninfo"), "citus.node_conninfo");

    // citus.local_hostname defaults to "localhost" (Citus's own default when it is absent).
    std::string local_hostname = config_option("citus.local_hostname");
    if (local_hostname.empty()) {
        local_hostname = "localhost";
    }
    const int local_port = PostPortNumber;
    const int32_t auth_node = node_conninfo::authinfo_node_id(
        node.nodeid, node_conninfo::is_loopback(node.host, node.port, local_hostname, local_port));
    const std::optional<std::string> authinfo =
        node_conninfo::pick_authinfo(authinfo_rows(user, auth_node), auth_node);
    const node_conninfo::Options auth = authinfo
                                            ? parse_conninfo(*authinfo, "pg_dist_authinfo.authinfo")
                                            : node_conninfo::Options{};
    return node_conninfo::merge(target, cluster, auth, node_conninfo::connection_defaults());
}

// ---- Connection -------------------------------------------------------------------------

Connection::Connection(Node node, const std::map<std::string, std::string>& conninfo)
    : node_(std::move(node)) {
    // Counted against max_files_per_process like every file the backend opens.
    if (!pg_call([]() noexcept { return AcquireExternalFD(); })) {
        throw RemoteError(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
                          "could not connect to node",
                          "There are too many open files on the local server.", {}, node_, true);
    }
    fd_acquired_ = true;
    try {
        connect(conninfo);
        // Our commands qualify what they name; whatever they leave unqualified must not
        // resolve through the node's role or database defaults.
        (void)exec("SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false)");
    } catch (...) {
        close();
        throw;
    }
}

void Connection::connect(const std::map<std::string, std::string>& conninfo) {
    std::vector<const char*> keywords, values;
    for (const auto& [k, v] : conninfo) {
        keywords.push_back(k.c_str());
        values.push_back(v.c_str());
    }
    keywords.push_back(nullptr);
    values.push_back(nullptr);
    const Deadline deadline(settings::remote_connect_timeout);
    conn_ = PQconnectStartParams(keywords.data(), values.data(), 0);
    if (conn_ == nullptr) {
        throw RemoteError(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
                          "could not connect to node: out of memory", {}, {}, node_, true);
    }
    PQsetNoticeReceiver(conn_, receive_notice, this);
    // After PQconnectStart the first poll waits until the socket is writable.
    PostgresPollingStatusType status =
        PQstatus(conn_) == CONNECTION_BAD ? PGRES_POLLING_FAILED : PGRES_POLLING_WRITING;
    while (status != PGRES_POLLING_OK) {
        if (status == PGRES_POLLING_FAILED) {
            throw connection_error(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
                                   "could not connect to node", PQerrorMessage(conn_), node_);
        }
        if (deadline.expired()) {
            throw RemoteError(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
                              "could not connect to node: timeout expired after " +
                                  std::to_string(deadline.timeout_ms()) + " ms",
                              "The node did not complete the connection within "
                              "pg_trickle.remote_connect_timeout.",
                              "Check that the node is up and reachable, or raise "
                              "pg_trickle.remote_connect_timeout.",
                              node_, true);
        }
        const int events =
            status == PGRES_POLLING_READING ? WL_SOCKET_READABLE : WL_SOCKET_WRITEABLE;
        if (PQsocket(conn_) == PGINVALID_SOCKET) {
            throw connection_error(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
                                   "could not connect to node", PQerrorMessage(conn_), node_);
        }
        const int rc = wait_for(events, PQsocket(conn_), deadline.remaining_ms());
        if (rc & (WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE)) {
            status = PQconnectPoll(conn_);
        }
    }
    if (PQsetnonblocking(conn_, 1) != 0) {
        throw connection_error(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
                               "could not connect to node", PQerrorMessage(conn_), node_);
    }
}

Connection::~Connection() {
    close();
}

void Connection::close() noexcept {
    if (conn_ != nullptr) {
        PQfinish(conn_);
        conn_ = nullptr;
    }
    if (fd_acquired_) {
        // Cannot fail (a counter); called directly since a destructor must not throw.
        ReleaseExternalFD();
        fd_acquired_ = false;
    }
}

void Connection::cancel() noexcept {
    if (conn_ == nullptr || PQtransactionStatus(conn_) != PQTRANS_ACTIVE) {
        return;
    }
    // Best effort: a new connection to the node carries the cancel request; its own
    // failure changes nothing for the caller, and the caller never waits for it.
    cancel_in_background(conn_);
}

bool Connection::ok() const {
    return conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK;
}

bool Connection::idle() const {
    return ok() && PQtransactionStatus(conn_) != PQTRANS_ACTIVE &&
           PQtransactionStatus(conn_) != PQTRANS_UNKNOWN;
}

RemoteError Connection::broken() {
    RemoteError e = connection_error(ERRCODE_CONNECTION_FAILURE, "connection to node failed",
                                     conn_ ? PQerrorMessage(conn_) : "connection closed", node_);
    notices_.clear();
    close();
    return e;
}

RemoteError Connection::timed_out(int timeout_ms) {
    notices_.clear();
    cancel();
    close();
    return RemoteError(ERRCODE_CONNECTION_FAILURE,
                       "remote command timed out after " + std::to_string(timeout_ms) + " ms",
                       "The node did not complete the command within "
                       "pg_trickle.remote_command_timeout; the command was cancelled and the "
                       "connection closed.",
                       "Check that the node is up and not overloaded, or raise "
                       "pg_trickle.remote_command_timeout.",
                       node_, true);
}

void Connection::receive_notice(void* arg, const pg_result* res) noexcept {
    auto* self = static_cast<Connection*>(arg);
    const auto field = [res](int which) {
        const char* s = PQresultErrorField(res, which);
        return std::string(s ? s : "");
    };
    try {
        std::string severity = field(PG_DIAG_SEVERITY_NONLOCALIZED);
        if (self->notices_.size() >= kept_notices) {
            ++self->notices_dropped_;
            self->dropped_warning_ = self->dropped_warning_ || severity == "WARNING";
            return;
        }
        self->notices_.push_back(Notice{std::move(severity), field(PG_DIAG_SQLSTATE),
                                        trimmed(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)),
                                        field(PG_DIAG_MESSAGE_DETAIL), field(PG_DIAG_MESSAGE_HINT),
                                        field(PG_DIAG_CONTEXT)});
    } catch (...) {
        ++self->notices_dropped_;  // out of memory: counted, not kept
    }
}

void Connection::emit_notices() {
    if (notices_.empty() && notices_dropped_ == 0) {
        return;
    }
    const std::vector<Notice> notices = std::exchange(notices_, {});
    const int dropped = std::exchange(notices_dropped_, 0);
    const bool dropped_warning = std::exchange(dropped_warning_, false);
    const std::string where = context_line(node_);
    for (const Notice& n : notices) {
        const int level = elevel_of(n.severity);
        const int code = n.sqlstate.size() == 5 ? sqlstate_of(n.sqlstate.c_str())
                         : level == WARNING     ? ERRCODE_WARNING
                                                : ERRCODE_SUCCESSFUL_COMPLETION;
        const std::string context = remote_context(n.context, node_);
        pg_call([&]() noexcept {
            ereport(level, (errcode(code), errmsg_internal("%s", n.message.c_str()),
                            n.detail.empty() ? 0 : errdetail_internal("%s", n.detail.c_str()),
                            n.hint.empty() ? 0 : errhint("%s", n.hint.c_str()),
                            errcontext_msg("%s", context.c_str())));
        });
    }
    if (dropped > 0) {
        const int level = dropped_warning ? WARNING : NOTICE;
        pg_call([&]() noexcept {
            ereport(level, (errmsg("%d more messages from the node were not shown", dropped),
                            errcontext_msg("%s", where.c_str())));
        });
    }
}

void Connection::send(const std::string& sql, const std::vector<std::optional<std::string>>& params,
                      bool binary_results) {
    if (!ok()) {
        throw broken();
    }
    if (settings::log_remote_commands) {
        const std::string line = "pg_trickle: issuing " + sql + " on node " + node_.label();
        const char* text = line.c_str();
        pg_call([&]() noexcept { ereport(LOG, (errmsg_internal("%s", text))); });
    }
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const auto& p : params) {
        values.push_back(p ? p->c_str() : nullptr);
    }
    notices_.clear();  // left over from an idle time: not this command's
    notices_dropped_ = 0;
    dropped_warning_ = false;
    if (PQsendQueryParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                          values.data(), nullptr, nullptr, binary_results ? 1 : 0) == 0) {
        throw broken();
    }
}

template <typename Collect>
auto Connection::guarded(Collect&& collect) -> decltype(collect()) {
    try {
        return collect();
    } catch (const RemoteError&) {
        throw;  // the connection was closed already, or is fine (an error of the node)
    } catch (...) {
        // Interrupted (query cancel, statement_timeout) or failed here: the command must
        // not run on unattended, and the connection's state is unknown.
        notices_.clear();
        cancel();
        close();
        throw;
    }
}

namespace {

/// The wait of one command for its node: the socket's readiness within the deadline.
/// Returns the WL_* events that happened.
int wait_command(pg_conn* conn, int events, const Deadline& deadline) {
    return wait_for(events, PQsocket(conn), deadline.remaining_ms());
}

bool is_error_status(ExecStatusType st) {
    return st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR;
}

bool is_copy_status(ExecStatusType st) {
    return st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH;
}

}  // namespace

Result Connection::exec(const std::string& sql,
                        const std::vector<std::optional<std::string>>& params,
                        bool binary_results) {
    Deadline deadline(settings::remote_command_timeout);
    send(sql, params, binary_results);
    Result kept = guarded([&] {
        flush(deadline);
        // Collect the results as PQexec does: the last one, or the first error.
        Result last(nullptr);
        bool failed = false;
        while (PGresult* res = next_result(deadline)) {
            const ExecStatusType st = PQresultStatus(res);
            if (is_copy_status(st)) {
                PQclear(res);
                throw copy_refused();
            }
            if (failed) {
                PQclear(res);
                continue;
            }
            last = Result(res);
            failed = is_error_status(st);
        }
        if (failed) {
            RemoteError e = error_of(last.get());
            emit_notices();
            throw e;
        }
        if (!ok()) {
            throw broken();
        }
        return last;
    });
    emit_notices();
    return kept;
}

void Connection::exec_rows(const std::string& sql,
                           const std::vector<std::optional<std::string>>& params,
                           bool binary_results, const std::function<void(const RowView&)>& on_row) {
    Deadline deadline(settings::remote_command_timeout);
    send(sql, params, binary_results);
    if (PQsetSingleRowMode(conn_) == 0) {
        // Only refused right after a failed send, which threw already.
        cancel();
        throw broken();
    }
    guarded([&] {
        flush(deadline);
        Result failure(nullptr);
        while (PGresult* res = next_result(deadline)) {
            Result owned(res);
            const ExecStatusType st = PQresultStatus(res);
            if (st == PGRES_SINGLE_TUPLE) {
                const auto started = Clock::now();
                try {
                    on_row(RowView(res));
                } catch (...) {
                    // The caller's exception, unchanged, once the command stopped.
                    notices_.clear();
                    cancel();
                    close();
                    throw;
                }
                deadline.extend(Clock::now() - started);
            } else if (is_copy_status(st)) {
                throw copy_refused();
            } else if (is_error_status(st) && failure.get() == nullptr) {
                failure = std::move(owned);
            }
        }
        if (failure.get() != nullptr) {
            RemoteError e = error_of(failure.get());
            emit_notices();
            throw e;
        }
        if (!ok()) {
            throw broken();
        }
    });
    emit_notices();
}

void Connection::flush(const Deadline& deadline) {
    // Send everything (non-blocking: the socket may take it in pieces).
    for (;;) {
        const int flushed = PQflush(conn_);
        if (flushed == 0) {
            return;
        }
        if (flushed < 0 || PQsocket(conn_) == PGINVALID_SOCKET) {
            throw broken();
        }
        if (deadline.expired()) {
            throw timed_out(deadline.timeout_ms());
        }
        const int rc = wait_command(conn_, WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE, deadline);
        if ((rc & WL_SOCKET_READABLE) && PQconsumeInput(conn_) == 0) {
            throw broken();
        }
    }
}

pg_result* Connection::next_result(const Deadline& deadline) {
    // Read only while libpq has no complete result: in single-row mode the input buffer
    // then holds at most about one row.
    while (PQisBusy(conn_) != 0) {
        if (PQsocket(conn_) == PGINVALID_SOCKET) {
            throw broken();
        }
        if (deadline.expired()) {
            throw timed_out(deadline.timeout_ms());
        }
        const int rc = wait_command(conn_, WL_SOCKET_READABLE, deadline);
        if ((rc & WL_SOCKET_READABLE) && PQconsumeInput(conn_) == 0) {
            throw broken();
        }
    }
    return PQgetResult(conn_);
}

RemoteError Connection::copy_refused() {
    RemoteError e(ERRCODE_FEATURE_NOT_SUPPORTED, "COPY is not supported on node connections", {},
                  {}, node_, false);
    notices_.clear();
    close();
    return e;
}

RemoteError Connection::error_of(const pg_result* res) {
    const char* code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (code == nullptr || std::strlen(code) != 5 || !ok()) {
        // Raised by libpq itself (no SQLSTATE): the connection is lost.
        RemoteError e = connection_error(ERRCODE_CONNECTION_FAILURE, "connection to node failed",
                                         PQresultErrorMessage(res), node_);
        close();
        return e;
    }
    const auto field = [res](int which) {
        const char* s = PQresultErrorField(res, which);
        return std::string(s ? s : "");
    };
    return RemoteError(sqlstate_of(code), field(PG_DIAG_MESSAGE_PRIMARY),
                       field(PG_DIAG_MESSAGE_DETAIL), field(PG_DIAG_MESSAGE_HINT), node_, false,
                       field(PG_DIAG_CONTEXT));
}

// ---- commands during abort --------------------------------------------------------------

namespace {

/// poll(2) for `events` on `sock` until `deadline`: > 0 when ready, 0 when the time ran out,
/// < 0 on an error. Plain poll: no latch, no interrupts, no ereport.
int poll_until(int sock, short events, Clock::time_point deadline) noexcept {
    for (;;) {
        const auto left =
            std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) {
            return 0;
        }
        pollfd p{};
        p.fd = sock;
        p.events = events;
        const int rc = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
        if (rc > 0) {
            return p.revents;
        }
        if (rc < 0 && errno != EINTR) {
            return -1;
        }
    }
}

}  // namespace

bool Connection::try_exec_during_abort(const std::string& sql,
                                       const std::vector<std::optional<std::string>>& params,
                                       int timeout_ms) noexcept {
    if (!idle()) {
        return false;
    }
    const auto deadline = Clock::now() + std::chrono::milliseconds(std::max(timeout_ms, 1));
    bool success = true;
    try {
        std::vector<const char*> values;
        values.reserve(params.size());
        for (const auto& p : params) {
            values.push_back(p ? p->c_str() : nullptr);
        }
        notices_.clear();
        if (PQsendQueryParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                              values.data(), nullptr, nullptr, 0) == 0) {
            close();
            return false;
        }
        const auto give_up = [this] {
            notices_.clear();
            cancel();
            close();
            return false;
        };
        for (;;) {
            const int flushed = PQflush(conn_);
            if (flushed == 0) {
                break;
            }
            const int ready =
                flushed < 0 ? -1 : poll_until(PQsocket(conn_), POLLIN | POLLOUT, deadline);
            if (ready <= 0 || ((ready & POLLIN) && PQconsumeInput(conn_) == 0)) {
                return give_up();
            }
        }
        for (;;) {
            while (PQisBusy(conn_) != 0) {
                const int ready = poll_until(PQsocket(conn_), POLLIN, deadline);
                if (ready <= 0 || PQconsumeInput(conn_) == 0) {
                    return give_up();
                }
            }
            PGresult* res = PQgetResult(conn_);
            if (res == nullptr) {
                break;
            }
            const ExecStatusType st = PQresultStatus(res);
            PQclear(res);
            if (is_copy_status(st)) {
                return give_up();
            }
            success = success && !is_error_status(st);
        }
        notices_.clear();  // nowhere to report them: the transaction is aborting
        notices_dropped_ = 0;
        if (!ok()) {
            close();
            return false;
        }
        return success;
    } catch (...) {
        // Out of memory building the parameters: the command may be half sent.
        notices_.clear();
        cancel();
        close();
        return false;
    }
}

// ---- cache ------------------------------------------------------------------------------

Connection& cached_connection(const Node& node, const std::string& user) {
    auto& connections = cache();
    const CacheKey key{node.host, node.port, user};
    auto it = connections.find(key);
    if (it != connections.end() && it->second && it->second->idle()) {
        return *it->second;
    }
    if (it != connections.end()) {
        connections.erase(it);
    }
    auto conn = std::make_unique<Connection>(node, conninfo_for(node, user, pg::database_name()));
    return *(connections[key] = std::move(conn));
}

Connection* idle_cached_connection(const Node& node, const std::string& user) noexcept {
    auto& connections = cache();
    auto it = connections.find(CacheKey{node.host, node.port, user});
    return it != connections.end() && it->second && it->second->idle() ? it->second.get() : nullptr;
}

void forget_connection(const Node& node) noexcept {
    auto& connections = cache();
    for (auto it = connections.begin(); it != connections.end();) {
        if (std::get<0>(it->first) == node.host && std::get<1>(it->first) == node.port) {
            it = connections.erase(it);
        } else {
            ++it;
        }
    }
}

void forget_all_connections() noexcept {
    cache().clear();
}

int cancels_in_flight() noexcept {
    return g_cancels_in_flight.load();
}

}  // namespace pgt::remote
