// A probe for tests, compiled into pg_trickle.so only with -DPGTRICKLE_TEST_PROBES=ON (a
// default build has none): run one command on a node through this backend's cached
// connection (extension/remote/connection.h) and return the first cell. Not declared by the
// extension's SQL scripts; a test declares it itself:
//   CREATE FUNCTION remote_probe(host text, port int, sql text, binary bool) RETURNS text
//       LANGUAGE C STRICT AS 'pg_trickle', 'pgtrickle_remote_probe';
// With `binary` the cell is fetched in binary format and returned as lower-case hex of its
// raw bytes. Errors (the node's, connection failures, cancels) are raised, not returned.
#include <string>

#include "boundary/guard.h"
#include "boundary/pg.h"
#include "remote/connection.h"

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

}  // namespace

PGT_FUNCTION(pgtrickle_remote_probe) {
    pgt::remote::Node node;
    node.host = pgt::pg::text_arg(fcinfo, 0);
    node.port = PG_GETARG_INT32(1);
    const std::string sql = pgt::pg::text_arg(fcinfo, 2);
    const bool binary = PG_GETARG_BOOL(3);
    const std::string user = pgt::pg::role_name(pgt::pg::current_user());
    pgt::remote::Connection& conn = pgt::remote::cached_connection(node, user);
    const pgt::remote::Result result = conn.exec(sql, {}, binary);
    if (result.rows() == 0 || result.columns() == 0 || result.is_null(0, 0)) {
        PG_RETURN_NULL();
    }
    const std::string cell = binary ? hex(result.value(0, 0)) : result.text(0, 0);
    PG_RETURN_TEXT_P(pgt::pg::to_text(cell));
}
