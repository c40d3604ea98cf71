#include "core/node_conninfo.h"

namespace pgt::node_conninfo {

int32_t authinfo_node_id(int32_t nodeid, bool loopback) {
    return loopback ? loopback_node_id : nodeid;
}

bool is_loopback(const std::string& host, int port, const std::string& local_hostname,
                 int local_port) {
    return host == local_hostname && port == local_port;
}

std::optional<std::string> pick_authinfo(const std::vector<std::pair<int32_t, std::string>>& rows,
                                         int32_t node_id) {
    std::optional<std::string> wildcard;
    for (const auto& [id, authinfo] : rows) {
        if (id == node_id) {
            return authinfo;
        }
        if (id == wildcard_node_id) {
            wildcard = authinfo;
        }
    }
    return wildcard;
}

Options connection_defaults() {
    return {{"keepalives", "1"},
            {"keepalives_idle", "10"},
            {"keepalives_interval", "5"},
            {"keepalives_count", "3"},
            {"tcp_user_timeout", "30000"}};
}

Options merge(const Target& target, const Options& node_conninfo, const Options& authinfo,
              const Options& defaults) {
    Options out;
    const auto put = [&out](const std::string& key, const std::string& value) {
        if (!value.empty()) {
            out[key] = value;
        }
    };
    for (const auto& [key, value] : node_conninfo) {
        put(key, value);
    }
    // With a host from node_conninfo the node's address is the one to connect to, and the
    // configured host name remains for the checks that need one (sslmode=verify-full, GSS).
    const bool configured_host = out.count("host") > 0;
    for (const auto& [key, value] : defaults) {
        if (out.count(key) == 0) {
            put(key, value);
        }
    }
    put(configured_host ? "hostaddr" : "host", target.host);
    put("port", std::to_string(target.port));
    put("dbname", target.dbname);
    put("user", target.user);
    put("client_encoding", target.client_encoding);
    put("application_name", target.application_name);
    for (const auto& [key, value] : authinfo) {
        put(key, value);
    }
    return out;
}

}  // namespace pgt::node_conninfo
