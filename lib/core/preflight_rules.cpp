#include "core/preflight_rules.h"

#include <algorithm>
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
        case Status::skip:
            return "skip";
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
    return preloads_library(shared_preload_libraries, "pg_trickle");
}

bool preloads_library(std::string_view shared_preload_libraries, std::string_view wanted) {
    for (const std::string& lib : split_setting_list(shared_preload_libraries)) {
        std::string_view base = lib;
        auto slash = base.rfind('/');
        if (slash != std::string_view::npos) {
            base.remove_prefix(slash + 1);
        }
        if (base.size() > 3 && base.substr(base.size() - 3) == ".so") {
            base.remove_suffix(3);
        }
        if (base == wanted) {
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

bool is_connection_error(std::string_view result) {
    std::string lower;
    for (char c : result) {
        lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    for (const char* sign :
         {"connect", "connection", "timeout expired", "timed out", "could not translate host name",
          "no route to host", "network is unreachable", "server closed the connection"}) {
        if (lower.find(sign) != std::string::npos) {
            return true;
        }
    }
    return false;
}

Check check_citus_preload(const NodeFacts& f, NodeRole role) {
    const std::string shown = f.shared_preload_libraries.empty()
                                  ? std::string("empty")
                                  : "'" + f.shared_preload_libraries + "'";
    Check c{"shared_preload_libraries", Status::pass, "shared_preload_libraries is " + shown, ""};
    const bool citus = preloads_library(f.shared_preload_libraries, "citus");
    const bool trickle = preloads_pg_trickle(f.shared_preload_libraries);
    const bool need_trickle = role == NodeRole::coordinator;
    if (citus && (trickle || !need_trickle)) {
        return c;
    }
    // Citus must come first; the other libraries are kept in their order.
    std::string wanted = "citus";
    for (const std::string& lib : split_setting_list(f.shared_preload_libraries)) {
        if (!preloads_library(lib, "citus")) {
            wanted += "," + list_element(lib);
        }
    }
    if (need_trickle && !trickle) {
        wanted += ",pg_trickle";
    }
    c.status = Status::fail;
    if (!citus) {
        c.detail += "; citus is not preloaded";
    }
    if (need_trickle && !trickle) {
        c.detail += "; pg_trickle is not preloaded, so its scheduler does not poll the workers";
    }
    c.hint = "Run ALTER SYSTEM SET shared_preload_libraries = '" + wanted +
             "'; on this node (or edit postgresql.conf), then restart it.";
    return c;
}

Check check_citus_version(const NodeFacts& f, const NodeFacts& coordinator, NodeRole role) {
    if (!f.citus_version) {
        return {"citus_version", Status::fail, "the citus extension is not installed",
                "Install Citus and run CREATE EXTENSION citus; on this node, then add it with "
                "citus_add_node() on the coordinator."};
    }
    Check c{"citus_version", Status::pass, "citus " + *f.citus_version, ""};
    if (role == NodeRole::worker && coordinator.citus_version &&
        *coordinator.citus_version != *f.citus_version) {
        c.status = Status::fail;
        c.detail += ", the coordinator has citus " + *coordinator.citus_version;
        c.hint =
            "Install the coordinator's Citus release on this worker and run ALTER EXTENSION "
            "citus UPDATE; so every node runs citus " +
            *coordinator.citus_version + ".";
    }
    return c;
}

Check check_worker_extension(const NodeFacts& worker, const NodeFacts& coordinator) {
    // Compare what is installed, else what CREATE EXTENSION would install.
    const auto version_of = [](const NodeFacts& f) {
        return f.extension_version ? f.extension_version : f.extension_default_version;
    };
    const std::optional<std::string> mine = version_of(worker);
    const std::optional<std::string> theirs = version_of(coordinator);
    const std::string state =
        worker.extension_version ? " installed" : " available (not installed)";
    if (!mine) {
        Check c{"extension", Status::fail, "pg_trickle is not installed on this worker", ""};
        c.hint = "Install the pg_trickle " + theirs.value_or(std::string(PGTRICKLE_VERSION)) +
                 " package on this worker; Citus creates the extension on the workers when it "
                 "is created on the coordinator.";
        return c;
    }
    Check c{"extension", Status::pass, "pg_trickle " + *mine + state, ""};
    if (theirs && compare_versions(*mine, *theirs) != 0) {
        c.status = Status::fail;
        c.detail += ", the coordinator has " + *theirs;
        // Installed at another version: a migration that did not finish on every node.
        c.hint = worker.extension_version
                     ? "Install the same pg_trickle package on every node, then run pgtrickle "
                       "migrate against the coordinator: it moves every node to one version, "
                       "one transaction per node."
                     : "Install pg_trickle " + *theirs + " on this worker.";
    } else if (theirs) {
        c.detail += ", as on the coordinator";
        // The same catalog, but another package (library and scripts): half of an upgrade.
        if (worker.extension_version && worker.extension_default_version &&
            coordinator.extension_default_version &&
            *worker.extension_default_version != *coordinator.extension_default_version) {
            c.status = Status::fail;
            c.detail += ", but this node's pg_trickle package is " +
                        *worker.extension_default_version + " and the coordinator's " +
                        *coordinator.extension_default_version;
            c.hint =
                "Install the same pg_trickle package on every node and restart it (the "
                "library is preloaded), then run pgtrickle migrate against the "
                "coordinator.";
        }
    }
    return c;
}

Check check_citus_wal_level(const NodeFacts& f) {
    Check c{"wal_level", Status::pass, "wal_level is '" + f.wal_level + "'", ""};
    if (f.wal_level != "logical") {
        c.status = Status::fail;
        c.detail += "; distributed sources are captured from logical replication slots";
        c.hint = "Run ALTER SYSTEM SET wal_level = logical; on this node, then restart it.";
    }
    return c;
}

Check check_replication_slots(const NodeFacts& f) {
    const int free = f.max_replication_slots - f.used_replication_slots;
    Check c{"replication_slots", Status::pass,
            std::to_string(std::max(free, 0)) + " of max_replication_slots " +
                std::to_string(f.max_replication_slots) + " free (" +
                std::to_string(f.pgtrickle_replication_slots) + " used by pg_trickle)",
            ""};
    if (free > 0) {
        return c;
    }
    c.status = f.pgtrickle_replication_slots > 0 ? Status::warn : Status::fail;
    c.detail += f.pgtrickle_replication_slots > 0
                    ? "; a new distributed source needs one more slot on this node"
                    : "; pg_trickle needs a slot on this node for each distributed source";
    c.hint = "Raise max_replication_slots (ALTER SYSTEM SET max_replication_slots = " +
             std::to_string(f.max_replication_slots + 10) +
             ";) and restart, or drop unused slots (pg_drop_replication_slot).";
    return c;
}

Check check_wal_senders(const NodeFacts& f) {
    const int free = f.max_wal_senders - f.used_wal_senders;
    Check c{"wal_senders", Status::pass,
            std::to_string(std::max(free, 0)) + " of max_wal_senders " +
                std::to_string(f.max_wal_senders) + " free",
            ""};
    if (free <= 0) {
        c.status = Status::warn;
        c.detail +=
            "; pg_trickle reads its slots over ordinary connections, but replicas and "
            "subscriptions of this node need WAL senders";
        c.hint = "Raise max_wal_senders (ALTER SYSTEM SET max_wal_senders = " +
                 std::to_string(f.max_wal_senders + 10) + ";) and restart.";
    }
    return c;
}

Check check_output_plugins(const NodeFacts& f) {
    if (!f.output_plugin_libraries) {
        return {"output_plugins", Status::pass,
                "no output_plugin_libraries setting: every output plugin may load", ""};
    }
    const std::string& libs = *f.output_plugin_libraries;
    Check c{"output_plugins", Status::pass, "output_plugin_libraries is '" + libs + "'", ""};
    if (preloads_library(libs, "pgoutput")) {
        return c;
    }
    std::string wanted;
    for (const std::string& lib : split_setting_list(libs)) {
        wanted += list_element(lib) + ", ";
    }
    wanted += "pgoutput";
    c.status = Status::fail;
    c.detail += "; pgoutput, which pg_trickle decodes worker slots with, may not load";
    c.hint = "Run ALTER SYSTEM SET output_plugin_libraries = '" + wanted +
             "'; on this node, then SELECT pg_reload_conf();.";
    return c;
}

Check check_citus_cdc(const NodeFacts& f) {
    const std::string shown = f.citus_cdc.empty() ? std::string("unknown") : f.citus_cdc;
    Check c{"citus_cdc", Status::pass, "citus.enable_change_data_capture is " + shown, ""};
    if (f.citus_cdc != "on") {
        c.status = Status::fail;
        c.detail +=
            "; without it changes are reported by shard name and shard moves replay as new "
            "rows";
        c.hint =
            "Run ALTER SYSTEM SET citus.enable_change_data_capture = on; on every node, then "
            "restart them.";
    }
    return c;
}

Check check_replica_identity(const std::optional<std::vector<DistributedSource>>& sources) {
    if (!sources) {
        return {"replica_identity", Status::skip,
                "pg_trickle is not installed in this database, so there are no distributed "
                "sources to check yet",
                ""};
    }
    std::string bad;
    for (const DistributedSource& s : *sources) {
        if (s.replica_identity != 'f') {
            bad += (bad.empty() ? "" : ", ") + s.name;
        }
    }
    const std::string count =
        std::to_string(sources->size()) +
        (sources->size() == 1 ? " distributed source" : " distributed sources");
    if (bad.empty()) {
        return {"replica_identity", Status::pass,
                sources->empty() ? "no distributed sources" : count + " with REPLICA IDENTITY FULL",
                ""};
    }
    std::string hint = "Run";
    for (const DistributedSource& s : *sources) {
        if (s.replica_identity != 'f') {
            hint += " ALTER TABLE " + s.name + " REPLICA IDENTITY FULL;";
        }
    }
    return {"replica_identity", Status::fail,
            "without REPLICA IDENTITY FULL (updates and deletes lose old values): " + bad,
            hint + " on the coordinator (it reaches every shard)."};
}

Check check_reachable(const std::optional<std::string>& connection_error) {
    if (!connection_error) {
        return {"reachable", Status::pass, "reached from the coordinator (run_command_on_workers)",
                ""};
    }
    return {"reachable", Status::fail,
            "the coordinator cannot reach this worker: " + *connection_error,
            "Start the worker or fix the network, or its entry in pg_dist_node / pg_dist_authinfo "
            "(the coordinator connects with Citus's own credentials); to retire it, run "
            "citus_disable_node() on the coordinator."};
}

std::vector<Check> evaluate_coordinator(
    const NodeFacts& f, const std::optional<std::vector<DistributedSource>>& sources,
    std::string_view cli_version) {
    return {check_server_version(f),
            check_citus_version(f, f, NodeRole::coordinator),
            check_citus_preload(f, NodeRole::coordinator),
            check_extension(f, cli_version),
            check_citus_wal_level(f),
            check_replication_slots(f),
            check_wal_senders(f),
            check_output_plugins(f),
            check_citus_cdc(f),
            check_replica_identity(sources)};
}

std::vector<Check> evaluate_worker(const NodeFacts& worker, const NodeFacts& coordinator) {
    return {check_reachable(std::nullopt),
            check_server_version(worker),
            check_citus_version(worker, coordinator, NodeRole::worker),
            check_citus_preload(worker, NodeRole::worker),
            check_worker_extension(worker, coordinator),
            check_citus_wal_level(worker),
            check_replication_slots(worker),
            check_wal_senders(worker),
            check_output_plugins(worker),
            check_citus_cdc(worker)};
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
        case Status::skip:
            ++skip;
            break;
    }
}

}  // namespace pgt::preflight
