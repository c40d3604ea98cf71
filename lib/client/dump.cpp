#include "client/dump.h"

#include <map>

#include <pqxx/transaction>

#include "client/catalog.h"
#include "client/stream_tables.h"
#include "core/json.h"

namespace pgt::client {

namespace {

std::optional<std::string> optional_text(const pqxx::field& f) {
    return f.is_null() ? std::nullopt : std::optional<std::string>(f.c_str());
}

}  // namespace

DumpSource read_dump_source(Node& node, const std::string& tool_version) {
    require_extension(node);
    const std::string origin_sql =
        "SELECT pg_catalog.current_database(), pg_catalog.current_setting('server_version'), "
        "(SELECT e.extversion FROM pg_catalog.pg_extension e "
        "WHERE e.extname OPERATOR(pg_catalog.=) 'pg_trickle')";
    const std::string tables_sql =
        "SELECT st.pgt_id, st.pgt_schema, st.pgt_name, st.defining_query, st.schedule, "
        "st.refresh_mode, st.cdc_mode, st.output_distribution_column, st.status, "
        // refresh_settings exists from 0.35.0 on: read through to_jsonb, NULL before.
        "pg_catalog.to_jsonb(st) OPERATOR(pg_catalog.->) 'refresh_settings', "
        // st_placement exists from 0.32.0 on.
        "pg_catalog.to_jsonb(st) OPERATOR(pg_catalog.->>) 'st_placement' "
        "FROM pgtrickle.pgt_stream_tables st ORDER BY st.pgt_schema, st.pgt_name";
    const std::string edges_sql =
        "SELECT up.pgt_id, d.pgt_id, pg_catalog.format('%I.%I', up.pgt_schema, up.pgt_name) "
        "FROM pgtrickle.pgt_dependencies d "
        "JOIN pgtrickle.pgt_stream_tables up "
        "ON up.pgt_relid OPERATOR(pg_catalog.=) d.source_relid "
        "ORDER BY up.pgt_schema, up.pgt_name";
    pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(node.conn());
    DumpSource out;
    node.trace(origin_sql);
    const pqxx::row o = tx.exec1(origin_sql);
    out.origin = {o[0].c_str(), o[1].c_str(), o[2].is_null() ? "" : o[2].c_str(), tool_version};

    std::vector<dump::StreamTableDef> defs;
    std::map<long long, std::size_t> index_of;
    node.trace(tables_sql);
    for (const pqxx::row& r : tx.exec(tables_sql)) {
        dump::StreamTableDef d;
        d.schema = r[1].c_str();
        d.name = r[2].c_str();
        d.query = r[3].c_str();
        d.schedule = optional_text(r[4]);
        d.refresh_mode = r[5].c_str();
        d.cdc_mode = r[6].c_str();
        d.output_distribution_column = optional_text(r[7]);
        d.status = r[8].c_str();
        if (!r[9].is_null()) {
            const json::Value settings = json::parse(r[9].c_str());
            if (settings.is_object()) {
                for (const auto& [setting, value] : settings.as_object()) {
                    if (value.is_string()) {
                        d.settings.emplace_back(setting, value.as_string());
                    }
                }
            }
        }
        d.placement = optional_text(r[10]);
        index_of[r[0].as<long long>()] = defs.size();
        defs.push_back(std::move(d));
    }
    std::vector<std::pair<std::size_t, std::size_t>> edges;
    node.trace(edges_sql);
    for (const pqxx::row& r : tx.exec(edges_sql)) {
        const auto up = index_of.find(r[0].as<long long>());
        const auto reader = index_of.find(r[1].as<long long>());
        if (up == index_of.end() || reader == index_of.end()) {
            continue;
        }
        edges.emplace_back(up->second, reader->second);
        defs[reader->second].depends_on.push_back(r[2].c_str());
    }
    tx.commit();
    for (std::size_t i : dependency_order(defs.size(), edges)) {
        out.stream_tables.push_back(std::move(defs[i]));
    }
    return out;
}

}  // namespace pgt::client
