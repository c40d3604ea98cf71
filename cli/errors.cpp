#include "errors.h"

#include <iostream>

#include <pqxx/except>

#include "client/catalog.h"
#include "client/connection.h"
#include "client/server_error.h"
#include "core/json.h"

namespace pgt::cli {

namespace {

// A failure ready to report: exit code, message and optional extra status fields.
struct Failure {
    Failure(ExitCode c, std::string m) : code(c), message(std::move(m)) {}
    ExitCode code;
    std::string message;
    json::Value extra = json::Value::object();      // merged into the status object
    std::string position;                           // "LINE n: ..." excerpt, stderr only
    std::optional<client::QueryLocation> location;  // the position within the user's query
};

void set_if(json::Value& obj, const char* key, const std::string& value) {
    obj.set(key, value.empty() ? json::Value() : json::Value(value));
}

Failure sql_failure(const client::ServerError& e) {
    Failure f{ExitCode::sql_error, e.message};
    f.position = e.position;
    f.extra.set("sqlstate", e.sqlstate);
    set_if(f.extra, "detail", e.detail);
    set_if(f.extra, "hint", e.hint);
    set_if(f.extra, "context", e.context);
    f.location = e.location;
    if (e.location) {
        json::Value pos = json::Value::object();
        pos.set("line", e.location->line);
        pos.set("column", e.location->column);
        pos.set("character", e.location->character);
        pos.set("excerpt", e.location->excerpt);
        f.extra.set("position", std::move(pos));
    }
    return f;
}

Failure classify_current_exception() {
    try {
        throw;
    } catch (const UsageError& e) {
        return {ExitCode::usage, e.what()};
    } catch (const CommandError& e) {
        Failure f{e.code(), e.what()};
        if (!e.hint().empty()) {
            f.extra.set("hint", e.hint());
        }
        return f;
    } catch (const client::InvalidDsn& e) {
        return {e.origin() == client::DsnOrigin::flag ? ExitCode::usage : ExitCode::configuration,
                e.what()};
    } catch (const client::ConnectionError& e) {
        Failure f{ExitCode::connection, e.what()};
        f.extra.set("node", e.node());
        f.extra.set("hint", e.hint());
        return f;
    } catch (const client::ExtensionMissing& e) {
        Failure f{ExitCode::configuration, e.what()};
        f.extra.set("hint", "Run CREATE EXTENSION pg_trickle; in database \"" + e.database() +
                                "\" (pgtrickle preflight checks the whole setup).");
        return f;
    } catch (const client::NotFound& e) {
        return {ExitCode::failure, e.what()};
    } catch (const pqxx::broken_connection& e) {
        std::string msg = e.what();
        while (!msg.empty() && msg.back() == '\n') {
            msg.pop_back();
        }
        return {ExitCode::connection, "lost the connection to the server: " + msg};
    } catch (const ServerFailure& e) {
        return sql_failure(e.error());
    } catch (const pqxx::sql_error& e) {
        return sql_failure(client::from_sql_error(e));
    } catch (const std::exception& e) {
        return {ExitCode::internal, std::string("internal error: ") + e.what()};
    } catch (...) {
        return {ExitCode::internal, "internal error: unknown exception"};
    }
}

void emit(const Console& console, const std::string& command, const Failure& f) {
    const json::Value* sqlstate = f.extra.find("sqlstate");
    console.error(f.message +
                  (sqlstate ? " (SQLSTATE " + sqlstate->as_string() + ")" : std::string()));
    if (f.location) {
        console.error_field("position", "line " + std::to_string(f.location->line) + ", column " +
                                            std::to_string(f.location->column) + " of the query\n" +
                                            f.location->excerpt);
    } else if (!f.position.empty()) {
        console.error_field("position", f.position);
    }
    for (const char* field : {"detail", "hint", "context"}) {
        if (const json::Value* v = f.extra.find(field); v && v->is_string()) {
            console.error_field(field, v->as_string());
        }
    }
    if (console.json()) {
        json::Value doc = new_document(command);
        json::Value status = status_object(f.code, f.message);
        for (const auto& [key, value] : f.extra.as_object()) {
            status.set(key, value);
        }
        doc.set("status", std::move(status));
        console.document(doc);
    }
}

// The hint of every usage error.
std::string usage_hint(const std::string& command) {
    return "Run pgtrickle " + (command.empty() ? std::string() : command + " ") +
           "--help for usage.";
}

bool json_requested(int argc, const char* const* argv) {
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--format=json" ||
            (arg == "--format" && i + 1 < argc && std::string(argv[i + 1]) == "json")) {
            return true;
        }
    }
    return false;
}

}  // namespace

void rethrow_in_query(client::Node& node, const pqxx::sql_error& e, const std::string& query) {
    client::ServerError err = client::from_sql_error(e);
    std::optional<client::ServerError> located;
    try {
        // The query is parsed as the failed statement parsed it: with the user's search_path.
        const client::UserSearchPath user(node);
        located = client::locate_query_error(node.conn(), query);
    } catch (const std::exception&) {
        // Locating is a nicety: report the original error whatever went wrong here.
    }
    if (located && located->sqlstate == err.sqlstate && located->message == err.message) {
        err.position = located->position;
        err.location = located->location;
    } else {
        err.position.clear();  // it would point into the statement, not the query
    }
    throw ServerFailure(std::move(err));
}

ExitCode report_current_exception(const Context& ctx) {
    Failure f = classify_current_exception();
    if (f.code == ExitCode::usage && !f.extra.find("hint")) {
        f.extra.set("hint", usage_hint(ctx.command()));
    }
    emit(ctx.console(), ctx.command(), f);
    return f.code;
}

ExitCode report_parse_error(CommandTree& tree, const CLI::ParseError& e, int argc,
                            const char* const* argv) {
    if (e.get_exit_code() == 0) {  // --help and friends
        tree.app().exit(e, std::cout, std::cerr);
        return ExitCode::ok;
    }
    const Console console(json_requested(argc, argv) ? Format::json : Format::table, 0, false);
    std::string command;
    for (const CLI::App* sub : tree.commands()) {
        if (sub->parsed()) {
            command = sub->get_name();
        }
    }
    Failure f{ExitCode::usage, e.what()};
    f.extra.set("hint", usage_hint(command));
    emit(console, command, f);
    return ExitCode::usage;
}

}  // namespace pgt::cli
