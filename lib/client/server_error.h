// Errors reported by the server, split into the fields a user needs: SQLSTATE, message,
// DETAIL, HINT and CONTEXT. libpqxx 6.4 keeps only the SQLSTATE and libpq's formatted text
// ("ERROR:  msg\nDETAIL:  ...\nHINT:  ...\n"), so the other fields are read from that text.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <pqxx/connection_base>
#include <pqxx/except>

namespace pgt::client {

/// Where an error position falls in a query's text.
struct QueryLocation {
    int character = 0;    ///< 1-based character (not byte) offset, as PostgreSQL counts it
    int line = 0;         ///< 1-based line
    int column = 0;       ///< 1-based character within the line
    std::string excerpt;  ///< psql-style "LINE n: text" with a caret line under it
};

/// One server error, field by field. Absent fields are empty.
struct ServerError {
    std::string sqlstate;  ///< five-character SQLSTATE, e.g. "42P01"
    std::string message;   ///< primary message
    std::string detail;    ///< DETAIL
    std::string hint;      ///< HINT
    std::string context;   ///< CONTEXT (where in server-side code it happened)
    std::string position;  ///< the "LINE n: ..." excerpt with its caret, if any
    /// The error position within the user's query, when the CLI located it there
    /// (locate_query_error); position then holds its excerpt.
    std::optional<QueryLocation> location;
};

/// Splits libpq's default-verbosity error text into fields.
ServerError parse_server_error(std::string_view text, std::string sqlstate);

/// The fields of a libpqxx SQL error.
ServerError from_sql_error(const pqxx::sql_error& e);

/// Maps PostgreSQL's 1-based error position (characters of UTF-8 text; one past the end
/// for "at end of input") to line, column and excerpt. Lines end at \n, \r or \r\n, as
/// libpq counts them; tabs show as one space. nullopt when the position is out of range.
std::optional<QueryLocation> locate_in_text(std::string_view text, int character);

/// Removes libpq's terse-mode suffix " at character N" from a primary message and returns
/// N; nullopt (message unchanged) when there is none.
std::optional<int> take_character_suffix(std::string& message);

/// Where `query` fails on the server: it is prepared (parsed and analysed, never executed;
/// the extended protocol accepts one statement only) with terse errors, which carry the
/// position as a number, and deallocated again. nullopt when it prepares fine or the error
/// has no position. Used when a statement that passed the query as a parameter (such as
/// CALL pgtrickle.create_stream_table) failed with a position: libpq draws that position
/// under the CALL's text, but the server meant the query's.
std::optional<ServerError> locate_query_error(pqxx::connection_base& conn,
                                              const std::string& query);

}  // namespace pgt::client
