// `pgtrickle dump`: SQL that recreates every stream table with its options, in
// dependency order, inside one transaction (or, with --format json, the definitions).
#include "client/dump.h"
#include "commands.h"
#include "context.h"

namespace pgt::cli {

namespace {

json::Value optional_json(const std::optional<std::string>& v) {
    return v ? json::Value(*v) : json::Value();
}

json::Value definitions_json(const std::vector<dump::StreamTableDef>& defs) {
    json::Value list = json::Value::array();
    for (const dump::StreamTableDef& d : defs) {
        json::Value st = json::Value::object();
        st.set("schema", d.schema);
        st.set("name", d.name);
        st.set("query", d.query);
        st.set("schedule", optional_json(d.schedule));
        st.set("refresh_mode", d.refresh_mode);
        st.set("cdc_mode", d.cdc_mode);
        st.set("output_distribution_column", optional_json(d.output_distribution_column));
        st.set("placement", optional_json(d.placement));
        st.set("status", d.status);
        json::Value deps = json::Value::array();
        for (const std::string& dep : d.depends_on) {
            deps.push_back(dep);
        }
        st.set("depends_on", std::move(deps));
        list.push_back(std::move(st));
    }
    return list;
}

ExitCode run_dump(const Context& ctx) {
    auto node = ctx.connect();
    const client::DumpSource src = client::read_dump_source(*node, PGTRICKLE_VERSION);
    const std::size_t n = src.stream_tables.size();
    const std::string message = "dumped " + std::to_string(n) +
                                (n == 1 ? " stream table" : " stream tables") +
                                " from database \"" + src.origin.database + "\"";
    if (ctx.console().json()) {
        json::Value doc = new_document("dump");
        doc.set("database", src.origin.database);
        doc.set("stream_tables", definitions_json(src.stream_tables));
        doc.set("status", status_object(ExitCode::ok, message));
        ctx.console().document(doc);
    } else {
        ctx.console().out(dump::render_sql(src.stream_tables, src.origin));
        ctx.console().info(message);
    }
    return ExitCode::ok;
}

}  // namespace

void setup_dump(CommandTree& tree) {
    tree.add_command("dump", "print SQL that recreates every stream table, in dependency order",
                     run_dump);
}

}  // namespace pgt::cli
