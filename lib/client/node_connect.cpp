#include "client/node_connect.h"

#include <chrono>
#include <random>
#include <thread>

#include "core/node_conninfo.h"

namespace pgt::client {

namespace {

// A value in a keyword=value connection string: single-quoted, \ and ' escaped.
std::string quote_value(const std::string& v) {
    std::string out = "'";
    for (const char c : v) {
        if (c == '\\' || c == '\'') {
            out += '\\';
        }
        out += c;
    }
    return out + "'";
}

}  // namespace

ConnectionSpec node_connection(const ConnectionSpec& coordinator, const std::string& host, int port,
                               const std::string& dbname, int connect_timeout_s) {
    ConninfoParams params;
    try {
        params = parse_conninfo(coordinator.conninfo);
    } catch (const ConninfoSyntaxError& e) {
        throw InvalidDsn(e.what(), coordinator.origin);
    }
    // The extension's defaults for connections between nodes (keepalives, tcp_user_timeout:
    // a node that vanishes is noticed), and a connect timeout, unless the user set them.
    node_conninfo::Options defaults = node_conninfo::connection_defaults();
    defaults["connect_timeout"] = std::to_string(connect_timeout_s);
    std::string out;
    for (const auto& [key, value] : params) {
        if (key == "host" || key == "hostaddr" || key == "port" || key == "dbname") {
            continue;
        }
        defaults.erase(key);
        out += key + "=" + quote_value(value) + " ";
    }
    out += "host=" + quote_value(host) + " port=" + std::to_string(port) +
           " dbname=" + quote_value(dbname);
    for (const auto& [key, value] : defaults) {
        out += " " + key + "=" + quote_value(value);
    }
    return {out, DsnOrigin::cluster_node};
}

std::unique_ptr<Node> connect_with_retry(const ConnectionSpec& spec, const Diagnostics& diag,
                                         const ConnectRetry& retry,
                                         const std::function<void(const std::string&)>& on_retry) {
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + std::chrono::milliseconds(retry.total_ms);
    std::mt19937 rng(std::random_device{}());
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    for (int attempt = 1;; ++attempt) {
        try {
            return Node::connect(spec, diag);
        } catch (const ConnectionError& e) {
            const int64_t delay = retry::delay_ms(retry.policy, attempt, unit(rng));
            const int64_t remaining =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now())
                    .count();
            if (!retry::another_attempt(retry.policy, attempt, remaining, delay)) {
                throw;
            }
            if (on_retry) {
                on_retry(std::string(e.what()) + " (attempt " + std::to_string(attempt) + " of " +
                         std::to_string(retry.policy.max_attempts) + ", retrying in " +
                         std::to_string(delay) + " ms)");
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(delay));
        }
    }
}

}  // namespace pgt::client
