#include "client/connection.h"

#include <pqxx/errorhandler>
#include <pqxx/except>
#include <pqxx/nontransaction>

#include <cstdlib>

namespace pgt::client {

namespace {

// Trailing newlines of libpq messages are noise in our messages.
std::string trim_trailing(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) {
        s.pop_back();
    }
    return s;
}

}  // namespace

const char* origin_name(DsnOrigin o) {
    switch (o) {
        case DsnOrigin::flag:
            return "--dsn";
        case DsnOrigin::env:
            return "PGTRICKLE_DSN";
        case DsnOrigin::libpq_defaults:
            return "libpq defaults";
        case DsnOrigin::cluster_node:
            return "pg_dist_node, with the coordinator's connection settings";
    }
    return "";
}

ConnectionSpec resolve_connection(const std::optional<std::string>& flag_dsn, const char* env_dsn) {
    if (flag_dsn) {
        return {*flag_dsn, DsnOrigin::flag};
    }
    if (env_dsn && *env_dsn) {
        return {env_dsn, DsnOrigin::env};
    }
    return {"", DsnOrigin::libpq_defaults};
}

std::string describe_target(const ConnectionSpec& spec) {
    try {
        return conninfo_target(parse_conninfo(spec.conninfo), [](const char* name) {
            return static_cast<const char*>(std::getenv(name));
        });
    } catch (const ConninfoSyntaxError& e) {
        throw InvalidDsn("invalid connection string from " + std::string(origin_name(spec.origin)) +
                             ": " + e.what(),
                         spec.origin);
    }
}

std::string pin_search_path(pqxx::connection_base& conn) {
    std::string before;
    {
        // Fully qualified: safe whatever the search_path is.
        pqxx::nontransaction tx(conn);
        before = tx.exec1("SELECT pg_catalog.current_setting('search_path')")[0].c_str();
    }
    // A session variable of libpqxx's: set now, and again first thing on a connection that
    // libpqxx re-establishes after losing it.
    conn.set_variable("search_path", pinned_search_path);
    return before;
}

class Node::NoticeForwarder : public pqxx::errorhandler {
  public:
    NoticeForwarder(pqxx::connection_base& c, std::function<void(const std::string&)> sink)
        : pqxx::errorhandler(c), sink_(std::move(sink)) {}
    bool operator()(const char msg[]) noexcept override {
        try {
            sink_(trim_trailing(msg));
        } catch (...) {  // a notice must never take the program down
        }
        return false;
    }

  private:
    std::function<void(const std::string&)> sink_;
};

Node::Node(std::string name, std::unique_ptr<pqxx::connection> conn, Diagnostics diag)
    : name_(std::move(name)), conn_(std::move(conn)), diag_(std::move(diag)) {
    if (diag_.notice) {
        notices_ = std::make_unique<NoticeForwarder>(*conn_, diag_.notice);
    }
}

Node::~Node() = default;

std::unique_ptr<Node> Node::connect(const ConnectionSpec& spec, Diagnostics diag) {
    const std::string target = describe_target(spec);  // validates the string first
    std::unique_ptr<pqxx::connection> conn;
    try {
        conn = std::make_unique<pqxx::connection>(spec.conninfo);
    } catch (const pqxx::broken_connection& e) {
        throw ConnectionError(
            "could not connect to " + target + " (target from " + origin_name(spec.origin) +
                "): " + trim_trailing(e.what()),
            target,
            "Check that PostgreSQL is running on " + target +
                " and accepts connections from this host for this user and database, or "
                "choose another target with --dsn, PGTRICKLE_DSN or PGHOST/PGPORT.");
    }
    const char* host = conn->hostname();
    const char* port = conn->port();
    std::string name = format_node_name(host ? host : "", port ? port : "");
    std::unique_ptr<Node> node(new Node(std::move(name), std::move(conn), std::move(diag)));
    node->trace(std::string("SET search_path = ") + pinned_search_path);
    try {
        node->user_search_path_ = pin_search_path(*node->conn_);
    } catch (const pqxx::broken_connection& e) {
        throw ConnectionError("lost the connection to " + node->name() +
                                  " right after connecting: " + trim_trailing(e.what()),
                              node->name(), "Check the server's log on " + node->name() + ".");
    }
    return node;
}

void Node::trace(const std::string& sql) const {
    if (diag_.trace) {
        diag_.trace(sql);
    }
}

namespace {

// Sets the session's search_path (outside any transaction).
void set_search_path(Node& node, const std::string& path) {
    const std::string sql = "SELECT pg_catalog.set_config('search_path', $1, false)";
    node.trace(sql + " -- " + path);
    pqxx::nontransaction tx(node.conn());
    tx.exec_params(sql, path);
}

}  // namespace

UserSearchPath::UserSearchPath(Node& node) : node_(node) {
    set_search_path(node_, node_.user_search_path());
}

UserSearchPath::~UserSearchPath() {
    try {
        set_search_path(node_, pinned_search_path);
    } catch (...) {
        // Not pinned again: close the session. (A connection libpqxx re-establishes later is
        // pinned again first, from its session variables.)
        node_.conn().disconnect();
    }
}

}  // namespace pgt::client
