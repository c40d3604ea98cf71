#include "client/server_error.h"

#include <vector>

namespace pgt::client {

namespace {

// Field labels that start a new section in libpq's error text (PQERRORS_DEFAULT).
struct Label {
    std::string_view prefix;
    std::string ServerError::*field;
};
const Label labels[] = {
    {"DETAIL:  ", &ServerError::detail},
    {"HINT:  ", &ServerError::hint},
    {"CONTEXT:  ", &ServerError::context},
    {"QUERY:  ", nullptr},  // internal query text: not shown
};

bool starts_with(std::string_view s, std::string_view prefix) {
    return s.substr(0, prefix.size()) == prefix;
}

bool is_position_line(std::string_view line) {
    if (!starts_with(line, "LINE ")) {
        return false;
    }
    std::size_t i = 5;
    while (i < line.size() && line[i] >= '0' && line[i] <= '9') {
        ++i;
    }
    return i > 5 && i < line.size() && line[i] == ':';
}

void append_line(std::string& field, std::string_view line) {
    if (!field.empty()) {
        field += '\n';
    }
    field += line;
}

}  // namespace

ServerError parse_server_error(std::string_view text, std::string sqlstate) {
    ServerError e;
    e.sqlstate = std::move(sqlstate);
    std::vector<std::string_view> lines;
    while (!text.empty()) {
        std::size_t nl = text.find('\n');
        lines.push_back(text.substr(0, nl));
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    }
    while (!lines.empty() && lines.back().empty()) {
        lines.pop_back();
    }
    std::string* current = &e.message;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        std::string_view line = lines[i];
        if (i == 0) {
            // "ERROR:  message"; with other verbosities the severity may be absent.
            const std::size_t colon = line.find(":  ");
            if (colon != std::string_view::npos && colon > 0 &&
                line.substr(0, colon).find(' ') == std::string_view::npos) {
                line.remove_prefix(colon + 3);
            }
            e.message = std::string(line);
            continue;
        }
        if (is_position_line(line)) {
            current = &e.position;  // the caret line that follows continues it
            append_line(e.position, line);
            continue;
        }
        bool labelled = false;
        for (const Label& l : labels) {
            if (starts_with(line, l.prefix)) {
                current = l.field ? &(e.*l.field) : nullptr;
                if (current) {
                    append_line(*current, line.substr(l.prefix.size()));
                }
                labelled = true;
                break;
            }
        }
        if (labelled) {
            continue;
        }
        if (current) {
            append_line(*current, line);  // continuation of a multi-line field
        }
    }
    return e;
}

ServerError from_sql_error(const pqxx::sql_error& e) {
    return parse_server_error(e.what(), e.sqlstate());
}

}  // namespace pgt::client
