#include "client/server_error.h"

#include <vector>

#include <pqxx/connection_base>

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

std::optional<QueryLocation> locate_in_text(std::string_view text, int character) {
    if (character < 1) {
        return std::nullopt;
    }
    // Walk the characters (UTF-8 lead bytes) up to the target, tracking the line start.
    const auto target = static_cast<std::size_t>(character - 1);
    std::size_t chars = 0;
    std::size_t line_start = 0;  // byte offset
    std::size_t byte = 0;
    int line = 1;
    int column = 1;
    while (byte < text.size() && chars < target) {
        const char c = text[byte];
        if (c == '\n' || c == '\r') {
            const bool crlf = c == '\r' && byte + 1 < text.size() && text[byte + 1] == '\n';
            byte += crlf ? 2 : 1;
            chars += crlf ? 2 : 1;
            if (crlf && chars > target) {  // the position is the \n of a \r\n
                ++column;
                break;
            }
            ++line;
            column = 1;
            line_start = byte;
            continue;
        }
        ++byte;
        while (byte < text.size() && (static_cast<unsigned char>(text[byte]) & 0xC0U) == 0x80U) {
            ++byte;  // continuation bytes
        }
        ++chars;
        ++column;
    }
    if (chars < target) {
        return std::nullopt;  // beyond one past the end
    }
    std::size_t line_end = text.find_first_of("\r\n", line_start);
    if (line_end == std::string_view::npos) {
        line_end = text.size();
    }
    std::string line_text(text.substr(line_start, line_end - line_start));
    for (char& c : line_text) {
        if (c == '\t') {
            c = ' ';
        }
    }
    QueryLocation loc;
    loc.character = character;
    loc.line = line;
    loc.column = column;
    const std::string prefix = "LINE " + std::to_string(line) + ": ";
    loc.excerpt = prefix + line_text + "\n" +
                  std::string(prefix.size() + static_cast<std::size_t>(column - 1), ' ') + "^";
    return loc;
}

std::optional<int> take_character_suffix(std::string& message) {
    static constexpr std::string_view marker = " at character ";
    const std::size_t at = message.rfind(marker);
    if (at == std::string::npos) {
        return std::nullopt;
    }
    const std::string_view digits = std::string_view(message).substr(at + marker.size());
    if (digits.empty() || digits.size() > 9 ||
        digits.find_first_not_of("0123456789") != std::string_view::npos) {
        return std::nullopt;
    }
    const int n = std::stoi(std::string(digits));
    message.erase(at);
    return n;
}

std::optional<ServerError> locate_query_error(pqxx::connection_base& conn,
                                              const std::string& query) {
    // Restores the connection's verbosity and forgets the statement, whatever happens.
    struct Restore {
        pqxx::connection_base& conn;
        pqxx::connection_base::error_verbosity verbosity;
        const std::string& name;
        ~Restore() {
            conn.set_verbosity(verbosity);
            try {
                conn.unprepare(name);
            } catch (const std::exception&) {
                // best effort: the statement is unnamed to the user and dies with the session
            }
        }
    };
    static const std::string name = "pgtrickle_locate_query_error";
    const Restore restore{conn, conn.get_verbosity(), name};
    conn.set_verbosity(pqxx::connection_base::terse);
    conn.prepare(name, query);
    try {
        conn.prepare_now(name);
    } catch (const pqxx::sql_error& e) {
        ServerError err = from_sql_error(e);
        const std::optional<int> character = take_character_suffix(err.message);
        if (!character) {
            return std::nullopt;
        }
        err.location = locate_in_text(query, *character);
        if (!err.location) {
            return std::nullopt;
        }
        err.position = err.location->excerpt;
        return err;
    }
    return std::nullopt;
}

}  // namespace pgt::client
