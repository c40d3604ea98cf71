#include "client/catalog.h"

#include <cerrno>
#include <cstdlib>

#include <pqxx/nontransaction>
#include <pqxx/transaction>

namespace pgt::client {

namespace {

// Built-in type OIDs (pg_type.dat); stable across PostgreSQL versions.
constexpr pqxx::oid bool_oid = 16;
constexpr pqxx::oid int8_oid = 20;
constexpr pqxx::oid int2_oid = 21;
constexpr pqxx::oid int4_oid = 23;
constexpr pqxx::oid oid_oid = 26;
constexpr pqxx::oid json_oid = 114;
constexpr pqxx::oid float4_oid = 700;
constexpr pqxx::oid float8_oid = 701;
constexpr pqxx::oid numeric_oid = 1700;
constexpr pqxx::oid jsonb_oid = 3802;

json::Value number_from_text(const char* text) {
    errno = 0;
    char* end = nullptr;
    long long i = std::strtoll(text, &end, 10);
    if (errno == 0 && end && *end == '\0') {
        return json::Value(i);
    }
    end = nullptr;
    double d = std::strtod(text, &end);
    if (end && *end == '\0') {
        return json::Value(d);  // NaN and infinities are written as null
    }
    return json::Value(text);
}

json::Value field_to_json(const pqxx::field& f) {
    if (f.is_null()) {
        return json::Value();
    }
    const char* text = f.c_str();
    switch (f.type()) {
        case bool_oid:
            return json::Value(text[0] == 't');
        case int2_oid:
        case int4_oid:
        case int8_oid:
        case oid_oid:
        case float4_oid:
        case float8_oid:
        case numeric_oid:
            return number_from_text(text);
        case json_oid:
        case jsonb_oid:
            try {
                return json::parse(text);
            } catch (const json::ParseError&) {
                return json::Value(text);
            }
        default:
            return json::Value(text);
    }
}

}  // namespace

ExtensionInfo read_extension_info(Node& node) {
    const std::string sql =
        "SELECT pg_catalog.current_database(), "
        "(SELECT e.extversion FROM pg_catalog.pg_extension e "
        "WHERE e.extname OPERATOR(pg_catalog.=) 'pg_trickle'), "
        "(SELECT a.default_version FROM pg_catalog.pg_available_extensions a "
        "WHERE a.name OPERATOR(pg_catalog.=) 'pg_trickle')";
    node.trace(sql);
    pqxx::read_transaction tx(node.conn());
    const pqxx::row r = tx.exec1(sql);
    ExtensionInfo info;
    info.database = r[0].c_str();
    if (!r[1].is_null()) {
        info.installed = r[1].c_str();
    }
    if (!r[2].is_null()) {
        info.available = r[2].c_str();
    }
    return info;
}

void require_extension(Node& node) {
    ExtensionInfo info = read_extension_info(node);
    if (!info.installed) {
        throw ExtensionMissing(info.database);
    }
}

bool has_citus(Node& node) {
    const std::string sql =
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension e "
        "WHERE e.extname OPERATOR(pg_catalog.=) 'citus')";
    node.trace(sql);
    pqxx::read_transaction tx(node.conn());
    return tx.exec1(sql)[0].as<bool>();
}

std::optional<std::string> resolve_relation(Node& node, const std::string& name) {
    // Under the user's search_path, so the statement names nothing unqualified: a function
    // and a type of pg_catalog, a parameter of known type.
    const std::string sql = "SELECT pg_catalog.to_regclass($1::pg_catalog.text)::pg_catalog.oid";
    const UserSearchPath user(node);
    node.trace(sql);
    pqxx::nontransaction tx(node.conn());
    const pqxx::row r = tx.exec_params1(sql, name);
    return r[0].is_null() ? std::nullopt : std::optional<std::string>(r[0].c_str());
}

std::optional<std::string> qualify_relation(Node& node, const std::string& name) {
    const std::optional<std::string> oid = resolve_relation(node, name);
    if (!oid) {
        return std::nullopt;
    }
    const std::string sql =
        "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace "
        "WHERE c.oid OPERATOR(pg_catalog.=) $1::pg_catalog.oid";
    node.trace(sql);
    pqxx::read_transaction tx(node.conn());
    const pqxx::result r = tx.exec_params(sql, *oid);
    if (r.empty()) {
        return std::nullopt;  // dropped in between
    }
    return std::string(r[0][0].c_str());
}

json::Value row_to_json(const pqxx::row& row) {
    json::Value obj = json::Value::object();
    for (const pqxx::field& f : row) {
        obj.set(f.name(), field_to_json(f));
    }
    return obj;
}

json::Value rows_to_json(const pqxx::result& result) {
    json::Value arr = json::Value::array();
    for (const pqxx::row& r : result) {
        arr.push_back(row_to_json(r));
    }
    return arr;
}

}  // namespace pgt::client
