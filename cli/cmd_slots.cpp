// `pgtrickle slots list|provision|drop`: the per-worker replication slots of distributed
// sources on a Citus coordinator. list reads pgtrickle.pgt_worker_slots with each slot's lag;
// provision and drop call the extension's pgtrickle.provision_worker_slots() and
// pgtrickle.drop_orphan_worker_slots() and show what they did.
#include <map>
#include <memory>

#include "client/catalog.h"
#include "client/slots.h"
#include "commands.h"
#include "context.h"
#include "core/cli_format.h"
#include "errors.h"
#include "slots_view.h"

namespace pgt::cli {

namespace {

struct SlotsOptions {
    std::string action;
    std::optional<std::string> source_arg;     // positional SOURCE
    std::optional<std::string> source_option;  // --source NAME
};

ExitCode report(const Context& ctx, const std::string& action, const json::Value& rows,
                const std::string& message, const std::string& text) {
    if (ctx.console().json()) {
        json::Value doc = new_document("slots");
        doc.set("action", action);
        doc.set("slots", rows);
        doc.set("status", status_object(ExitCode::ok, message));
        ctx.console().document(doc);
    } else {
        if (!text.empty()) {
            ctx.console().out(text);
        }
        ctx.console().info(message);
    }
    return ExitCode::ok;
}

ExitCode run_list(const Context& ctx, const std::optional<std::string>& source) {
    auto node = ctx.connect_with_extension();
    const json::Value rows = client::list_worker_slots(*node, source);
    std::string message;
    if (!rows.as_array().empty()) {
        message = worker_slots_summary(rows);
    } else if (!client::has_citus(*node)) {
        message =
            "no slots: Citus is not installed in this database and no source is captured "
            "with cdc_mode 'wal'";
    } else {
        message = source ? "no worker slots for " + *source + " (not a distributed source?)"
                         : std::string("no worker slots (no distributed sources)");
    }
    return report(ctx, "list", rows, message,
                  rows.as_array().empty() ? "" : worker_slots_table(rows));
}

ExitCode run_provision(const Context& ctx, const std::optional<std::string>& source) {
    auto node = ctx.connect_with_extension();
    const json::Value rows = client::provision_worker_slots(*node, source);
    std::vector<std::vector<std::string>> cells;
    std::map<std::string, int> by_action;
    for (const json::Value& r : rows.as_array()) {
        cells.push_back({json_cell(r["source"]), json_cell(r["worker"]), json_cell(r["slot_name"]),
                         json_cell(r["action"])});
        ++by_action[json_cell(r["action"])];
    }
    std::string message;
    if (cells.empty()) {
        message = "no distributed sources: no worker slots to provision";
    } else {
        message = std::to_string(cells.size()) + (cells.size() == 1 ? " slot:" : " slots:");
        const char* sep = " ";
        for (const auto& [action, n] : by_action) {
            message += sep + std::to_string(n) + " " + action;
            sep = ", ";
        }
    }
    return report(ctx, "provision", rows, message,
                  cells.empty()
                      ? ""
                      : cli_format::render_table({"source", "worker", "slot", "action"}, cells));
}

ExitCode run_drop(const Context& ctx) {
    auto node = ctx.connect_with_extension();
    const json::Value rows = client::drop_orphan_worker_slots(*node);
    std::vector<std::vector<std::string>> cells;
    for (const json::Value& r : rows.as_array()) {
        cells.push_back({json_cell(r["worker"]), json_cell(r["slot_name"])});
    }
    const std::string message =
        cells.empty() ? std::string("no orphan worker slots: nothing dropped")
                      : "dropped " + std::to_string(cells.size()) +
                            (cells.size() == 1 ? " orphan worker slot" : " orphan worker slots");
    return report(ctx, "drop", rows, message,
                  cells.empty() ? "" : cli_format::render_table({"worker", "slot"}, cells));
}

ExitCode run_slots(const Context& ctx, const SlotsOptions& opt) {
    if (opt.source_arg && opt.source_option && *opt.source_arg != *opt.source_option) {
        throw UsageError("name the source once: as SOURCE or as --source, not both");
    }
    const std::optional<std::string> source = opt.source_arg ? opt.source_arg : opt.source_option;
    try {
        if (opt.action == "list") {
            return run_list(ctx, source);
        }
        if (opt.action == "provision") {
            return run_provision(ctx, source);
        }
        if (source) {
            throw UsageError("slots drop takes no source: it drops the slots of no source");
        }
        return run_drop(ctx);
    } catch (const client::SlotsUnavailable& e) {
        throw CommandError(e.what(), e.hint(), ExitCode::configuration);
    }
}

}  // namespace

void setup_slots(CommandTree& tree) {
    auto opt = std::make_shared<SlotsOptions>();
    CLI::App* cmd = tree.add_command(
        "slots",
        "worker replication slots of distributed sources (Citus): list with lag, provision, "
        "or drop orphans",
        [opt](const Context& ctx) { return run_slots(ctx, *opt); });
    tree.restrict_to(
        cmd->add_option("action", opt->action, "list, provision or drop (orphans)")->required(),
        {"list", "provision", "drop"});
    cmd->add_option("source", opt->source_arg,
                    "list/provision: only this source table (optionally schema-qualified)");
    cmd->add_option("--source", opt->source_option, "the same as SOURCE")->type_name("NAME");
}

}  // namespace pgt::cli
