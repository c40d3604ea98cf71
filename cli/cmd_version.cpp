// `pgtrickle version`: the CLI's version and, when a server is reachable, the server's
// PostgreSQL and pg_trickle versions. Never fails for want of a server.
#include <pqxx/except>
#include <pqxx/transaction>

#include "client/catalog.h"
#include "commands.h"
#include "context.h"

namespace pgt::cli {

namespace {

// A short wait: the version is printed whether or not a server answers.
constexpr int version_connect_timeout_s = 3;

// The server part of the report, or null when no server could be asked.
json::Value server_versions(const Context& ctx) {
    std::unique_ptr<client::Node> node;
    try {
        node = ctx.connect(version_connect_timeout_s);
    } catch (const std::exception& e) {
        const std::string why = e.what();
        ctx.console().info("server: not reachable: " + why.substr(0, why.find('\n')));
        return json::Value();
    }
    try {
        std::string server_version;
        {
            pqxx::read_transaction tx(node->conn());
            server_version =
                tx.exec1("SELECT pg_catalog.current_setting('server_version')")[0].c_str();
        }
        const client::ExtensionInfo ext = client::read_extension_info(*node);
        json::Value server = json::Value::object();
        server.set("node", node->name());
        server.set("server_version", server_version);
        server.set("database", ext.database);
        server.set("extension_version",
                   ext.installed ? json::Value(*ext.installed) : json::Value());
        return server;
    } catch (const pqxx::failure& e) {
        ctx.console().info(std::string("server: could not read versions (") + e.what() + ")");
        return json::Value();
    }
}

ExitCode run_version(const Context& ctx) {
    const std::string cli_version = PGTRICKLE_VERSION;
    const json::Value server = server_versions(ctx);
    if (ctx.console().json()) {
        json::Value doc = new_document("version");
        doc.set("version", cli_version);
        doc.set("server", server);
        doc.set("status", status_object(ExitCode::ok, "pgtrickle " + cli_version));
        ctx.console().document(doc);
        return ExitCode::ok;
    }
    std::string text = "pgtrickle " + cli_version + "\n";
    if (!server.is_null()) {
        const json::Value& ext = server["extension_version"];
        text += "server " + server["node"].as_string() + ": PostgreSQL " +
                server["server_version"].as_string() + ", pg_trickle " +
                (ext.is_null() ? std::string("not installed") : ext.as_string()) +
                " in database \"" + server["database"].as_string() + "\"\n";
    }
    ctx.console().out(text);
    return ExitCode::ok;
}

}  // namespace

void setup_version(CommandTree& tree) {
    tree.add_command("version",
                     "print the CLI version, and the server's versions when it is reachable",
                     run_version);
}

}  // namespace pgt::cli
