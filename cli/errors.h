// Turning failures into exit codes (lib/core/exit_codes.h) and into output: a message on
// stderr and, with --format json, one error document on stdout.
#pragma once

#include <stdexcept>
#include <string>

#include <CLI/CLI.hpp>

#include <pqxx/except>

#include "client/connection.h"
#include "client/server_error.h"
#include "command_tree.h"
#include "context.h"
#include "core/exit_codes.h"

namespace pgt::cli {

/// A command line that parsed but makes no sense (exit code 2).
class UsageError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

/// A command that could not do its work, with the exit code to use (failure unless
/// given) and an optional hint saying what to do next.
class CommandError : public std::runtime_error {
  public:
    explicit CommandError(const std::string& message, std::string hint = {},
                          ExitCode code = ExitCode::failure)
        : std::runtime_error(message), hint_(std::move(hint)), code_(code) {}
    const std::string& hint() const { return hint_; }
    ExitCode code() const { return code_; }

  private:
    std::string hint_;
    ExitCode code_;
};

/// A server error already split into fields (and perhaps located in the user's query):
/// reported like any SQL error (exit code 5).
class ServerFailure : public std::runtime_error {
  public:
    explicit ServerFailure(client::ServerError error)
        : std::runtime_error(error.message), error_(std::move(error)) {}
    const client::ServerError& error() const { return error_; }

  private:
    client::ServerError error_;
};

/// Rethrows `e`, raised by a statement that passed `query` as a parameter, as a
/// ServerFailure whose position points into `query` (line, column, caret): the server's
/// position is the query's, but libpq draws it under the statement's own text, or not at
/// all when it lies beyond that text's end. The query is located with
/// client::locate_query_error; when that finds another error or none, the misleading
/// excerpt is dropped.
[[noreturn]] void rethrow_in_query(client::Node& node, const pqxx::sql_error& e,
                                   const std::string& query);

/// Reports the exception being handled (call from a catch block) and returns its exit
/// code: usage 2, CommandError its own code, invalid DSN 2 (--dsn) or 3 (PGTRICKLE_DSN), missing
/// extension 3, connection 4, SQL error 5, unknown stream table 1, anything unexpected 70.
ExitCode report_current_exception(const Context& ctx);

/// Reports a CLI11 parse error (or help request) and returns its exit code: 0 for
/// --help, 2 otherwise. With --format json among the arguments an error document is
/// printed too.
ExitCode report_parse_error(CommandTree& tree, const CLI::ParseError& e, int argc,
                            const char* const* argv);

}  // namespace pgt::cli
