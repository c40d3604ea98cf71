// Exit codes of the pgtrickle CLI: one table, mirrored in docs/exit-codes.md.
// A test (tests/unit/exit_codes_doc_test.cpp) checks that the two agree.
#pragma once

namespace pgt {

enum class ExitCode : int {
    ok = 0,               ///< success
    failure = 1,          ///< the operation failed (no more specific code applies)
    usage = 2,            ///< bad command line: unknown command/option, missing or invalid value
    configuration = 3,    ///< the server or installation is not configured as required
    connection = 4,       ///< could not connect to a node (or the connection was lost)
    sql_error = 5,        ///< a SQL statement failed; the SQLSTATE is printed
    unhealthy = 6,        ///< a health check or preflight check failed
    partial_failure = 7,  ///< the operation succeeded on some nodes and failed on others
    internal = 70,        ///< a bug in pgtrickle (EX_SOFTWARE)
};

/// Stable machine name of an exit code ("ok", "usage", ...), as used in JSON output.
constexpr const char* exit_code_name(ExitCode c) {
    switch (c) {
        case ExitCode::ok:
            return "ok";
        case ExitCode::failure:
            return "failure";
        case ExitCode::usage:
            return "usage";
        case ExitCode::configuration:
            return "configuration";
        case ExitCode::connection:
            return "connection";
        case ExitCode::sql_error:
            return "sql_error";
        case ExitCode::unhealthy:
            return "unhealthy";
        case ExitCode::partial_failure:
            return "partial_failure";
        case ExitCode::internal:
            return "internal";
    }
    return "internal";
}

}  // namespace pgt
