// Stream-table lifecycle: `create`, `alter`, `drop` and `refresh`, each one CALL of the
// extension's SQL API (refresh --all: one per stream table, upstream ones first).
#include <memory>

#include "client/node_probe.h"
#include "client/stream_tables.h"
#include "commands.h"
#include "context.h"
#include "core/cli_format.h"
#include "errors.h"

namespace pgt::cli {

namespace {

const std::vector<std::string> refresh_modes = {"auto", "differential", "full"};

// The document or line reporting that name was changed by command.
ExitCode report_done(const Context& ctx, const std::string& name, const std::string& message) {
    if (ctx.console().json()) {
        json::Value doc = new_document(ctx.command());
        doc.set("stream_table", name);
        doc.set("status", status_object(ExitCode::ok, message));
        ctx.console().document(doc);
    } else {
        ctx.console().out(message + "\n");
    }
    return ExitCode::ok;
}

struct CreateOptions {
    client::CreateRequest req;
    bool no_initialize = false;
};

void setup_create(CommandTree& tree) {
    auto opt = std::make_shared<CreateOptions>();
    CLI::App* cmd =
        tree.add_command("create", "create a stream table from a query", [opt](const Context& ctx) {
            opt->req.initialize = !opt->no_initialize;
            auto node = ctx.connect_with_extension();
            try {
                client::create_stream_table(*node, opt->req);
            } catch (const pqxx::sql_error& e) {
                rethrow_in_query(*node, e, opt->req.query);
            }
            return report_done(ctx, opt->req.name, "created stream table " + opt->req.name);
        });
    cmd->add_option("name", opt->req.name, "stream table name, optionally schema-qualified")
        ->required();
    cmd->add_option("--query", opt->req.query, "the defining query (SQL)")->required();
    cmd->add_option("--schedule", opt->req.schedule,
                    "how often to refresh, e.g. 5s or 1m (default: only on demand)");
    tree.restrict_to(
        cmd->add_option("--mode", opt->req.refresh_mode, "refresh mode (default: auto)"),
        refresh_modes);
    cmd->add_flag("--no-initialize", opt->no_initialize,
                  "create empty; the first refresh populates it");
    cmd->add_option("--distribution-column", opt->req.distribution_column,
                    "Citus: store it as a table distributed by this column");
}

void setup_alter(CommandTree& tree) {
    auto req = std::make_shared<client::AlterRequest>();
    CLI::App* cmd = tree.add_command(
        "alter", "change a stream table's query, schedule, mode or status",
        [req](const Context& ctx) {
            if (!req->changes_anything()) {
                throw UsageError("nothing to change: give --query, --schedule, --mode or --status");
            }
            auto node = ctx.connect_with_extension();
            try {
                client::alter_stream_table(*node, *req);
            } catch (const pqxx::sql_error& e) {
                if (!req->query) {
                    throw;
                }
                rethrow_in_query(*node, e, *req->query);
            }
            return report_done(ctx, req->name, "altered stream table " + req->name);
        });
    cmd->add_option("name", req->name, "stream table name, optionally schema-qualified")
        ->required();
    cmd->add_option("--query", req->query, "new defining query (SQL)");
    cmd->add_option("--schedule", req->schedule, "new refresh schedule, e.g. 30s");
    tree.restrict_to(cmd->add_option("--mode", req->refresh_mode, "new refresh mode"),
                     refresh_modes);
    tree.restrict_to(
        cmd->add_option("--status", req->status, "suspend or resume scheduled refreshes"),
        {"active", "suspended"});
}

struct DropOptions {
    std::string name;
    bool cascade = false;
};

void setup_drop(CommandTree& tree) {
    auto opt = std::make_shared<DropOptions>();
    CLI::App* cmd =
        tree.add_command("drop", "drop a stream table and its storage", [opt](const Context& ctx) {
            auto node = ctx.connect_with_extension();
            client::drop_stream_table(*node, opt->name, opt->cascade);
            return report_done(ctx, opt->name, "dropped stream table " + opt->name);
        });
    cmd->add_option("name", opt->name, "stream table name, optionally schema-qualified")
        ->required();
    cmd->add_flag("--cascade", opt->cascade, "also drop stream tables that read this one");
}

struct RefreshOptions {
    std::optional<std::string> name;
    bool all = false;
    bool full = false;
};

json::Value result_json(const client::RefreshResult& r) {
    json::Value v = json::Value::object();
    v.set("name", r.name);
    v.set("ok", r.ok);
    v.set("seconds", r.seconds);
    if (r.error) {
        json::Value err = json::Value::object();
        err.set("sqlstate", r.error->sqlstate);
        err.set("message", r.error->message);
        err.set("detail", r.error->detail.empty() ? json::Value() : json::Value(r.error->detail));
        err.set("hint", r.error->hint.empty() ? json::Value() : json::Value(r.error->hint));
        v.set("error", std::move(err));
    } else {
        v.set("error", nullptr);
    }
    return v;
}

ExitCode run_refresh_all(const Context& ctx, bool full) {
    auto node = ctx.connect_with_extension();
    // Citus: stream tables live on the coordinator; a worker has none, and "nothing to
    // refresh" there would hide that the wrong node was named.
    if (const auto self = client::citus_worker_self(*node)) {
        throw CommandError(
            "this node (" + node->name() + ") is a Citus worker (group " +
                std::to_string(self->group) + "): stream tables live on the coordinator" +
                (self->coordinator.empty() ? "" : ", " + self->coordinator),
            "Run pgtrickle refresh --all against the coordinator.", ExitCode::configuration);
    }
    const Console& console = ctx.console();
    const auto results = client::refresh_all(*node, full, [&](const client::RefreshResult& r) {
        if (r.ok) {
            console.info("refreshed " + r.name + " in " + cli_format::format_duration(r.seconds));
        } else {
            console.error("refresh of " + r.name + " failed: " + r.error->message + " (SQLSTATE " +
                          r.error->sqlstate + ")");
        }
    });
    std::size_t failed = 0;
    json::Value list = json::Value::array();
    std::vector<std::vector<std::string>> rows;
    for (const auto& r : results) {
        failed += r.ok ? 0 : 1;
        list.push_back(result_json(r));
        rows.push_back(
            {r.name, r.ok ? "ok" : "failed", cli_format::format_duration(r.seconds),
             r.error ? cli_format::one_line(r.error->sqlstate + ": " + r.error->message) : ""});
    }
    const ExitCode code = failed ? ExitCode::failure : ExitCode::ok;
    const std::string count =
        std::to_string(results.size()) + (results.size() == 1 ? " stream table" : " stream tables");
    const std::string message = results.empty() ? "no stream tables to refresh"
                                : failed
                                    ? std::to_string(failed) + " of " + count + " failed to refresh"
                                    : "refreshed " + count;
    if (console.json()) {
        json::Value doc = new_document("refresh");
        doc.set("results", std::move(list));
        json::Value summary = json::Value::object();
        summary.set("refreshed", results.size() - failed);
        summary.set("failed", failed);
        doc.set("summary", std::move(summary));
        doc.set("status", status_object(code, message));
        console.document(doc);
    } else {
        if (!rows.empty()) {
            console.out(
                cli_format::render_table({"stream table", "result", "time", "error"}, rows));
        }
        console.out(message + "\n");
    }
    return code;
}

ExitCode run_refresh_one(const Context& ctx, const std::string& name, bool full) {
    auto node = ctx.connect_with_extension();
    client::refresh_stream_table(*node, name, full);
    return report_done(ctx, name,
                       std::string(full ? "fully " : "") + "refreshed stream table " + name);
}

void setup_refresh(CommandTree& tree) {
    auto opt = std::make_shared<RefreshOptions>();
    CLI::App* cmd =
        tree.add_command("refresh", "refresh one stream table now, or all of them (--all)",
                         [opt](const Context& ctx) {
                             if (opt->all == opt->name.has_value()) {
                                 throw UsageError("give either a stream table name or --all");
                             }
                             return opt->all ? run_refresh_all(ctx, opt->full)
                                             : run_refresh_one(ctx, *opt->name, opt->full);
                         });
    CLI::Option* name =
        cmd->add_option("name", opt->name, "stream table name, optionally schema-qualified");
    cmd->add_flag("--all", opt->all, "refresh every stream table, upstream ones first")
        ->excludes(name);
    cmd->add_flag("--full", opt->full, "recompute from scratch instead of applying changes");
}

}  // namespace

void setup_lifecycle(CommandTree& tree) {
    setup_create(tree);
    setup_alter(tree);
    setup_drop(tree);
    setup_refresh(tree);
}

}  // namespace pgt::cli
