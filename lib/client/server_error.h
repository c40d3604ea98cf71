// Errors reported by the server, split into the fields a user needs: SQLSTATE, message,
// DETAIL, HINT and CONTEXT. libpqxx 6.4 keeps only the SQLSTATE and libpq's formatted text
// ("ERROR:  msg\nDETAIL:  ...\nHINT:  ...\n"), so the other fields are read from that text.
#pragma once

#include <string>
#include <string_view>

#include <pqxx/except>

namespace pgt::client {

/// One server error, field by field. Absent fields are empty.
struct ServerError {
    std::string sqlstate;  ///< five-character SQLSTATE, e.g. "42P01"
    std::string message;   ///< primary message
    std::string detail;    ///< DETAIL
    std::string hint;      ///< HINT
    std::string context;   ///< CONTEXT (where in server-side code it happened)
    std::string position;  ///< the "LINE n: ..." excerpt with its caret, if any
};

/// Splits libpq's default-verbosity error text into fields.
ServerError parse_server_error(std::string_view text, std::string sqlstate);

/// The fields of a libpqxx SQL error.
ServerError from_sql_error(const pqxx::sql_error& e);

}  // namespace pgt::client
