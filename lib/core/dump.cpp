#include "core/dump.h"

#include <algorithm>
#include <set>

#include "core/sql_ident.h"

namespace pgt::dump {

namespace {

// Text safe inside a -- comment: control characters (newlines above all) become spaces.
std::string comment_text(const std::string& s) {
    std::string out = s;
    for (char& c : out) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
            c = ' ';
        }
    }
    return out;
}

std::string display_name(const StreamTableDef& d) {
    return comment_text(d.schema + "." + d.name);
}

std::string create_call(const StreamTableDef& d) {
    const std::string name = sql::quote_literal(sql::qualified(d.schema, d.name));
    std::string call;
    for (const auto& [setting, value] : d.settings) {
        call += "SELECT pg_catalog.set_config(" + sql::quote_literal(setting) + ", " +
                sql::quote_literal(value) + ", true);\n";
    }
    call += "CALL pgtrickle.create_stream_table(\n    name => " + name + ",\n    query => " +
            sql::quote_literal(d.query);
    if (d.schedule) {
        call += ",\n    schedule => " + sql::quote_literal(*d.schedule);
    }
    call += ",\n    refresh_mode => " + sql::quote_literal(d.refresh_mode);
    call += ",\n    cdc_mode => " + sql::quote_literal(d.cdc_mode);
    if (d.output_distribution_column) {
        call += ",\n    output_distribution_column => " +
                sql::quote_literal(*d.output_distribution_column);
    }
    call += ");\n";
    if (d.placement == "reference") {
        const std::string table = sql::quote_literal(sql::qualified(d.schema, d.name));
        call += "SELECT pg_catalog.create_reference_table(" + table + ");\n";
        call += "SELECT pg_catalog.truncate_local_data_after_distributing_table(" + table + ");\n";
        // Its next refresh records the placement (nothing to apply: a quick one).
        call += "CALL pgtrickle.refresh_stream_table(" + name + ");\n";
    }
    if (d.status == "suspended") {
        call += "CALL pgtrickle.alter_stream_table(name => " + name + ", status => 'suspended');\n";
    }
    return call;
}

}  // namespace

std::string render_sql(const std::vector<StreamTableDef>& defs, const Origin& origin) {
    // Citus storage (reference, distributed): each create writes on the workers, and a
    // later create in the same transaction could not make its sources' slots there (a slot
    // waits for every running transaction of its node): one transaction per stream table.
    const bool on_citus = std::any_of(defs.begin(), defs.end(), [](const StreamTableDef& d) {
        return d.placement && *d.placement != "local";
    });
    const bool placements = std::any_of(
        defs.begin(), defs.end(), [](const StreamTableDef& d) { return d.placement.has_value(); });
    // Storage placed as dumped, not chosen again (docs/citus.md "Storage placement").
    const std::string keep_placement =
        placements
            ? "SELECT pg_catalog.set_config('pg_trickle.citus_st_placement', 'local', true);\n"
            : "";
    std::string out;
    out += "-- pg_trickle stream tables\n";
    out += "-- Dumped from database " + comment_text(sql::quote_ident(origin.database)) +
           " (PostgreSQL " + comment_text(origin.server_version) + ", pg_trickle " +
           comment_text(origin.extension_version) + ") by pgtrickle " +
           comment_text(origin.tool_version) + ".\n";
    out += "-- " + std::to_string(defs.size()) +
           (defs.size() == 1 ? " stream table" : " stream tables") +
           ", each after the stream tables it reads; " +
           (on_citus ? "one transaction each (Citus storage).\n" : "one transaction.\n");
    out += "-- The target database needs the pg_trickle extension and every source table.\n";
    out += "-- Queries are as given at creation: they resolve names with the search_path\n";
    out += "-- recorded then (set before each), else the one in effect when this script runs.\n";
    out += "-- Apply with: psql -v ON_ERROR_STOP=1 -f FILE\n";
    out += "\nBEGIN;\n";
    if (!on_citus) {
        out += keep_placement;
    }
    std::set<std::string> schemas;
    for (const StreamTableDef& d : defs) {
        if (d.schema != "public" && schemas.insert(d.schema).second) {
            out += "CREATE SCHEMA IF NOT EXISTS " + sql::quote_ident(d.schema) + ";\n";
        }
    }
    for (const StreamTableDef& d : defs) {
        if (on_citus) {
            out += "COMMIT;\n";
        }
        out += "\n-- " + display_name(d);
        if (!d.depends_on.empty()) {
            out += " (reads";
            for (std::size_t i = 0; i < d.depends_on.size(); ++i) {
                out += (i ? ", " : " ") + comment_text(d.depends_on[i]);
            }
            out += ")";
        }
        if (d.status == "suspended") {
            out += ", suspended";
        }
        out += "\n";
        if (on_citus) {
            out += "BEGIN;\n" + keep_placement;
        }
        out += create_call(d);
    }
    out += "\nCOMMIT;\n";
    return out;
}

}  // namespace pgt::dump
