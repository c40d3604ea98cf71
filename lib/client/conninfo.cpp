#include "client/conninfo.h"

#include <algorithm>
#include <array>
#include <cctype>

namespace pgt::client {

namespace {

// Connection keywords of PostgreSQL 15's libpq (PQconndefaults()).
constexpr std::array<std::string_view, 37> known_keywords = {
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "channel_binding",
    "connect_timeout",
    "client_encoding",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "replication",
    "gssencmode",
    "sslmode",
    "requiressl",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "krbsrvname",
    "gsslib",
    "service",
    "target_session_attrs",
};

bool is_space(char c) {
    return std::isspace(static_cast<unsigned char>(c)) != 0;
}

void add_param(ConninfoParams& out, std::string key, std::string value) {
    if (std::find(known_keywords.begin(), known_keywords.end(), key) == known_keywords.end()) {
        throw ConninfoSyntaxError("invalid connection option \"" + key + "\"");
    }
    out.emplace_back(std::move(key), std::move(value));
}

ConninfoParams parse_keyword_value(std::string_view s) {
    ConninfoParams out;
    std::size_t i = 0;
    const std::size_t n = s.size();
    while (true) {
        while (i < n && is_space(s[i])) {
            ++i;
        }
        if (i == n) {
            return out;
        }
        std::string key;
        while (i < n && !is_space(s[i]) && s[i] != '=') {
            key += s[i++];
        }
        while (i < n && is_space(s[i])) {
            ++i;
        }
        if (i == n || s[i] != '=') {
            throw ConninfoSyntaxError("missing \"=\" after \"" + key + "\" in connection string");
        }
        ++i;
        while (i < n && is_space(s[i])) {
            ++i;
        }
        std::string value;
        if (i < n && s[i] == '\'') {
            ++i;
            while (true) {
                if (i == n) {
                    throw ConninfoSyntaxError("unterminated quoted string in connection string");
                }
                if (s[i] == '\'') {
                    ++i;
                    break;
                }
                if (s[i] == '\\' && i + 1 < n) {
                    ++i;
                }
                value += s[i++];
            }
        } else {
            while (i < n && !is_space(s[i])) {
                if (s[i] == '\\' && i + 1 < n) {
                    ++i;
                }
                value += s[i++];
            }
        }
        add_param(out, std::move(key), std::move(value));
    }
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

std::string percent_decode(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out += s[i];
            continue;
        }
        int hi = i + 2 < s.size() ? hex_digit(s[i + 1]) : -1;
        int lo = i + 2 < s.size() ? hex_digit(s[i + 2]) : -1;
        if (hi < 0 || lo < 0) {
            throw ConninfoSyntaxError("invalid percent-encoded token in URI: \"" + std::string(s) +
                                      "\"");
        }
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return out;
}

// The host list of a URI ("h1:5432,[::1]:5433,h3") as libpq's host and port lists.
void parse_uri_hosts(std::string_view list, ConninfoParams& out) {
    std::string hosts;
    std::string ports;
    bool any_port = false;
    std::size_t i = 0;
    while (true) {
        std::string host;
        if (i < list.size() && list[i] == '[') {
            std::size_t close = list.find(']', i);
            if (close == std::string_view::npos) {
                throw ConninfoSyntaxError("missing \"]\" in IPv6 host address in URI");
            }
            host = std::string(list.substr(i + 1, close - i - 1));
            i = close + 1;
        } else {
            while (i < list.size() && list[i] != ':' && list[i] != ',') {
                host += list[i++];
            }
            host = percent_decode(host);
        }
        std::string port;
        if (i < list.size() && list[i] == ':') {
            ++i;
            while (i < list.size() && list[i] != ',') {
                port += list[i++];
            }
            any_port = true;
        }
        hosts += host;
        ports += port;
        if (i >= list.size()) {
            break;
        }
        ++i;  // ','
        hosts += ',';
        ports += ',';
    }
    if (!hosts.empty()) {
        out.emplace_back("host", hosts);
    }
    if (any_port) {
        out.emplace_back("port", ports);
    }
}

ConninfoParams parse_uri(std::string_view s) {
    ConninfoParams out;
    s.remove_prefix(s.find("://") + 3);
    const std::size_t authority_end = std::min(s.find_first_of("/?"), s.size());
    std::string_view authority = s.substr(0, authority_end);
    std::string_view rest = s.substr(authority_end);
    const std::size_t at = authority.rfind('@');
    if (at != std::string_view::npos) {
        std::string_view userinfo = authority.substr(0, at);
        const std::size_t colon = userinfo.find(':');
        if (!userinfo.substr(0, colon).empty()) {
            out.emplace_back("user", percent_decode(userinfo.substr(0, colon)));
        }
        if (colon != std::string_view::npos) {
            out.emplace_back("password", percent_decode(userinfo.substr(colon + 1)));
        }
        authority.remove_prefix(at + 1);
    }
    parse_uri_hosts(authority, out);
    std::string_view query;
    if (const std::size_t q = rest.find('?'); q != std::string_view::npos) {
        query = rest.substr(q + 1);
        rest = rest.substr(0, q);
    }
    if (rest.size() > 1) {
        out.emplace_back("dbname", percent_decode(rest.substr(1)));
    }
    while (!query.empty()) {
        const std::size_t amp = std::min(query.find('&'), query.size());
        std::string_view param = query.substr(0, amp);
        query.remove_prefix(std::min(amp + 1, query.size()));
        const std::size_t eq = param.find('=');
        if (eq == std::string_view::npos) {
            throw ConninfoSyntaxError(
                "missing key/value separator \"=\" in URI query parameter: \"" +
                std::string(param) + "\"");
        }
        std::string key = percent_decode(param.substr(0, eq));
        std::string value = percent_decode(param.substr(eq + 1));
        if (key == "ssl" && value == "true") {  // JDBC compatibility, as libpq does
            key = "sslmode";
            value = "require";
        }
        add_param(out, std::move(key), std::move(value));
    }
    return out;
}

// The last value given for key (later settings win in libpq), or "".
std::string last_value(const ConninfoParams& params, std::string_view key) {
    std::string v;
    for (const auto& [k, val] : params) {
        if (k == key) {
            v = val;
        }
    }
    return v;
}

std::vector<std::string> split_commas(const std::string& s) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (true) {
        std::size_t comma = s.find(',', start);
        out.push_back(s.substr(start, comma == std::string::npos ? comma : comma - start));
        if (comma == std::string::npos) {
            return out;
        }
        start = comma + 1;
    }
}

}  // namespace

