// Where output goes: data (tables, JSON documents) to stdout, messages to stderr, coloured
// only when stderr is a terminal and NO_COLOR is not set.
#pragma once

#include <string>
#include <string_view>

#include "core/exit_codes.h"
#include "core/json.h"

namespace pgt::cli {

/// The --format choice (prometheus: only `status` speaks it).
enum class Format { table, json, prometheus };

/// The Format named by a --format value ("table", "json" or "prometheus").
Format format_from_name(const std::string& name);

/// The output channels of one command run.
class Console {
  public:
    Console(Format format, int verbose, bool quiet);

    Format format() const { return format_; }
    bool json() const { return format_ == Format::json; }

    /// Data to stdout, as is.
    void out(std::string_view text) const;
    /// One JSON document to stdout (pretty-printed, newline-terminated).
    void document(const json::Value& doc) const;
    /// One JSON document to stdout on a single line (for streams of documents: --watch).
    void document_line(const json::Value& doc) const;

    /// Progress and results meant for people; hidden by -q.
    void info(std::string_view msg) const;
    /// Connection and SQL details; shown only with -v.
    void debug(std::string_view msg) const;
    /// A failure; always shown.
    void error(std::string_view msg) const;
    /// A labelled continuation line of an error ("detail", "hint"); always shown.
    void error_field(std::string_view label, std::string_view text) const;

  private:
    void message(const char* colour, std::string_view label, std::string_view msg) const;

    Format format_;
    int verbose_;
    bool quiet_;
    bool colour_;
};

/// The start of every JSON document: {"format_version": 1, "command": command}.
json::Value new_document(const std::string& command);

/// A status object {"code": exit_code_name(code), "message": message}.
json::Value status_object(ExitCode code, const std::string& message);

}  // namespace pgt::cli
