#include "client/status.h"

#include <pqxx/transaction>

#include "client/catalog.h"
#include "client/node_probe.h"
#include "client/slots.h"
#include "core/cli_format.h"

namespace pgt::client {

namespace {

// The problem of one stream table, if it has one: its status first, then staleness.
std::optional<Problem> stream_table_problem(const json::Value& st, const HealthRules& rules) {
    const std::string label = stream_table_label(st);
    const std::string status = json::string_or_empty(st["status"]);
    if (status == "error" || status == "suspended") {
        std::string message = label + " (" + status;
        if (const std::string err = json::string_or_empty(st["last_error"]); !err.empty()) {
            message += ": " + err;
        }
        return Problem{label, status, message + ")"};
    }
    const json::Value& staleness = st["staleness_seconds"];
    const std::string age =
        staleness.is_number() ? cli_format::format_duration(staleness.as_double()) : "";
    if (st["stale"].is_bool() && st["stale"].as_bool()) {
        std::string message = label + " (stale: last refreshed " + age + " ago";
        if (const std::string schedule = json::string_or_empty(st["schedule"]); !schedule.empty()) {
            message += ", schedule " + schedule;
        }
        return Problem{label, "stale", message + ")"};
    }
    if (rules.max_staleness_seconds && staleness.is_number() &&
        staleness.as_double() > *rules.max_staleness_seconds) {
        return Problem{label, "max_staleness",
                       label + " (staleness " + age + " exceeds " +
                           cli_format::format_duration(*rules.max_staleness_seconds) + ")"};
    }
    return std::nullopt;
}

std::string count_of(std::size_t n, const char* one, const char* many) {
    return std::to_string(n) + " " + (n == 1 ? one : many);
}

}  // namespace

std::string stream_table_label(const json::Value& row) {
    return json::string_or_empty(row["pgt_schema"]) + "." + json::string_or_empty(row["pgt_name"]);
}

StatusSnapshot read_status(Node& node, const std::optional<std::string>& name,
                           const NodeProbeOptions& probe) {
    // NAME is resolved as the user's SQL would resolve it (before the transaction: that
    // takes the user's search_path for one statement); everything else runs pinned.
    std::optional<std::string> relid;
    if (name) {
        relid = resolve_relation(node, *name);
        if (!relid) {
            throw NotFound("stream table \"" + *name + "\" does not exist");
        }
    }
    StatusSnapshot snap;
    {
        pqxx::read_transaction tx(node.conn());
        // Stable, machine-friendly text for timestamps and intervals, for this transaction.
        tx.exec(
            "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; "
            "SET LOCAL IntervalStyle = 'iso_8601'");
        std::optional<long long> id;
        if (relid) {
            const std::string find_sql =
                "SELECT st.pgt_id FROM pgtrickle.pgt_stream_tables st "
                "WHERE st.pgt_relid OPERATOR(pg_catalog.=) $1::pg_catalog.oid";
            node.trace(find_sql);
            const pqxx::result r = tx.exec_params(find_sql, *relid);
            if (r.empty()) {
                throw NotFound("stream table \"" + *name + "\" does not exist");
            }
            id = r[0][0].as<long long>();
        }
        const char* id_param = nullptr;
        std::string id_text;
        if (id) {
            id_text = std::to_string(*id);
            id_param = id_text.c_str();
        }
        const std::string st_sql =
            "SELECT s.*, pg_catalog.date_part('epoch', s.staleness)::pg_catalog.float8 AS "
            "staleness_seconds, pg_catalog.date_part('epoch', s.schedule_interval)"
            "::pg_catalog.float8 AS schedule_interval_seconds, "
            "COALESCE((SELECT pg_catalog.jsonb_object_agg(h.mode, h.n) FROM "
            "(SELECT rh.mode, pg_catalog.count(*) AS n FROM pgtrickle.pgt_refresh_history rh "
            "WHERE rh.pgt_id OPERATOR(pg_catalog.=) s.pgt_id GROUP BY rh.mode) h), "
            "'{}'::pg_catalog.jsonb) AS recent_refreshes, "
            // output_distribution_column exists from 0.33.0 on.
            "(SELECT pg_catalog.to_jsonb(t) OPERATOR(pg_catalog.->>) 'output_distribution_column' "
            "FROM pgtrickle.pgt_stream_tables t WHERE t.pgt_id OPERATOR(pg_catalog.=) s.pgt_id) "
            "AS distribution_column "
            "FROM pgtrickle.pgt_status s WHERE $1::pg_catalog.int8 IS NULL "
            "OR s.pgt_id OPERATOR(pg_catalog.=) $1::pg_catalog.int8 "
            "ORDER BY s.pgt_schema, s.pgt_name";
        const std::string src_sql =
            "SELECT ss.* FROM pgtrickle.pgt_source_status ss WHERE $1::pg_catalog.int8 IS NULL "
            "OR ss.source_relid OPERATOR(pg_catalog.=) ANY (SELECT d.source_relid FROM "
            "pgtrickle.pgt_dependencies d WHERE d.pgt_id OPERATOR(pg_catalog.=) "
            "$1::pg_catalog.int8) ORDER BY ss.source_relid::pg_catalog.text";
        const std::string scheduler_sql =
            "SELECT pgtrickle.scheduler_pid(), "
            "COALESCE(pg_catalog.current_setting('pg_trickle.enabled', true)::pg_catalog.bool, "
            "true), pg_catalog.pg_is_in_recovery()";
        node.trace(st_sql);
        snap.stream_tables = rows_to_json(tx.exec_params(st_sql, id_param));
        node.trace(src_sql);
        snap.sources = rows_to_json(tx.exec_params(src_sql, id_param));
        snap.worker_slots = read_worker_slots(tx, node, SlotFilter{std::nullopt, id});
        node.trace(scheduler_sql);
        const pqxx::row pid = tx.exec1(scheduler_sql);
        if (!pid[0].is_null()) {
            snap.scheduler_pid = pid[0].as<long long>();
        }
        snap.scheduler_enabled = pid[1].as<bool>();
        snap.in_recovery = pid[2].as<bool>();
    }
    // Citus: can the coordinator reach its nodes? With NAME, only the nodes that the slots of
    // this stream table's sources are on matter to it.
    if (!name || !snap.worker_slots.as_array().empty()) {
        snap.nodes = probe_nodes(node, probe);
        if (name) {
            snap.nodes = nodes_of_slots(snap.nodes, snap.worker_slots);
        }
    }
    return snap;
}

std::string worker_slot_label(const json::Value& slot) {
    return json::string_or_empty(slot["source"]) + "@" + json::string_or_empty(slot["worker"]);
}

ItemStatus worker_slot_status(const json::Value& slot) {
    const std::string error = json::string_or_empty(slot["last_error"]);
    if (!slot["worker_frontier"].is_string()) {
        return {"not_capturable", "no frontier: the node cannot capture this source" +
                                      (error.empty() ? std::string() : ": " + error)};
    }
    const json::Value& failures = slot["consecutive_failures"];
    if (failures.is_number() && failures.as_double() > 0) {
        const long long n = failures.as_int();
        std::string message = std::to_string(n) + (n == 1 ? " failed poll" : " failed polls");
        if (const std::string since = json::string_or_empty(slot["failing_since"]);
            !since.empty()) {
            message += " since " + since;
        }
        return {"failing", message + (error.empty() ? std::string() : ": " + error)};
    }
    return {"ok", error.empty() ? "healthy" : "healthy (recovered: " + error + ")"};
}

ItemStatus node_status(const NodeReachability& node) {
    if (node.reachable == true && node.version_mismatch) {
        return {"version_mismatch", node.error};
    }
    if (node.reachable == true) {
        return {"ok", "reached from the coordinator"};
    }
    if (node.reachable == false) {
        return {"unreachable", "the coordinator cannot reach it: " + node.error};
    }
    return {"unknown", node.error.empty() ? std::string("not checked") : node.error};
}

Health assess_health(const StatusSnapshot& snap, const HealthRules& rules) {
    Health h;
    const auto& rows = snap.stream_tables.as_array();
    std::size_t scheduled = 0;
    for (const json::Value& st : rows) {
        if (st["schedule"].is_string()) {
            ++scheduled;
        }
        if (auto problem = stream_table_problem(st, rules)) {
            h.problems.push_back(std::move(*problem));
        }
    }
    const std::size_t bad_tables = h.problems.size();
    std::optional<Problem> scheduler;
    if (snap.in_recovery) {
        // No scheduler on a standby, by design: nothing to report about it.
    } else if (scheduled > 0 && !snap.scheduler_pid) {
        scheduler = Problem{"scheduler", "scheduler_not_running",
                            "the scheduler is not running but " +
                                count_of(scheduled, "stream table has", "stream tables have") +
                                " a schedule (is pg_trickle in shared_preload_libraries and "
                                "pg_trickle.enabled on?)"};
    } else if (scheduled > 0 && !snap.scheduler_enabled) {
        scheduler = Problem{"scheduler", "scheduler_disabled",
                            "pg_trickle.enabled is off: " +
                                count_of(scheduled, "stream table with a schedule is",
                                         "stream tables with a schedule are") +
                                " not refreshed (turn it on and reload the configuration)"};
    }
    if (scheduler) {
        h.problems.push_back(*scheduler);
    }
    const auto& slots = snap.worker_slots.as_array();
    std::vector<std::string> bad_slots;
    for (const json::Value& slot : slots) {
        const ItemStatus st = worker_slot_status(slot);
        if (!st.ok()) {
            const std::string label = worker_slot_label(slot);
            bad_slots.push_back(label + " (" + st.message + ")");
            h.problems.push_back({label, "worker_slot_" + st.code, bad_slots.back()});
        }
    }
    std::vector<std::string> bad_nodes;
    std::vector<std::string> other_versions;
    for (const NodeReachability& node : snap.nodes) {
        const ItemStatus st = node_status(node);
        if (!st.ok()) {
            auto& list = node.version_mismatch ? other_versions : bad_nodes;
            list.push_back(node.node + " (" + node.role + ", " + st.code + ": " + node.error + ")");
            h.problems.push_back({node.node, "node_" + st.code, list.back()});
        }
    }
    h.healthy = h.problems.empty();

    // The summary: what was checked when all is well, else each kind of problem.
    std::vector<std::string> parts;
    const std::string tables = rows.empty()
                                   ? std::string("no stream tables")
                                   : count_of(rows.size(), "stream table", "stream tables");
    if (h.healthy) {
        if (rows.empty() && slots.empty() && snap.nodes.empty()) {
            h.message = "no stream tables";
            return h;
        }
        h.message = tables;
        if (!slots.empty()) {
            h.message += ", " + count_of(slots.size(), "worker slot", "worker slots");
        }
        if (!snap.nodes.empty()) {
            h.message += ", " + count_of(snap.nodes.size(), "node", "nodes");
        }
        h.message += ", all healthy";
        return h;
    }
    if (bad_tables > 0) {
        std::string part = std::to_string(bad_tables) + " of " + tables + " unhealthy: ";
        for (std::size_t i = 0; i < bad_tables; ++i) {
            part += (i ? ", " : "") + h.problems[i].message;
        }
        parts.push_back(part);
    } else {
        parts.push_back(tables);
    }
    if (scheduler) {
        parts.push_back(scheduler->message);
    }
    const auto list = [](std::size_t bad, std::size_t of, const char* one, const char* many,
                         const char* what, const std::vector<std::string>& items) {
        std::string part =
            std::to_string(bad) + " of " + count_of(of, one, many) + " " + what + ": ";
        for (std::size_t i = 0; i < items.size(); ++i) {
            part += (i ? ", " : "") + items[i];
        }
        return part;
    };
    if (!bad_slots.empty()) {
        parts.push_back(list(bad_slots.size(), slots.size(), "worker slot", "worker slots",
                             "failing", bad_slots));
    }
    if (!bad_nodes.empty()) {
        parts.push_back(
            list(bad_nodes.size(), snap.nodes.size(), "node", "nodes", "not reachable", bad_nodes));
    }
    if (!other_versions.empty()) {
        parts.push_back(list(other_versions.size(), snap.nodes.size(), "node", "nodes",
                             "on another pg_trickle version", other_versions));
    }
    for (std::size_t i = 0; i < parts.size(); ++i) {
        h.message += (i ? "; " : "") + parts[i];
    }
    return h;
}

}  // namespace pgt::client
