#include "client/stream_tables.h"

#include <chrono>
#include <set>

#include <pqxx/nontransaction>
#include <pqxx/result>
#include <pqxx/transaction>

#include "client/catalog.h"

namespace pgt::client {

namespace {

// A parameter value: the string, or NULL.
const char* param(const std::optional<std::string>& v) {
    return v ? v->c_str() : nullptr;
}

// The stream table named on the command line as the extension should see it under the
// pinned search_path: schema-qualified when the name resolves with the user's search_path;
// else as given (the extension then reports that it does not exist).
std::string stream_table_name(Node& node, const std::string& name) {
    return qualify_relation(node, name).value_or(name);
}

// CALL pgtrickle.refresh_stream_table of a schema-qualified name.
void call_refresh(Node& node, const std::string& qualified, bool full) {
    const std::string sql = "CALL pgtrickle.refresh_stream_table(name => $1, \"full\" => $2)";
    node.trace(sql);
    pqxx::nontransaction tx(node.conn());
    tx.exec_params(sql, qualified, full);
}

}  // namespace

void create_stream_table(Node& node, const CreateRequest& req) {
    const std::string sql =
        std::string(
            "CALL pgtrickle.create_stream_table(name => $1, query => $2, schedule => $3, "
            "refresh_mode => $4, initialize => $5") +
        (req.distribution_column ? ", output_distribution_column => $6)" : ")");
    // The query (and the new stream table's name) are the user's SQL.
    const UserSearchPath user(node);
    node.trace(sql);
    pqxx::nontransaction tx(node.conn());
    if (req.distribution_column) {
        tx.exec_params(sql, req.name, req.query, param(req.schedule), req.refresh_mode,
                       req.initialize, *req.distribution_column);
    } else {
        tx.exec_params(sql, req.name, req.query, param(req.schedule), req.refresh_mode,
                       req.initialize);
    }
}

void alter_stream_table(Node& node, const AlterRequest& req) {
    const std::string sql =
        "CALL pgtrickle.alter_stream_table(name => $1, query => $2, schedule => $3, "
        "refresh_mode => $4, status => $5)";
    // A new query is the user's SQL: the statement runs with the user's search_path (which
    // resolves the name too). Without one, the name is resolved first and the CALL pinned.
    std::optional<UserSearchPath> user;
    std::string name = req.name;
    if (req.query) {
        user.emplace(node);
    } else {
        name = stream_table_name(node, req.name);
    }
    node.trace(sql);
    pqxx::nontransaction tx(node.conn());
    tx.exec_params(sql, name, param(req.query), param(req.schedule), param(req.refresh_mode),
                   param(req.status));
}

void drop_stream_table(Node& node, const std::string& name, bool cascade) {
    const std::string qualified = stream_table_name(node, name);
    const std::string sql = "CALL pgtrickle.drop_stream_table(name => $1, \"cascade\" => $2)";
    node.trace(sql);
    pqxx::nontransaction tx(node.conn());
    tx.exec_params(sql, qualified, cascade);
}

void refresh_stream_table(Node& node, const std::string& name, bool full) {
    call_refresh(node, stream_table_name(node, name), full);
}

std::vector<std::size_t> dependency_order(
    std::size_t n, const std::vector<std::pair<std::size_t, std::size_t>>& edges) {
    std::vector<std::vector<std::size_t>> readers(n);
    std::vector<std::size_t> pending_upstreams(n, 0);
    for (const auto& [up, reader] : edges) {
        if (up < n && reader < n && up != reader) {
            readers[up].push_back(reader);
            ++pending_upstreams[reader];
        }
    }
    std::set<std::size_t> ready;  // smallest index first keeps the input order
    for (std::size_t i = 0; i < n; ++i) {
        if (pending_upstreams[i] == 0) {
            ready.insert(i);
        }
    }
    std::vector<std::size_t> order;
    std::vector<bool> placed(n, false);
    while (!ready.empty()) {
        const std::size_t i = *ready.begin();
        ready.erase(ready.begin());
        order.push_back(i);
        placed[i] = true;
        for (std::size_t r : readers[i]) {
            if (--pending_upstreams[r] == 0) {
                ready.insert(r);
            }
        }
    }
    for (std::size_t i = 0; i < n; ++i) {
        if (!placed[i]) {
            order.push_back(i);
        }
    }
    return order;
}

std::vector<RefreshResult> refresh_all(Node& node, bool full,
                                       const std::function<void(const RefreshResult&)>& on_result) {
    const std::string list_sql =
        "SELECT st.pgt_id, pg_catalog.format('%I.%I', st.pgt_schema, st.pgt_name) "
        "FROM pgtrickle.pgt_stream_tables st ORDER BY st.pgt_schema, st.pgt_name";
    const std::string edges_sql =
        "SELECT up.pgt_id, d.pgt_id FROM pgtrickle.pgt_dependencies d "
        "JOIN pgtrickle.pgt_stream_tables up "
        "ON up.pgt_relid OPERATOR(pg_catalog.=) d.source_relid";
    std::vector<std::pair<long long, std::string>> tables;
    std::vector<std::pair<std::size_t, std::size_t>> edges;
    {
        pqxx::read_transaction tx(node.conn());
        node.trace(list_sql);
        for (const pqxx::row& r : tx.exec(list_sql)) {
            tables.emplace_back(r[0].as<long long>(), r[1].c_str());
        }
        auto index_of = [&](long long id) {
            for (std::size_t i = 0; i < tables.size(); ++i) {
                if (tables[i].first == id) {
                    return i;
                }
            }
            return tables.size();  // ignored by dependency_order
        };
        node.trace(edges_sql);
        for (const pqxx::row& r : tx.exec(edges_sql)) {
            edges.emplace_back(index_of(r[0].as<long long>()), index_of(r[1].as<long long>()));
        }
    }
    std::vector<RefreshResult> results;
    for (std::size_t i : dependency_order(tables.size(), edges)) {
        RefreshResult res;
        res.name = tables[i].second;
        const auto start = std::chrono::steady_clock::now();
        try {
            call_refresh(node, res.name, full);  // already schema-qualified
            res.ok = true;
        } catch (const pqxx::broken_connection&) {
            throw;
        } catch (const pqxx::sql_error& e) {
            res.error = from_sql_error(e);
        }
        res.seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (on_result) {
            on_result(res);
        }
        results.push_back(std::move(res));
    }
    return results;
}

json::Value explain_query(Node& node, const std::string& query) {
    // The query is the user's SQL; the statement names nothing unqualified.
    const std::string sql =
        "SELECT pgtrickle.explain_stream_table($1::pg_catalog.text)::pg_catalog.text";
    const UserSearchPath user(node);
    node.trace(sql);
    std::string text;
    {
        pqxx::read_transaction tx(node.conn());
        text = tx.exec_params1(sql, query)[0].c_str();
    }
    return json::parse(text);
}

}  // namespace pgt::client
