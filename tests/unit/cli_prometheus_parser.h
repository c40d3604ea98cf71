// A strict reader of the Prometheus text exposition format 0.0.4, for tests: it rejects
// anything the format does not allow, and is stricter in one way: every family must have
// its # HELP and # TYPE lines before its first sample (our renderer always writes them).
#pragma once

#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pgt::test {

/// One parsed sample.
struct ParsedSample {
    std::map<std::string, std::string> labels;  ///< unescaped values
    double value = 0;
};

/// One parsed metric family.
struct ParsedFamily {
    std::string help;  ///< unescaped
    bool has_help = false;
    std::string type;
    std::vector<ParsedSample> samples;
};

/// A parsed exposition: families by name, plus their order of appearance.
struct Exposition {
    std::map<std::string, ParsedFamily> families;
    std::vector<std::string> order;

    /// The value of the sample of metric with exactly these labels, if present.
    std::optional<double> value(const std::string& metric,
                                const std::map<std::string, std::string>& labels = {}) const {
        auto it = families.find(metric);
        if (it == families.end()) {
            return std::nullopt;
        }
        for (const ParsedSample& s : it->second.samples) {
            if (s.labels == labels) {
                return s.value;
            }
        }
        return std::nullopt;
    }
};

/// Thrown on any violation; what() names the line.
class ExpositionError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

namespace detail {

inline bool is_name_start(char c, bool colon) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
}

inline bool is_name_char(char c, bool colon) {
    return is_name_start(c, colon) || (c >= '0' && c <= '9');
}

// Reads a name at pos (metric names allow ':'); empty when none.
inline std::string read_name(std::string_view line, std::size_t& pos, bool colon) {
    const std::size_t start = pos;
    if (pos < line.size() && is_name_start(line[pos], colon)) {
        ++pos;
        while (pos < line.size() && is_name_char(line[pos], colon)) {
            ++pos;
        }
    }
    return std::string(line.substr(start, pos - start));
}

// Unescapes \\ and \n (and \" when quote) — any other escape is an error.
inline std::string unescape(std::string_view s, bool quote, const std::string& where) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '\\') {
            out += s[i];
            continue;
        }
        if (i + 1 == s.size()) {
            throw ExpositionError(where + ": trailing backslash");
        }
        const char e = s[++i];
        if (e == '\\') {
            out += '\\';
        } else if (e == 'n') {
            out += '\n';
        } else if (quote && e == '"') {
            out += '"';
        } else {
            throw ExpositionError(where + ": invalid escape \\" + std::string(1, e));
        }
    }
    return out;
}

inline bool valid_utf8(std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        std::size_t len = c < 0x80           ? 1
                          : (c >> 5) == 0x6  ? 2
                          : (c >> 4) == 0xE  ? 3
                          : (c >> 3) == 0x1E ? 4
                                             : 0;
        if (len == 0 || i + len > s.size() || (len == 2 && c < 0xC2)) {
            return false;
        }
        for (std::size_t k = 1; k < len; ++k) {
            if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) {
                return false;
            }
        }
        i += len;
    }
    return true;
}

// A float as Go's strconv.ParseFloat accepts it in this format (no hex, no underscores).
inline double parse_value(std::string_view text, const std::string& where) {
    if (text == "NaN") {
        return std::nan("");
    }
    if (text == "+Inf" || text == "Inf") {
        return INFINITY;
    }
    if (text == "-Inf") {
        return -INFINITY;
    }
    const std::string t(text);
    bool digit = false;
    for (std::size_t i = 0; i < t.size(); ++i) {
        const char c = t[i];
        const bool sign_ok = i == 0 || t[i - 1] == 'e' || t[i - 1] == 'E';
        if (c >= '0' && c <= '9') {
            digit = true;
        } else if (!((c == '+' || c == '-') && sign_ok) && c != '.' && c != 'e' && c != 'E') {
            digit = false;
            break;
        }
    }
    char* end = nullptr;
    const double v = std::strtod(t.c_str(), &end);
    if (!digit || t.empty() || end != t.c_str() + t.size()) {
        throw ExpositionError(where + ": invalid value \"" + t + "\"");
    }
    return v;
}

}  // namespace detail

