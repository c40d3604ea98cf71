#include "core/prometheus.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>

namespace pgt::prometheus {

namespace {

bool name_start(char c, bool colon_ok) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon_ok && c == ':');
}

bool name_char(char c, bool colon_ok) {
    return name_start(c, colon_ok) || (c >= '0' && c <= '9');
}

bool valid_name(std::string_view name, bool colon_ok) {
    if (name.empty() || !name_start(name[0], colon_ok)) {
        return false;
    }
    for (char c : name) {
        if (!name_char(c, colon_ok)) {
            return false;
        }
    }
    return true;
}

// Length of the valid UTF-8 sequence starting at s[i], or 0 when it is not valid
// (overlong forms, surrogates and code points above U+10FFFF are invalid).
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
    const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
    const unsigned char c = b(0);
    if (c < 0x80) {
        return 1;
    }
    std::size_t len = 0;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (i + len > s.size() || b(1) < lo || b(1) > hi) {
        return 0;
    }
    for (std::size_t k = 2; k < len; ++k) {
        if (b(k) < 0x80 || b(k) > 0xBF) {
            return 0;
        }
    }
    return len;
}

// Escapes backslash and newline (and the double quote when quote is set); replaces
// invalid UTF-8 by U+FFFD.
std::string escape(std::string_view s, bool quote) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
        const std::size_t len = utf8_sequence(s, i);
        if (len == 0) {
            out += "\xEF\xBF\xBD";
            ++i;
            continue;
        }
        const char c = s[i];
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else if (quote && c == '"') {
            out += "\\\"";
        } else {
            out.append(s.substr(i, len));
        }
        i += len;
    }
    return out;
}

}  // namespace

const char* type_name(Type t) {
    switch (t) {
        case Type::gauge:
            return "gauge";
        case Type::counter:
            return "counter";
        case Type::untyped:
            return "untyped";
    }
    return "untyped";
}

Family& Family::add(std::vector<std::pair<std::string, std::string>> labels, double value) {
    samples.push_back({std::move(labels), value});
    return *this;
}

bool valid_metric_name(std::string_view name) {
    return valid_name(name, true);
}

bool valid_label_name(std::string_view name) {
    return valid_name(name, false) && name.substr(0, 2) != "__";
}

std::string escape_label_value(std::string_view value) {
    return escape(value, true);
}

std::string escape_help(std::string_view help) {
    return escape(help, false);
}

std::string format_value(double value) {
    if (std::isnan(value)) {
        return "NaN";
    }
    if (std::isinf(value)) {
        return value > 0 ? "+Inf" : "-Inf";
    }
    char buf[32];
    if (value == std::trunc(value) && std::fabs(value) < 9007199254740992.0) {
        std::snprintf(buf, sizeof buf, "%.0f", value);
        return buf;
    }
    for (int digits = 15; digits <= 17; ++digits) {  // the shortest text that reads back
        std::snprintf(buf, sizeof buf, "%.*g", digits, value);
        if (std::strtod(buf, nullptr) == value) {
            break;
        }
    }
    return buf;
}

std::string render(const std::vector<Family>& families) {
    std::string out;
    std::set<std::string> seen;
    for (const Family& f : families) {
        if (!valid_metric_name(f.name)) {
            throw InvalidMetric("invalid metric name \"" + f.name + "\"");
        }
        if (!seen.insert(f.name).second) {
            throw InvalidMetric("metric family \"" + f.name + "\" is rendered twice");
        }
        out += "# HELP " + f.name + " " + escape_help(f.help) + "\n";
        out += "# TYPE " + f.name + " " + type_name(f.type) + "\n";
        for (const Sample& s : f.samples) {
            out += f.name;
            if (!s.labels.empty()) {
                out += '{';
                std::set<std::string> label_names;
                for (std::size_t i = 0; i < s.labels.size(); ++i) {
                    const auto& [label, value] = s.labels[i];
                    if (!valid_label_name(label)) {
                        throw InvalidMetric("invalid label name \"" + label + "\" in " + f.name);
                    }
                    if (!label_names.insert(label).second) {
                        throw InvalidMetric("label \"" + label + "\" repeated in " + f.name);
                    }
                    out += (i ? "," : "") + label + "=\"" + escape_label_value(value) + "\"";
                }
                out += '}';
            }
            out += " " + format_value(s.value) + "\n";
        }
    }
    return out;
}

}  // namespace pgt::prometheus
