// libpq connections to other nodes (connection.h). libpq runs non-blocking; every wait is a
// WaitLatchOrSocket on the backend's latch and the connection's socket inside pg_call, so a
// query cancel, statement_timeout or termination interrupts it as a PgError. libpq itself
// never ereports and is called outside the guards.
#include "remote/connection.h"

#include <chrono>
#include <cstring>
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

/// Remote notices (NOTICE, WARNING) are dropped: libpq's default printer writes to the
/// server's stderr, and a callback inside libpq's parser must not ereport.
void ignore_notice(void* /*arg*/, const char* /*message*/) {}

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

RemoteError::RemoteError(int sqlstate, const std::string& message, std::string detail,
                         std::string hint, Node node, bool connection_failure)
    : Error(sqlstate, message + " (node " + node.label() + ")", std::move(detail), std::move(hint)),
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
    return node_conninfo::merge(target, cluster, auth);
}

// ---- Connection -------------------------------------------------------------------------

Connection::Connection(Node node, const std::map<std::string, std::string>& conninfo,
                       int connect_timeout_s)
    : node_(std::move(node)) {
    // Counted against max_files_per_process like every file the backend opens.
    if (!pg_call([]() noexcept { return AcquireExternalFD(); })) {
        throw RemoteError(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
                          "could not connect to node",
                          "There are too many open files on the local server.", {}, node_, true);
    }
    fd_acquired_ = true;
    try {
        connect(conninfo, connect_timeout_s);
    } catch (...) {
        close();
        throw;
    }
}

void Connection::connect(const std::map<std::string, std::string>& conninfo,
                         int connect_timeout_s) {
    std::vector<const char*> keywords, values;
    for (const auto& [k, v] : conninfo) {
        keywords.push_back(k.c_str());
        values.push_back(v.c_str());
    }
    keywords.push_back(nullptr);
    values.push_back(nullptr);
    conn_ = PQconnectStartParams(keywords.data(), values.data(), 0);
    if (conn_ == nullptr) {
        throw RemoteError(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
                          "could not connect to node: out of memory", {}, {}, node_, true);
    }
    PQsetNoticeProcessor(conn_, ignore_notice, nullptr);
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(connect_timeout_s);
    // After PQconnectStart the first poll waits until the socket is writable.
    PostgresPollingStatusType status =
        PQstatus(conn_) == CONNECTION_BAD ? PGRES_POLLING_FAILED : PGRES_POLLING_WRITING;
    while (status != PGRES_POLLING_OK) {
        if (status == PGRES_POLLING_FAILED) {
            throw connection_error(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
                                   "could not connect to node", PQerrorMessage(conn_), node_);
        }
        const long left = std::chrono::duration_cast<std::chrono::milliseconds>(
                              deadline - std::chrono::steady_clock::now())
                              .count();
        if (left <= 0) {
            throw RemoteError(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
                              "could not connect to node: timeout expired after " +
                                  std::to_string(connect_timeout_s) + " s",
                              {}, {}, node_, true);
        }
        const int events =
            status == PGRES_POLLING_READING ? WL_SOCKET_READABLE : WL_SOCKET_WRITEABLE;
        if (PQsocket(conn_) == PGINVALID_SOCKET) {
            throw connection_error(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
                                   "could not connect to node", PQerrorMessage(conn_), node_);
        }
        const int rc = wait_for(events, PQsocket(conn_), left);
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
    // failure changes nothing for the caller.
    if (PGcancel* c = PQgetCancel(conn_)) {
        char errbuf[256];
        (void)PQcancel(c, errbuf, sizeof errbuf);
        PQfreeCancel(c);
    }
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
    close();
    return e;
}

Result Connection::exec(const std::string& sql,
                        const std::vector<std::optional<std::string>>& params,
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
    if (PQsendQueryParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                          values.data(), nullptr, nullptr, binary_results ? 1 : 0) == 0) {
        throw broken();
    }
    try {
        return await_result();
    } catch (const RemoteError&) {
        throw;  // the connection was already closed, or is fine (an error of the node)
    } catch (...) {
        // Interrupted (query cancel, statement_timeout) or failed here: the command must
        // not run on unattended, and the connection's state is unknown.
        cancel();
        close();
        throw;
    }
}

Result Connection::await_result() {
    // Send everything (non-blocking: the socket may take it in pieces).
    for (;;) {
        const int flushed = PQflush(conn_);
        if (flushed == 0) {
            break;
        }
        if (flushed < 0) {
            throw broken();
        }
        if (PQsocket(conn_) == PGINVALID_SOCKET) {
            throw broken();
        }
        const int rc = wait_for(WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE, PQsocket(conn_), -1);
        if ((rc & WL_SOCKET_READABLE) && PQconsumeInput(conn_) == 0) {
            throw broken();
        }
    }
    // Collect the results as PQexec does: the last one, or the first error.
    Result kept(nullptr);
    bool failed = false;
    for (;;) {
        while (PQisBusy(conn_) != 0) {
            if (PQsocket(conn_) == PGINVALID_SOCKET) {
                throw broken();
            }
            const int rc = wait_for(WL_SOCKET_READABLE, PQsocket(conn_), -1);
            if ((rc & WL_SOCKET_READABLE) && PQconsumeInput(conn_) == 0) {
                throw broken();
            }
        }
        PGresult* res = PQgetResult(conn_);
        if (res == nullptr) {
            break;
        }
        const ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
            PQclear(res);
            RemoteError e(ERRCODE_FEATURE_NOT_SUPPORTED,
                          "COPY is not supported on node connections", {}, {}, node_, false);
            close();
            throw e;
        }
        if (failed) {
            PQclear(res);
            continue;
        }
        kept = Result(res);
        failed = st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR;
    }
    if (failed) {
        throw error_of(kept);
    }
    if (!ok()) {
        throw broken();
    }
    return kept;
}

RemoteError Connection::error_of(const Result& failed) {
    const pg_result* res = failed.get();
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
                       field(PG_DIAG_MESSAGE_DETAIL), field(PG_DIAG_MESSAGE_HINT), node_, false);
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

}  // namespace pgt::remote
