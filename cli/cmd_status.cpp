// `pgtrickle status [NAME]`: health of stream tables, their sources, the scheduler and, on
// Citus, the worker slots and nodes; exit 6 when something is unhealthy. One round is collect
// (client::read_status), judge (client::assess_health), render (table, JSON or Prometheus); --watch
// repeats rounds,
// --listen runs one per HTTP scrape, --output writes one to a file.
#include <unistd.h>

#include <ctime>
#include <memory>

#include <pqxx/except>

#include "client/catalog.h"
#include "client/status.h"
#include "client/status_metrics.h"
#include "commands.h"
#include "context.h"
#include "core/cli_format.h"
#include "core/prometheus.h"
#include "core/schedule.h"
#include "errors.h"
#include "metrics_output.h"
#include "signals.h"
#include "slots_view.h"

namespace pgt::cli {

namespace {

// A cell for a value of any JSON type; null is empty.
std::string cell(const json::Value& v) {
    return json_cell(v);
}

std::string mode_cell(const json::Value& st) {
    std::string mode = cell(st["refresh_mode"]);
    const std::string effective = cell(st["effective_mode"]);
    if (!effective.empty() && effective != mode) {
        mode += " -> " + effective;
    }
    return mode;
}

// local, reference, or distributed (column).
std::string placement_cell(const json::Value& st) {
    std::string placement = cell(st["st_placement"]);
    const std::string column = cell(st["distribution_column"]);
    if (placement == "distributed" && !column.empty()) {
        placement += " (" + column + ")";
    }
    return placement;
}

std::string staleness_cell(const json::Value& st) {
    const json::Value& s = st["staleness_seconds"];
    return s.is_number() ? cli_format::format_duration(s.as_double()) : "never refreshed";
}

std::string stream_tables_table(const json::Value& rows) {
    std::vector<std::vector<std::string>> cells;
    for (const json::Value& st : rows.as_array()) {
        cells.push_back({cell(st["pgt_schema"]) + "." + cell(st["pgt_name"]), cell(st["status"]),
                         mode_cell(st), placement_cell(st), cell(st["schedule"]),
                         staleness_cell(st), cell(st["pending_changes"]),
                         cell(st["consecutive_errors"]), cell(st["last_error"])});
    }
    return cli_format::render_table({"stream table", "status", "mode", "placement", "schedule",
                                     "staleness", "pending", "errors", "last error"},
                                    cells);
}

std::string sources_table(const json::Value& rows) {
    std::vector<std::vector<std::string>> cells;
    for (const json::Value& src : rows.as_array()) {
        cells.push_back({cell(src["source_relid"]), cell(src["source_stable_name"]),
                         cell(src["source_placement"]), cell(src["cdc_mode"]),
                         cell(src["readers"])});
    }
    return cli_format::render_table({"source", "stable name", "placement", "cdc", "readers"},
                                    cells);
}

json::Value item_status_json(const client::ItemStatus& st) {
    json::Value v = json::Value::object();
    v.set("code", st.code);
    v.set("message", st.message);
    return v;
}

// The worker slots with their health: the objects of `slots list` plus "status".
json::Value worker_slots_json(const json::Value& slots) {
    json::Value out = json::Value::array();
    for (const json::Value& slot : slots.as_array()) {
        json::Value v = slot;
        v.set("status", item_status_json(client::worker_slot_status(slot)));
        out.push_back(std::move(v));
    }
    return out;
}

json::Value nodes_json(const std::vector<client::NodeReachability>& nodes) {
    json::Value out = json::Value::array();
    for (const client::NodeReachability& n : nodes) {
        json::Value v = json::Value::object();
        v.set("node", n.node);
        v.set("nodeid", n.nodeid);
        v.set("role", n.role);
        v.set("reachable", n.reachable ? json::Value(*n.reachable) : json::Value());
        v.set("pg_trickle_version", n.extension_version && !n.extension_version->empty()
                                        ? json::Value(*n.extension_version)
                                        : json::Value());
        v.set("status", item_status_json(client::node_status(n)));
        out.push_back(std::move(v));
    }
    return out;
}

std::string nodes_table(const std::vector<client::NodeReachability>& nodes) {
    std::vector<std::vector<std::string>> cells;
    for (const client::NodeReachability& n : nodes) {
        const client::ItemStatus st = client::node_status(n);
        cells.push_back({n.node, n.role, n.extension_version.value_or("?"), st.code,
                         st.ok() ? "" : cli_format::one_line(n.error)});
    }
    return cli_format::render_table({"node", "role", "pg_trickle", "status", "error"}, cells);
}

json::Value problems_json(const client::Health& health) {
    json::Value list = json::Value::array();
    for (const client::Problem& p : health.problems) {
        json::Value v = json::Value::object();
        v.set("subject", p.subject);
        v.set("reason", p.reason);
        v.set("message", p.message);
        list.push_back(std::move(v));
    }
    return list;
}

/// Why no scheduler runs on a hot standby.
constexpr const char* kStandbyReason =
    "hot standby: stream tables are refreshed on the primary and arrive by replication";

json::Value status_document(const client::StatusSnapshot& snap, const client::Health& health,
                            ExitCode code) {
    json::Value doc = new_document("status");
    doc.set("stream_tables", snap.stream_tables);
    doc.set("sources", snap.sources);
    if (!snap.worker_slots.as_array().empty()) {
        doc.set("worker_slots", worker_slots_json(snap.worker_slots));
    }
    if (!snap.nodes.empty()) {
        doc.set("nodes", nodes_json(snap.nodes));
    }
    json::Value scheduler = json::Value::object();
    scheduler.set("running", snap.scheduler_pid.has_value());
    scheduler.set("enabled", snap.scheduler_enabled);
    scheduler.set("pid", snap.scheduler_pid ? json::Value(*snap.scheduler_pid) : json::Value());
    scheduler.set("standby", snap.in_recovery);
    if (snap.in_recovery) {
        scheduler.set("reason", kStandbyReason);
    }
    doc.set("scheduler", std::move(scheduler));
    doc.set("problems", problems_json(health));
    doc.set("status", status_object(code, health.message));
    return doc;
}

std::string status_text(const client::StatusSnapshot& snap, const client::Health& health) {
    std::string text;
    if (!snap.stream_tables.as_array().empty()) {
        text += stream_tables_table(snap.stream_tables) + "\n";
    }
    if (!snap.sources.as_array().empty()) {
        text += sources_table(snap.sources) + "\n";
    }
    if (!snap.worker_slots.as_array().empty()) {
        text += worker_slots_table(worker_slots_json(snap.worker_slots)) + "\n";
    }
    if (!snap.nodes.empty()) {
        text += nodes_table(snap.nodes) + "\n";
    }
    text += snap.in_recovery ? std::string("scheduler: not running (") + kStandbyReason + ")\n"
            : snap.scheduler_pid
                ? "scheduler: running (pid " + std::to_string(*snap.scheduler_pid) + ")" +
                      (snap.scheduler_enabled ? "" : ", disabled by pg_trickle.enabled") + "\n"
                : std::string("scheduler: not running\n");
    return text + health.message + "\n";
}

std::string metrics_text(const client::StatusSnapshot& snap, const client::Health& health) {
    return prometheus::render(client::status_metrics(snap, health));
}

struct StatusOptions {
    std::optional<std::string> name;
    std::optional<double> watch;
    std::optional<std::string> max_staleness;
    std::optional<std::string> listen;
    std::optional<std::string> output;
};

// What one round produces.
struct Round {
    client::StatusSnapshot snap;
    client::Health health;
    ExitCode code = ExitCode::ok;
};

Round collect(client::Node& node, const StatusOptions& opt, const client::HealthRules& rules) {
    Round r;
    r.snap = client::read_status(node, opt.name);
    r.health = client::assess_health(r.snap, rules);
    r.code = r.health.healthy ? ExitCode::ok : ExitCode::unhealthy;
    return r;
}

client::HealthRules health_rules(const StatusOptions& opt) {
    client::HealthRules rules;
    if (opt.max_staleness) {
        const Schedule s = parse_schedule(*opt.max_staleness);
        if (s.error || s.kind != Schedule::Kind::duration || s.every.count() <= 0) {
            throw UsageError("--max-staleness wants a duration such as 30s, 5m or 1h30m, got \"" +
                             *opt.max_staleness + "\"" +
                             (s.error ? ": " + *s.error : std::string()));
        }
        rules.max_staleness_seconds = static_cast<double>(s.every.count()) / 1000.0;
    }
    return rules;
}

// "every 5s, 2024-05-01 10:00:00" for the head of a watched round on a terminal.
std::string watch_header(double every) {
    char when[32] = "";
    const std::time_t now = std::time(nullptr);
    std::tm tm = {};
    localtime_r(&now, &tm);
    std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    return "every " + cli_format::format_duration(every) + ": pgtrickle status    " + when + "\n\n";
}

ExitCode run_watch(const Context& ctx, const StatusOptions& opt, const client::HealthRules& rules) {
    install_stop_handlers();
    const bool clear = isatty(STDOUT_FILENO) == 1 && !ctx.console().json();
    auto node = ctx.connect_with_extension();
    ExitCode last = ExitCode::ok;
    do {
        const Round r = collect(*node, opt, rules);
        last = r.code;
        if (ctx.console().json()) {
            ctx.console().document_line(status_document(r.snap, r.health, r.code));
        } else {
            ctx.console().out((clear ? "\033[H\033[2J" + watch_header(*opt.watch) : std::string()) +
                              status_text(r.snap, r.health) + (clear ? "" : "\n"));
        }
    } while (wait_unless_stopped(*opt.watch));
    return last;
}

ExitCode run_listen(const Context& ctx, const StatusOptions& opt,
                    const client::HealthRules& rules) {
    std::unique_ptr<client::Node> node;
    const auto scrape = [&]() {
        try {
            if (!node) {
                node = ctx.connect_with_extension();
            }
            const Round r = collect(*node, opt, rules);
            return metrics_text(r.snap, r.health);
        } catch (const pqxx::broken_connection& e) {
            node.reset();
            ctx.console().error(std::string("scrape: lost the connection: ") + e.what());
        } catch (const std::exception& e) {
            if (node && !node->conn().is_open()) {
                node.reset();
            }
            ctx.console().error(std::string("scrape: ") + e.what());
        }
        return prometheus::render(client::unreachable_metrics());
    };
    serve_metrics(*opt.listen, scrape, ctx.console());
    return ExitCode::ok;
}

ExitCode run_output(const Context& ctx, const StatusOptions& opt,
                    const client::HealthRules& rules) {
    Round r;
    try {
        auto node = ctx.connect_with_extension();
        r = collect(*node, opt, rules);
    } catch (...) {
        // The textfile collector would keep serving the old numbers: say we are down.
        write_file_atomically(*opt.output, prometheus::render(client::unreachable_metrics()));
        throw;
    }
    write_file_atomically(*opt.output, metrics_text(r.snap, r.health));
    ctx.console().info("wrote metrics to " + *opt.output + ": " + r.health.message);
    return r.code;
}

ExitCode run_status(const Context& ctx, const StatusOptions& opt) {
    const client::HealthRules rules = health_rules(opt);
    const Format format = ctx.console().format();
    if ((opt.listen || opt.output) && format == Format::json) {
        throw UsageError("--listen and --output write the prometheus format, not json");
    }
    if (opt.watch && format == Format::prometheus) {
        throw UsageError("--watch does not combine with --format prometheus (use --listen)");
    }
    if (opt.listen) {
        return run_listen(ctx, opt, rules);
    }
    if (opt.output) {
        return run_output(ctx, opt, rules);
    }
    if (opt.watch) {
        return run_watch(ctx, opt, rules);
    }
    auto node = ctx.connect_with_extension();
    const Round r = collect(*node, opt, rules);
    if (format == Format::json) {
        ctx.console().document(status_document(r.snap, r.health, r.code));
    } else if (format == Format::prometheus) {
        ctx.console().out(metrics_text(r.snap, r.health));
    } else {
        ctx.console().out(status_text(r.snap, r.health));
    }
    return r.code;
}

}  // namespace

void setup_status(CommandTree& tree) {
    auto opt = std::make_shared<StatusOptions>();
    CLI::App* cmd = tree.add_command(
        "status", "health of stream tables, sources and the scheduler (exit 6 if unhealthy)",
        [opt](const Context& ctx) { return run_status(ctx, *opt); });
    tree.accept_prometheus(cmd);
    cmd->add_option("name", opt->name, "only this stream table (optionally schema-qualified)");
    CLI::Option* watch =
        cmd->add_option("--watch", opt->watch, "re-render every N seconds until interrupted")
            ->check(CLI::PositiveNumber)
            ->type_name("N");
    cmd->add_option("--max-staleness", opt->max_staleness,
                    "unhealthy when refreshed longer ago than this (e.g. 30s, 5m, 1h30m)")
        ->type_name("DURATION");
    CLI::Option* listen =
        cmd->add_option("--listen", opt->listen,
                        "serve Prometheus metrics over HTTP at ADDR:PORT/metrics until stopped")
            ->type_name("ADDR:PORT")
            ->excludes(watch);
    cmd->add_option("--output", opt->output,
                    "write Prometheus metrics to FILE atomically (textfile collector)")
        ->type_name("FILE")
        ->excludes(watch)
        ->excludes(listen);
}

}  // namespace pgt::cli
