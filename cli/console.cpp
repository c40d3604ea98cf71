#include "console.h"

#include <unistd.h>

#include <cstdlib>
#include <iostream>

namespace pgt::cli {

namespace {

constexpr const char* red = "\033[31m";
constexpr const char* dim = "\033[2m";
constexpr const char* reset = "\033[0m";

bool stderr_wants_colour() {
    const char* no_colour = std::getenv("NO_COLOR");
    return isatty(STDERR_FILENO) == 1 && (no_colour == nullptr || *no_colour == '\0');
}

}  // namespace

Console::Console(Format format, int verbose, bool quiet)
    : format_(format), verbose_(verbose), quiet_(quiet), colour_(stderr_wants_colour()) {}

void Console::out(std::string_view text) const {
    std::cout << text << std::flush;
}

void Console::document(const json::Value& doc) const {
    std::cout << json::dump(doc, 2) << '\n' << std::flush;
}

void Console::document_line(const json::Value& doc) const {
    std::cout << json::dump(doc) << '\n' << std::flush;
}

void Console::message(const char* colour, std::string_view label, std::string_view msg) const {
    std::string line;
    if (colour_ && colour) {
        line.append(colour).append(label).append(reset);
    } else {
        line.append(label);
    }
    line.append(msg).append("\n");
    std::cerr << line << std::flush;
}

void Console::info(std::string_view msg) const {
    if (!quiet_) {
        message(nullptr, "", msg);
    }
}

void Console::debug(std::string_view msg) const {
    if (verbose_ > 0) {
        message(dim, "debug: ", msg);
    }
}

void Console::error(std::string_view msg) const {
    message(red, "error: ", msg);
}

void Console::error_field(std::string_view label, std::string_view text) const {
    // Continuation lines are indented under the first, so a caret line stays aligned with
    // the "LINE n: ..." line above it.
    const std::string indent(label.size() + 2, ' ');
    std::string indented;
    for (const char c : text) {
        indented += c;
        if (c == '\n') {
            indented += indent;
        }
    }
    message(nullptr, std::string(label) + ": ", indented);
}

Format format_from_name(const std::string& name) {
    return name == "json"         ? Format::json
           : name == "prometheus" ? Format::prometheus
                                  : Format::table;
}

json::Value new_document(const std::string& command) {
    json::Value doc = json::Value::object();
    doc.set("format_version", 1);
    doc.set("command", command.empty() ? json::Value() : json::Value(command));
    return doc;
}

json::Value status_object(ExitCode code, const std::string& message) {
    json::Value s = json::Value::object();
    s.set("code", exit_code_name(code));
    s.set("message", message);
    return s;
}

}  // namespace pgt::cli
