// `pgtrickle status [NAME]`: health of stream tables and their sources; exit 6 when a
// stream table is in error or suspended. Collecting (client::read_status) and rendering
// are separate so that --watch and the Prometheus format can reuse both.
#include "client/catalog.h"
#include "client/status.h"
#include "commands.h"
#include "context.h"
#include "core/cli_format.h"

namespace pgt::cli {

namespace {

// A cell for a value of any JSON type; null is empty.
std::string cell(const json::Value& v) {
    switch (v.type()) {
        case json::Value::Type::null:
            return "";
        case json::Value::Type::string:
            return cli_format::one_line(v.as_string());
        default:
            return json::dump(v);
    }
}

std::string mode_cell(const json::Value& st) {
    std::string mode = cell(st["refresh_mode"]);
    const std::string effective = cell(st["effective_mode"]);
    if (!effective.empty() && effective != mode) {
        mode += " -> " + effective;
    }
    return mode;
}

std::string staleness_cell(const json::Value& st) {
    const json::Value& s = st["staleness_seconds"];
    return s.is_number() ? cli_format::format_duration(s.as_double()) : "never refreshed";
}

std::string stream_tables_table(const json::Value& rows) {
    std::vector<std::vector<std::string>> cells;
    for (const json::Value& st : rows.as_array()) {
        cells.push_back({cell(st["pgt_schema"]) + "." + cell(st["pgt_name"]), cell(st["status"]),
                         mode_cell(st), cell(st["schedule"]), staleness_cell(st),
                         cell(st["pending_changes"]), cell(st["consecutive_errors"]),
                         cell(st["last_error"])});
    }
    return cli_format::render_table({"stream table", "status", "mode", "schedule", "staleness",
                                     "pending", "errors", "last error"},
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

void render(const Context& ctx, const client::StatusSnapshot& snap, const client::Health& health,
            ExitCode code) {
    if (ctx.console().json()) {
        json::Value doc = new_document("status");
        doc.set("stream_tables", snap.stream_tables);
        doc.set("sources", snap.sources);
        doc.set("status", status_object(code, health.message));
        ctx.console().document(doc);
        return;
    }
    std::string text;
    if (!snap.stream_tables.as_array().empty()) {
        text += stream_tables_table(snap.stream_tables) + "\n";
    }
    if (!snap.sources.as_array().empty()) {
        text += sources_table(snap.sources) + "\n";
    }
    ctx.console().out(text + health.message + "\n");
}

}  // namespace

void setup_status(CommandTree& tree) {
    auto name = std::make_shared<std::optional<std::string>>();
    CLI::App* cmd = tree.add_command(
        "status", "health of stream tables and their sources (exit 6 if unhealthy)",
        [name](const Context& ctx) {
            auto node = ctx.connect_with_extension();
            const client::StatusSnapshot snap = client::read_status(*node, *name);
            const client::Health health = client::assess_health(snap.stream_tables);
            const ExitCode code = health.healthy ? ExitCode::ok : ExitCode::unhealthy;
            render(ctx, snap, health, code);
            return code;
        });
    cmd->add_option("name", *name, "only this stream table (optionally schema-qualified)");
}

}  // namespace pgt::cli