/// Parses an exposition; throws ExpositionError on the first violation.
inline Exposition parse_exposition(std::string_view text) {
    using namespace detail;
    static const std::set<std::string> types = {"counter", "gauge", "histogram", "summary",
                                                "untyped"};
    Exposition ex;
    if (!text.empty() && text.back() != '\n') {
        throw ExpositionError("the last line does not end with a newline");
    }
    if (!valid_utf8(text)) {
        throw ExpositionError("the text is not valid UTF-8");
    }
    std::set<std::string> closed;  // families whose group of lines has ended
    std::set<std::pair<std::string, std::map<std::string, std::string>>> series;
    std::string current;
    std::size_t line_no = 0;
    std::size_t begin = 0;
    while (begin < text.size()) {
        const std::size_t nl = text.find('\n', begin);
        const std::string_view line = text.substr(begin, nl - begin);
        begin = nl + 1;
        const std::string where = "line " + std::to_string(++line_no);
        if (line.empty()) {
            continue;
        }
        std::string name;
        std::size_t pos = 0;
        if (line[0] == '#') {
            const bool help = line.substr(0, 7) == "# HELP ";
            const bool type = line.substr(0, 7) == "# TYPE ";
            if (!help && !type) {
                continue;  // a plain comment
            }
            pos = 7;
            name = read_name(line, pos, true);
            if (name.empty() || pos >= line.size() || line[pos] != ' ') {
                throw ExpositionError(where + ": malformed # HELP/# TYPE line");
            }
            ++pos;
            if (name != current) {
                if (!current.empty()) {
                    closed.insert(current);
                }
                if (closed.count(name)) {
                    throw ExpositionError(where + ": family " + name + " appears in two groups");
                }
                current = name;
                if (!ex.families.count(name)) {
                    ex.order.push_back(name);
                }
            }
            ParsedFamily& f = ex.families[name];
            const std::string rest(line.substr(pos));
            if (help) {
                if (f.has_help) {
                    throw ExpositionError(where + ": second # HELP for " + name);
                }
                f.help = unescape(rest, false, where);
                f.has_help = true;
            } else {
                if (!f.type.empty()) {
                    throw ExpositionError(where + ": second # TYPE for " + name);
                }
                if (!f.samples.empty()) {
                    throw ExpositionError(where + ": # TYPE after samples of " + name);
                }
                if (!types.count(rest)) {
                    throw ExpositionError(where + ": unknown type \"" + rest + "\"");
                }
                f.type = rest;
            }
            continue;
        }
        name = read_name(line, pos, true);
        if (name.empty()) {
            throw ExpositionError(where + ": a sample must start with a metric name");
        }
        if (name != current || !ex.families.count(name) || ex.families[name].type.empty() ||
            !ex.families[name].has_help) {
            throw ExpositionError(where + ": sample of " + name +
                                  " without # HELP and # TYPE lines just before its group");
        }
        ParsedSample s;
        if (pos < line.size() && line[pos] == '{') {
            ++pos;
            while (pos < line.size() && line[pos] != '}') {
                const std::string label = read_name(line, pos, false);
                if (label.empty() || label.substr(0, 2) == "__") {
                    throw ExpositionError(where + ": invalid label name");
                }
                if (pos + 1 >= line.size() || line[pos] != '=' || line[pos + 1] != '"') {
                    throw ExpositionError(where + ": expected =\" after label " + label);
                }
                pos += 2;
                const std::size_t start = pos;
                while (pos < line.size() && line[pos] != '"') {
                    pos += line[pos] == '\\' ? 2 : 1;
                }
                if (pos >= line.size()) {
                    throw ExpositionError(where + ": unterminated label value");
                }
                const std::string value = unescape(line.substr(start, pos - start), true, where);
                ++pos;
                if (!s.labels.emplace(label, value).second) {
                    throw ExpositionError(where + ": label " + label + " repeated");
                }
                if (pos < line.size() && line[pos] == ',') {
                    ++pos;
                } else if (pos >= line.size() || line[pos] != '}') {
                    throw ExpositionError(where + ": expected , or } after a label");
                }
            }
            if (pos >= line.size()) {
                throw ExpositionError(where + ": unterminated label set");
            }
            ++pos;
        }
        if (pos >= line.size() || line[pos] != ' ') {
            throw ExpositionError(where + ": expected a space before the value");
        }
        const std::string_view rest = line.substr(pos + 1);
        const std::size_t space = rest.find(' ');
        s.value = parse_value(rest.substr(0, space), where);
        if (space != std::string_view::npos) {  // an optional integer timestamp
            const std::string ts(rest.substr(space + 1));
            if (ts.empty() || ts.find_first_not_of("-0123456789") != std::string::npos) {
                throw ExpositionError(where + ": invalid timestamp");
            }
        }
        if (!series.emplace(name, s.labels).second) {
            throw ExpositionError(where + ": duplicate series of " + name);
        }
        ex.families[name].samples.push_back(std::move(s));
    }
    return ex;
}

}  // namespace pgt::test
