#include "context.h"

#include <cstdlib>

#include "client/catalog.h"
#include "client/node_connect.h"
#include "core/cli_format.h"

namespace pgt::cli {

Context::Context(const GlobalOptions& globals, std::string command)
    : globals_(globals),
      console_(format_from_name(globals.format), globals.verbose, globals.quiet),
      command_(std::move(command)) {}

std::unique_ptr<client::Node> Context::connect(int timeout_s) const {
    // Not overwriting: the user's PGCONNECT_TIMEOUT (or connect_timeout) wins.
    setenv("PGCONNECT_TIMEOUT", std::to_string(timeout_s).c_str(), 0);
    const client::ConnectionSpec spec =
        client::resolve_connection(globals_.dsn, std::getenv("PGTRICKLE_DSN"));
    const std::string target = client::describe_target(spec);
    console_.debug(
        "connecting to " + target + " (from " + client::origin_name(spec.origin) +
        (spec.conninfo.empty() ? std::string() : ": " + cli_format::mask_password(spec.conninfo)) +
        ")");
    auto node = client::Node::connect(spec, diagnostics());
    console_.debug("connected to " + node->name());
    return node;
}

client::Diagnostics Context::diagnostics() const {
    client::Diagnostics diag;
    diag.notice = [this](const std::string& msg) { console_.info(msg); };
    diag.trace = [this](const std::string& sql) { console_.debug("sql: " + sql); };
    return diag;
}

std::unique_ptr<client::Node> Context::connect_to_node(const std::string& host, int port,
                                                       const std::string& dbname) const {
    const client::ConnectionSpec spec = client::node_connection(
        client::resolve_connection(globals_.dsn, std::getenv("PGTRICKLE_DSN")), host, port, dbname,
        node_connect_timeout_s);
    console_.debug("connecting to " + host + ":" + std::to_string(port) + " (database " + dbname +
                   ")");
    auto node = client::connect_with_retry(
        spec, diagnostics(), client::ConnectRetry{},
        [this](const std::string& why) { console_.info(cli_format::one_line(why)); });
    console_.debug("connected to " + node->name());
    return node;
}

std::unique_ptr<client::Node> Context::connect_with_extension() const {
    auto node = connect();
    client::require_extension(*node);
    return node;
}

}  // namespace pgt::cli
