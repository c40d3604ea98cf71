// Probes for tests, compiled into pg_trickle.so only with -DPGTRICKLE_TEST_PROBES=ON (a
// default build has none): commands on a node through this backend's cached connection
// (extension/remote/connection.h). Not declared by the extension's SQL scripts; a test
// declares them itself (tests/integration/remote_test.cpp):
//   CREATE FUNCTION remote_probe(host text, port int, sql text, binary bool) RETURNS text
//       LANGUAGE C STRICT AS 'pg_trickle', 'pgtrickle_remote_probe';
//     Connection::exec; the first cell (with `binary`: fetched in binary format, returned as
//     lower-case hex of its raw bytes).
//   CREATE FUNCTION remote_probe_rows(host text, port int, sql text, fail_at bigint,
//                                     failure text) RETURNS bigint
//       LANGUAGE C STRICT AS 'pg_trickle', 'pgtrickle_remote_probe_rows';
//     Connection::exec_rows; the number of rows streamed. With fail_at > 0 the callback
//     fails at that row: failure 'cpp' throws a pgt::Error (SQLSTATE PTP01), 'pg' raises a
//     PostgreSQL error (22012) through pg_call, as an SPI insert would.
//   CREATE FUNCTION remote_probe_at_abort(host text, port int, sql text, timeout_ms int)
//       RETURNS void LANGUAGE C STRICT AS 'pg_trickle', 'pgtrickle_remote_probe_at_abort';
//     When the calling transaction aborts, run `sql` with
//     Connection::try_exec_during_abort from a transaction-abort callback;
//   CREATE FUNCTION remote_probe_abort_outcome() RETURNS text
//       LANGUAGE C AS 'pg_trickle', 'pgtrickle_remote_probe_abort_outcome';
//     then says how it went: "true <ms>", "false <ms>" or "no idle connection".
//   CREATE FUNCTION remote_probe_cancels_in_flight() RETURNS int
//       LANGUAGE C AS 'pg_trickle', 'pgtrickle_remote_probe_cancels_in_flight';
//     Cancel requests still being delivered by helper threads.
// Errors (the node's, connection failures, cancels) are raised, not returned.
#include <chrono>
#include <string>

#include "boundary/guard.h"
#include "boundary/pg.h"
#include "remote/connection.h"

extern "C" {
#include "access/xact.h"
#include "utils/errcodes.h"
}

namespace {

std::string hex(std::string_view bytes) {
    static const char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (const char c : bytes) {
        const auto b = static_cast<unsigned char>(c);
        out += digits[b >> 4];
        out += digits[b & 0xF];
    }
    return out;
}

pgt::remote::Node node_arg(FunctionCallInfo fcinfo) {
    pgt::remote::Node node;
    node.host = pgt::pg::text_arg(fcinfo, 0);
    node.port = PG_GETARG_INT32(1);
    return node;
}

std::string current_user_name() {
    return pgt::pg::role_name(pgt::pg::current_user());
}

/// The command remote_probe_at_abort registered, and what became of it. Never destroyed:
/// used by a transaction callback.
struct AbortProbe {
    bool pending = false;
    pgt::remote::Node node;
    std::string user, sql;
    int timeout_ms = 0;
    std::string outcome;
};

AbortProbe& abort_probe() {
    static auto* probe = new AbortProbe();
    return *probe;
}

void on_xact_event(XactEvent event, void* /*arg*/) noexcept {
    AbortProbe& p = abort_probe();
    if (!p.pending || (event != XACT_EVENT_ABORT && event != XACT_EVENT_COMMIT)) {
        return;
    }
    p.pending = false;
    if (event != XACT_EVENT_ABORT) {
        return;
    }
    try {
        pgt::remote::Connection* c = pgt::remote::idle_cached_connection(p.node, p.user);
        if (c == nullptr) {
            p.outcome = "no idle connection";
            return;
        }
        const auto start = std::chrono::steady_clock::now();
        const bool ok = c->try_exec_during_abort(p.sql, {}, p.timeout_ms);
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - start)
                            .count();
        p.outcome = std::string(ok ? "true " : "false ") + std::to_string(ms);
    } catch (...) {
        p.outcome = "out of memory";
    }
}

}  // namespace

PGT_FUNCTION(pgtrickle_remote_probe) {
    const pgt::remote::Node node = node_arg(fcinfo);
    const std::string sql = pgt::pg::text_arg(fcinfo, 2);
    const bool binary = PG_GETARG_BOOL(3);
    pgt::remote::Connection& conn = pgt::remote::cached_connection(node, current_user_name());
    const pgt::remote::Result result = conn.exec(sql, {}, binary);
    if (result.rows() == 0 || result.columns() == 0 || result.is_null(0, 0)) {
        PG_RETURN_NULL();
    }
    const std::string cell = binary ? hex(result.value(0, 0)) : result.text(0, 0);
    PG_RETURN_TEXT_P(pgt::pg::to_text(cell));
}

PGT_FUNCTION(pgtrickle_remote_probe_rows) {
    const pgt::remote::Node node = node_arg(fcinfo);
    const std::string sql = pgt::pg::text_arg(fcinfo, 2);
    const int64 fail_at = PG_GETARG_INT64(3);
    const std::string failure = pgt::pg::text_arg(fcinfo, 4);
    pgt::remote::Connection& conn = pgt::remote::cached_connection(node, current_user_name());
    int64 rows = 0;
    size_t bytes = 0;
    conn.exec_rows(sql, {}, false, [&](const pgt::remote::RowView& row) {
        ++rows;
        for (int c = 0; c < row.columns(); ++c) {
            bytes += row.value(c).size();
        }
        if (rows != fail_at) {
            return;
        }
        if (failure == "pg") {
            pgt::pg_call([]() noexcept {
                ereport(ERROR, (errcode(ERRCODE_DIVISION_BY_ZERO),
                                errmsg("probe callback failed: division by zero")));
            });
        }
        throw pgt::Error(MAKE_SQLSTATE('P', 'T', 'P', '0', '1'),
                         "probe callback failed at row " + std::to_string(rows));
    });
    (void)bytes;
    PG_RETURN_INT64(rows);
}

PGT_FUNCTION(pgtrickle_remote_probe_at_abort) {
    static bool registered = false;
    if (!registered) {
        pgt::pg_call([]() noexcept { RegisterXactCallback(on_xact_event, nullptr); });
        registered = true;
    }
    AbortProbe& p = abort_probe();
    p.node = node_arg(fcinfo);
    p.sql = pgt::pg::text_arg(fcinfo, 2);
    p.timeout_ms = PG_GETARG_INT32(3);
    p.user = current_user_name();
    p.outcome.clear();
    p.pending = true;
    PG_RETURN_VOID();
}

PGT_FUNCTION(pgtrickle_remote_probe_abort_outcome) {
    (void)fcinfo;
    const std::string outcome = std::exchange(abort_probe().outcome, std::string());
    PG_RETURN_TEXT_P(pgt::pg::to_text(outcome));
}

PGT_FUNCTION(pgtrickle_remote_probe_cancels_in_flight) {
    (void)fcinfo;
    PG_RETURN_INT32(pgt::remote::cancels_in_flight());
}
