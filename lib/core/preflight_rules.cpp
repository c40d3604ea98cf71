#include "core/preflight_rules.h"

#include <cctype>

namespace pgt::preflight {

namespace {

bool is_blank(char c) {
    return std::isspace(static_cast<unsigned char>(c)) != 0;
}

bool is_digits(std::string_view s) {
    if (s.empty()) {
        return false;
    }
    for (char c : s) {
        if (!std::isdigit(static_cast<unsigned char>(c))) {
            return false;
        }
    }
    return true;
}

std::string_view next_part(std::string_view& rest) {
    auto dot = rest.find('.');
    std::string_view part = rest.substr(0, dot);
    rest = dot == std::string_view::npos ? std::string_view() : rest.substr(dot + 1);
    return part;
}

// Quotes a list element for shared_preload_libraries if it needs it.
std::string list_element(const std::string& e) {
    for (char c : e) {
        if (c == ',' || c == '"' || is_blank(c)) {
            std::string quoted = "\"";
            for (char q : e) {
                quoted += q;
                if (q == '"') {
                    quoted += '"';
                }
            }
            return quoted + "\"";
        }
    }
    return e;
}

}  // namespace

const char* status_name(Status s) {
    switch (s) {
        case Status::pass:
            return "pass";
        case Status::warn:
            return "warn";
        case Status::fail:
            return "fail";
    }
    return "fail";
}

const char* role_name(NodeRole r) {
    switch (r) {
        case NodeRole::single:
            return "single";
        case NodeRole::coordinator:
            return "coordinator";
        case NodeRole::worker:
            return "worker";
    }
    return "single";
}

std::vector<std::string> split_setting_list(std::string_view value) {
    std::vector<std::string> out;
    std::size_t i = 0;
    const std::size_t n = value.size();
    while (i < n) {
        while (i < n && is_blank(value[i])) {
            ++i;
        }
        if (i == n) {
            break;
        }
        std::string elem;
        if (value[i] == '"') {
            // Quoted element; a doubled quote stands for one quote.
            ++i;
            while (i < n) {
                if (value[i] == '"') {
                    if (i + 1 < n && value[i + 1] == '"') {
                        elem += '"';
                        i += 2;
                        continue;
                    }
                    ++i;
                    break;
                }
                elem += value[i++];
            }
            while (i < n && value[i] != ',') {
                ++i;
            }
        } else {
            while (i < n && value[i] != ',') {
                elem += value[i++];
            }
            while (!elem.empty() && is_blank(elem.back())) {
                elem.pop_back();
            }
        }
        if (!elem.empty()) {
            out.push_back(std::move(elem));
        }
        if (i < n) {
            ++i;  // the comma
        }
    }
    return out;
}

bool preloads_pg_trickle(std::string_view shared_preload_libraries) {
    for (const std::string& lib : split_setting_list(shared_preload_libraries)) {
        std::string_view base = lib;
        auto slash = base.rfind('/');
        if (slash != std::string_view::npos) {
            base.remove_prefix(slash + 1);
        }
        if (base.size() > 3 && base.substr(base.size() - 3) == ".so") {
            base.remove_suffix(3);
        }
        if (base == "pg_trickle") {
            return true;
        }
    }
    return false;
}

int compare_versions(std::string_view a, std::string_view b) {
    while (!a.empty() || !b.empty()) {
        std::string_view pa = next_part(a);
        std::string_view pb = next_part(b);
        if (is_digits(pa) && is_digits(pb)) {
            // Compare as numbers without overflow: strip leading zeros, longer is larger.
            while (pa.size() > 1 && pa.front() == '0') {
                pa.remove_prefix(1);
            }
            while (pb.size() > 1 && pb.front() == '0') {
                pb.remove_prefix(1);
            }
            if (pa.size() != pb.size()) {
                return pa.size() < pb.size() ? -1 : 1;
            }
        }
        if (int c = pa.compare(pb); c != 0) {
            return c < 0 ? -1 : 1;
        }
    }
    return 0;
}

Check check_server_version(const NodeFacts& f) {
    Check c{"server_version", Status::pass, "PostgreSQL " + f.server_version, ""};
    if (f.server_version_num < 150000 || f.server_version_num >= 160000) {
        c.status = Status::fail;
        c.detail += " (server_version_num " + std::to_string(f.server_version_num) +
                    "); pg_trickle 0.35 requires PostgreSQL 15";
        c.hint = "Run pg_trickle on a PostgreSQL 15 server, or upgrade this one with pg_upgrade.";
    }
    return c;
}

Check check_preload(const NodeFacts& f) {
    const std::string shown = f.shared_preload_libraries.empty()
                                  ? std::string("empty")
                                  : "'" + f.shared_preload_libraries + "'";
    Check c{"shared_preload_libraries", Status::pass, "shared_preload_libraries is " + shown, ""};
    if (preloads_pg_trickle(f.shared_preload_libraries)) {
        return c;
    }
    std::string wanted;
    for (const std::string& lib : split_setting_list(f.shared_preload_libraries)) {
        wanted += list_element(lib) + ",";
    }
    wanted += "pg_trickle";
    c.status = Status::fail;
    c.detail += "; pg_trickle is not preloaded, so its scheduler does not run";
    c.hint = "Run ALTER SYSTEM SET shared_preload_libraries = '" + wanted +
             "'; (or edit postgresql.conf), then restart the server.";
    return c;
}

Check check_extension(const NodeFacts& f, std::string_view cli_version) {
    const std::string cli(cli_version);
    const std::string where = " in database \"" + f.database + "\"";
    if (!f.extension_version) {
        Check c{"extension", Status::warn, "pg_trickle is not installed" + where, ""};
        if (f.extension_available) {
            c.hint = "Run CREATE EXTENSION pg_trickle; in that database.";
        } else {
            c.detail += ", and its files are not installed on the server";
            c.hint = "Install the pg_trickle " + cli +
                     " package on the server, then run CREATE EXTENSION pg_trickle;.";
        }
        return c;
    }
    const std::string& installed = *f.extension_version;
    Check c{"extension", Status::pass, "pg_trickle " + installed + " installed" + where, ""};
    const int cmp = compare_versions(installed, cli);
    if (cmp == 0) {
        return c;
    }
    c.status = Status::fail;
    c.detail += "; this pgtrickle CLI is " + cli;
    if (cmp < 0) {
        c.hint =
            "Upgrade the extension: pgtrickle migrate (or ALTER EXTENSION pg_trickle "
            "UPDATE TO '" +
            cli + "';).";
    } else {
        c.hint = "Use the pgtrickle CLI " + installed + " with this server.";
    }
    return c;
}

Check check_wal_level(const NodeFacts& f) {
    Check c{"wal_level", Status::pass, "wal_level is '" + f.wal_level + "'", ""};
    if (f.wal_level != "logical") {
        c.status = Status::warn;
        c.detail +=
            "; WAL-based capture (cdc_mode 'wal') needs 'logical', trigger capture "
            "works without it";
        c.hint =
            "To use WAL capture: ALTER SYSTEM SET wal_level = logical; then restart the "
            "server.";
    }
    return c;
}

std::vector<Check> evaluate_single_node(const NodeFacts& f, std::string_view cli_version) {
    return {check_server_version(f), check_preload(f), check_extension(f, cli_version),
            check_wal_level(f)};
}

void Summary::add(Status s) {
    switch (s) {
        case Status::pass:
            ++pass;
            break;
        case Status::warn:
            ++warn;
            break;
        case Status::fail:
            ++fail;
            break;
    }
}

}  // namespace pgt::preflight