ConninfoParams parse_conninfo(std::string_view conninfo) {
    if (conninfo.rfind("postgresql://", 0) == 0 || conninfo.rfind("postgres://", 0) == 0) {
        return parse_uri(conninfo);
    }
    return parse_keyword_value(conninfo);
}

std::string format_node_name(const std::string& hosts, const std::string& ports) {
    const std::vector<std::string> h = split_commas(hosts);
    const std::vector<std::string> p = split_commas(ports);
    std::string out;
    for (std::size_t i = 0; i < h.size(); ++i) {
        // libpq: one port for all hosts, or one port per host.
        const std::string& port = p.size() == h.size() ? p[i] : p.front();
        out += i ? "," : "";
        out += h[i].empty() ? "[local]" : h[i];
        out += ":" + (port.empty() ? std::string("5432") : port);
    }
    return out;
}

std::string conninfo_target(const ConninfoParams& params, const EnvLookup& env) {
    auto from_env = [&](const char* name) {
        const char* v = env(name);
        return std::string(v ? v : "");
    };
    std::string host = last_value(params, "host");
    if (host.empty()) {
        host = last_value(params, "hostaddr");
    }
    std::string service = last_value(params, "service");
    if (service.empty()) {
        service = from_env("PGSERVICE");
    }
    if (host.empty() && !service.empty()) {
        return "service " + service;
    }
    if (host.empty()) {
        host = from_env("PGHOST");
    }
    if (host.empty()) {
        host = from_env("PGHOSTADDR");
    }
    std::string port = last_value(params, "port");
    if (port.empty()) {
        port = from_env("PGPORT");
    }
    return format_node_name(host, port);
}

}  // namespace pgt::client
