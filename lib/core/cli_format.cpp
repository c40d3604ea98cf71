#include "core/cli_format.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <iterator>

namespace pgt::cli_format {

namespace {

bool is_space(char c) {
    return std::isspace(static_cast<unsigned char>(c)) != 0;
}

bool is_uri(std::string_view s) {
    return s.rfind("postgresql://", 0) == 0 || s.rfind("postgres://", 0) == 0;
}

// Masks password=... parameters in the query part of a URI ("a=1&password=x&b=2").
std::string mask_uri_query(std::string_view query) {
    std::string out;
    std::size_t start = 0;
    while (start <= query.size()) {
        std::size_t amp = query.find('&', start);
        std::string_view param = query.substr(
            start, amp == std::string_view::npos ? std::string_view::npos : amp - start);
        if (param.rfind("password=", 0) == 0) {
            out += "password=";
            out += masked_password;
        } else {
            out += param;
        }
        if (amp == std::string_view::npos) {
            break;
        }
        out += '&';
        start = amp + 1;
    }
    return out;
}

std::string mask_uri(std::string_view uri) {
    const std::size_t scheme_end = uri.find("://") + 3;
    std::size_t authority_end = uri.find_first_of("/?", scheme_end);
    if (authority_end == std::string_view::npos) {
        authority_end = uri.size();
    }
    std::string out(uri.substr(0, scheme_end));
    std::string_view authority = uri.substr(scheme_end, authority_end - scheme_end);
    const std::size_t at = authority.rfind('@');
    if (at != std::string_view::npos) {
        std::string_view userinfo = authority.substr(0, at);
        const std::size_t colon = userinfo.find(':');
        if (colon != std::string_view::npos) {
            out += userinfo.substr(0, colon + 1);
            out += masked_password;
            out += authority.substr(at);
        } else {
            out += authority;
        }
    } else {
        out += authority;
    }
    std::string_view rest = uri.substr(authority_end);
    const std::size_t q = rest.find('?');
    if (q == std::string_view::npos) {
        out += rest;
    } else {
        out += rest.substr(0, q + 1);
        out += mask_uri_query(rest.substr(q + 1));
    }
    return out;
}

// key = value pairs; values are bare words or single-quoted with backslash escapes.
std::string mask_keyword_value(std::string_view s) {
    std::string out;
    std::size_t i = 0;
    const std::size_t n = s.size();
    while (i < n) {
        const std::size_t key_start = i;
        while (i < n && !is_space(s[i]) && s[i] != '=') {
            ++i;
        }
        const std::string_view key = s.substr(key_start, i - key_start);
        while (i < n && is_space(s[i])) {
            ++i;
        }
        if (i == n || s[i] != '=') {
            out += s.substr(key_start, i - key_start);  // malformed: copy as is
            continue;
        }
        ++i;  // '='
        while (i < n && is_space(s[i])) {
            ++i;
        }
        out += s.substr(key_start, i - key_start);  // "key = "
        const std::size_t value_start = i;
        if (i < n && s[i] == '\'') {
            ++i;
            while (i < n && s[i] != '\'') {
                i += (s[i] == '\\' && i + 1 < n) ? 2 : 1;
            }
            i = i < n ? i + 1 : n;
        } else {
            while (i < n && !is_space(s[i])) {
                i += (s[i] == '\\' && i + 1 < n) ? 2 : 1;
            }
        }
        if (key == "password") {
            out += masked_password;
        } else {
            out += s.substr(value_start, i - value_start);
        }
        while (i < n && is_space(s[i])) {
            out += s[i++];
        }
    }
    return out;
}

}  // namespace

std::size_t display_width(std::string_view s) {
    std::size_t w = 0;
    for (char c : s) {
        if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) {
            ++w;
        }
    }
    return w;
}

std::string one_line(std::string_view s) {
    std::string out;
    bool in_break = false;
    for (char c : s) {
        if (c == '\n' || c == '\r' || c == '\t') {
            if (!in_break) {
                out += ' ';
            }
            in_break = true;
        } else {
            out += c;
            in_break = false;
        }
    }
    return out;
}

std::string render_table(const std::vector<std::string>& headers,
                         const std::vector<std::vector<std::string>>& rows) {
    const std::size_t ncol = headers.size();
    std::vector<std::size_t> width(ncol);
    for (std::size_t c = 0; c < ncol; ++c) {
        width[c] = display_width(headers[c]);
        for (const auto& row : rows) {
            if (c < row.size()) {
                width[c] = std::max(width[c], display_width(row[c]));
            }
        }
    }
    std::string out;
    auto line = [&](auto cell) {
        std::string text;
        for (std::size_t c = 0; c < ncol; ++c) {
            const std::string piece = cell(c);
            text += piece;
            if (c + 1 < ncol) {
                text.append(width[c] - display_width(piece) + 2, ' ');
            }
        }
        while (!text.empty() && text.back() == ' ') {
            text.pop_back();
        }
        out += text + "\n";
    };
    line([&](std::size_t c) { return headers[c]; });
    line([&](std::size_t c) { return std::string(width[c], '-'); });
    for (const auto& row : rows) {
        line([&](std::size_t c) { return c < row.size() ? row[c] : std::string(); });
    }
    return out;
}

std::string format_duration(double seconds) {
    if (!std::isfinite(seconds) || seconds < 0) {
        return "-";
    }
    seconds = std::min(seconds, 1e15);  // keeps the integer conversion below defined
    char buf[32];
    if (seconds < 1) {
        std::snprintf(buf, sizeof buf, "%dms", static_cast<int>(seconds * 1000));
        return buf;
    }
    const long long s = static_cast<long long>(seconds);
    if (s < 60) {
        std::snprintf(buf, sizeof buf, "%llds", s);
    } else if (s < 3600) {
        std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
    } else if (s < 86400) {
        std::snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, s % 3600 / 60);
    } else {
        std::snprintf(buf, sizeof buf, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
    }
    return buf;
}

std::string format_bytes(double bytes) {
    if (!std::isfinite(bytes)) {
        return "-";
    }
    const char* const units[] = {"bytes", "kB", "MB", "GB", "TB", "PB"};
    const bool negative = bytes < 0;
    double v = std::fabs(bytes);
    std::size_t unit = 0;
    while (v >= 10240 && unit + 1 < std::size(units)) {
        v /= 1024;
        ++unit;
    }
    const long long shown = unit == 0 ? static_cast<long long>(v) : std::llround(v);
    return (negative ? "-" : "") + std::to_string(shown) + " " + units[unit];
}

std::string mask_password(std::string_view conninfo) {
    return is_uri(conninfo) ? mask_uri(conninfo) : mask_keyword_value(conninfo);
}

}  // namespace pgt::cli_format
