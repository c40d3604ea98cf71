// `pgtrickle explain --query SQL`: how pg_trickle would maintain a query (differentially or
// by full refresh) and why, from pgtrickle.explain_stream_table().
#include <memory>

#include "client/stream_tables.h"
#include "commands.h"
#include "context.h"
#include "errors.h"

namespace pgt::cli {

namespace {

std::string text_field(const json::Value& plan, const char* key) {
    const json::Value& v = plan[key];
    return v.is_string() ? v.as_string() : v.is_null() ? "" : json::dump(v);
}

ExitCode run_explain(const Context& ctx, const std::string& query) {
    auto node = ctx.connect_with_extension();
    json::Value plan;
    try {
        plan = client::explain_query(*node, query);
    } catch (const pqxx::sql_error& e) {
        rethrow_in_query(*node, e, query);
    }
    const std::string mode = text_field(plan, "mode");
    const std::string reason = text_field(plan, "reason");
    const std::string message =
        "maintained by " + (mode.empty() ? std::string("an unknown mode") : mode) + " refresh";
    if (ctx.console().json()) {
        json::Value doc = new_document("explain");
        doc.set("query", query);
        doc.set("explain", plan);
        doc.set("status", status_object(ExitCode::ok, message));
        ctx.console().document(doc);
        return ExitCode::ok;
    }
    std::string text = "mode:   " + mode + "\n";
    if (!reason.empty()) {
        text += "reason: " + reason + "\n";
    }
    // Older extensions do not say where the storage would go.
    const std::string placement = text_field(plan, "placement");
    if (placement == "auto") {
        text += "placement: a Citus reference table below " +
                text_field(plan, "reference_max_rows") +
                " rows, else distributed by __pgt_row_id (counted at creation)\n";
    } else if (placement == "local") {
        text += "placement: local (on the coordinator)\n";
    }
    std::string tree = text_field(plan, "text");
    if (!tree.empty()) {
        if (tree.back() != '\n') {
            tree += '\n';
        }
        text += "\n" + tree;
    }
    ctx.console().out(text);
    return ExitCode::ok;
}

}  // namespace

void setup_explain(CommandTree& tree) {
    auto query = std::make_shared<std::string>();
    CLI::App* cmd = tree.add_command(
        "explain", "show how a query would be maintained (differential or full) and why",
        [query](const Context& ctx) { return run_explain(ctx, *query); });
    cmd->add_option("--query", *query, "the query to explain (SQL)")->required();
}

}  // namespace pgt::cli
