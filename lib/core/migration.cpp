#include "core/migration.h"

#include <algorithm>
#include <map>

#include "core/sql_ident.h"
#include "core/stable_name.h"

namespace pgt::migration {
namespace {

struct StepText {
    const char* from;
    const char* to;
    std::vector<std::string> changes;
};

// Keep in step with migrations/pg_trickle--A--B.sql (the integration suite's catalog test
// checks the scripts; this text is what the plan shows).
const std::vector<StepText>& step_table() {
    static const std::vector<StepText> t = {
        {"0.31.0",
         "0.32.0",
         {"add pgt_change_tracking.source_stable_name (unique)",
          "add pgt_change_tracking.source_placement, frontier_per_node",
          "add pgt_dependencies.source_stable_name, source_placement",
          "add pgt_stream_tables.st_placement", "add function pgtrickle.source_stable_name(oid)",
          "backfill source_stable_name of every captured source",
          "rename capture objects from OID names to stable names",
          "rekey frontiers from OIDs to stable names",
          "recreate views pgt_status, pgt_source_status"}},
        {"0.32.0",
         "0.31.0",
         {"rename capture objects from stable names back to OID names",
          "rekey frontiers from stable names to OIDs",
          "drop function pgtrickle.source_stable_name(oid)",
          "drop columns st_placement, source_stable_name, source_placement, frontier_per_node",
          "recreate views pgt_status, pgt_source_status"}},
        {"0.32.0",
         "0.33.0",
         {"add pgt_stream_tables.output_distribution_column",
          "create_stream_table gains output_distribution_column",
          "add table pgt_worker_slots (dumped by pg_dump)",
          "add function pgtrickle.handle_vp_promoted(text)"}},
        {"0.33.0",
         "0.32.0",
         {"drop function pgtrickle.handle_vp_promoted(text)", "drop table pgt_worker_slots",
          "create_stream_table loses output_distribution_column",
          "drop pgt_stream_tables.output_distribution_column"}},
        {"0.33.0", "0.34.0", {"add table pgt_st_locks", "add view citus_status"}},
        {"0.34.0", "0.33.0", {"drop view citus_status", "drop table pgt_st_locks"}},
        {"0.34.0",
         "0.35.0",
         {"add pgt_stream_tables.refresh_settings, full_refresh_reason",
          "add pgt_worker_slots.worker_lsn and failing_since",
          "citus_status lists reference sources and slot health",
          "add functions poll_worker_slots, provision_worker_slots, drop_orphan_worker_slots",
          "handle_vp_promoted validates every payload field"}},
        {"0.35.0",
         "0.34.0",
         {"drop pgt_stream_tables.refresh_settings, full_refresh_reason",
          "drop functions poll_worker_slots, provision_worker_slots, drop_orphan_worker_slots",
          "drop pgt_worker_slots.worker_lsn and failing_since", "citus_status as in 0.34.0",
          "handle_vp_promoted as in 0.34.0"}},
    };
    return t;
}

int index_of(const std::string& v) {
    const auto& vs = known_versions();
    return static_cast<int>(std::find(vs.begin(), vs.end(), v) - vs.begin());
}

}  // namespace

const std::vector<std::string>& known_versions() {
    static const std::vector<std::string> v = {"0.31.0", "0.32.0", "0.33.0", "0.34.0", "0.35.0"};
    return v;
}

bool is_known(const std::string& v) {
    return index_of(v) < static_cast<int>(known_versions().size());
}

std::vector<Step> steps(const std::string& from, const std::string& to) {
    std::vector<Step> out;
    if (!is_known(from) || !is_known(to)) {
        return out;
    }
    const auto& vs = known_versions();
    int i = index_of(from);
    const int j = index_of(to);
    while (i != j) {
        const int next = i < j ? i + 1 : i - 1;
        for (const auto& s : step_table()) {
            if (vs[i] == s.from && vs[next] == s.to) {
                out.push_back({s.from, s.to, s.changes});
            }
        }
        i = next;
    }
    return out;
}

Plan plan(const std::string& node, const std::string& database, const std::string& from,
          const std::string& to, const std::vector<Source>& sources,
          int stream_tables_with_frontier) {
    Plan p;
    p.node = node;
    p.from = from;
    p.to = to;
    if (!is_known(from)) {
        p.problems.push_back("installed version " + from + " is unknown to this pgtrickle");
    }
    if (!is_known(to)) {
        p.problems.push_back("target version " + to + " is unknown to this pgtrickle");
    }
    if (!p.problems.empty() || from == to) {
        return p;
    }
    p.steps = steps(from, to);
    // WAL capture is read by the 0.35.0 catalog and later only.
    const int wal_catalog = index_of("0.35.0");
    if (index_of(to) < wal_catalog) {
        for (const auto& s : sources) {
            if (!s.wal) {
                continue;
            }
            const std::string src = s.schema + "." + s.table;
            p.problems.push_back(
                index_of(from) >= wal_catalog
                    ? "source " + src + " is captured through WAL, which pg_trickle " + to +
                          " cannot read; switch it to triggers first (create a stream table on it "
                          "with cdc_mode => 'trigger'), or drop its stream tables"
                    : "source " + src + " is captured through WAL, which pg_trickle " + to +
                          " cannot read; migrate to 0.35.0 or later");
        }
    }
    const int boundary = index_of("0.32.0");
    const bool up = index_of(from) < boundary && index_of(to) >= boundary;
    const bool down = index_of(from) >= boundary && index_of(to) < boundary;
    if (!up && !down) {
        return p;
    }
    std::map<std::string, std::string> owner;  // stable name -> source
    for (const auto& s : sources) {
        const std::string sn =
            s.stable_name ? *s.stable_name : stable_name(database, s.schema, s.table);
        const std::string src = s.schema + "." + s.table;
        auto [it, fresh] = owner.emplace(sn, src);
        if (!fresh) {
            p.problems.push_back("stable name collision: " + it->second + " and " + src +
                                 " both hash to " + sn + "; rename one of them first");
        }
        const std::string old_key = up ? s.relid : sn;
        const std::string new_key = up ? sn : s.relid;
        const auto o = capture_object_names(old_key);
        const auto n = capture_object_names(new_key);
        const std::string tbl = sql::qualified(s.schema, s.table);
        p.renames.push_back({"table", "pgtrickle_changes." + o.buffer_table,
                             "pgtrickle_changes." + n.buffer_table, ""});
        p.renames.push_back(
            {"index", "pgtrickle_changes." + o.xid_index, "pgtrickle_changes." + n.xid_index, ""});
        if (s.wal) {
            // No triggers: a slot and a publication, taken over after the catalog update.
            p.renames.push_back({"slot", o.slot, n.slot, tbl});
            continue;
        }
        p.renames.push_back({"function", "pgtrickle_changes." + o.trigger_function + "()",
                             "pgtrickle_changes." + n.trigger_function + "()", ""});
        for (const auto& [a, b] : {std::pair{o.trigger_insert, n.trigger_insert},
                                   {o.trigger_update, n.trigger_update},
                                   {o.trigger_delete, n.trigger_delete},
                                   {o.trigger_truncate, n.trigger_truncate}}) {
            p.renames.push_back({"trigger", a, b, tbl});
        }
    }
    p.frontier_rekeys = stream_tables_with_frontier;
    return p;
}

std::vector<std::size_t> apply_order(const std::string& coordinator_version,
                                     const std::string& target, std::size_t nodes) {
    std::vector<std::size_t> order;
    if (nodes == 0) {
        return order;
    }
    const bool coordinator_first = index_of(target) < index_of(coordinator_version);
    if (coordinator_first) {
        order.push_back(0);
    }
    for (std::size_t i = 1; i < nodes; ++i) {
        order.push_back(i);
    }
    if (!coordinator_first) {
        order.push_back(0);
    }
    return order;
}

const char* outcome_name(Outcome o) {
    switch (o) {
        case Outcome::planned:
            return "planned";
        case Outcome::up_to_date:
            return "up_to_date";
        case Outcome::migrated:
            return "migrated";
        case Outcome::failed:
            return "failed";
        case Outcome::not_attempted:
            return "not_attempted";
        case Outcome::unreachable:
            return "unreachable";
    }
    return "unknown";
}

ExitCode stopped_run_code(const std::vector<Outcome>& outcomes, ExitCode failure) {
    const bool some_at_target = std::any_of(outcomes.begin(), outcomes.end(), [](Outcome o) {
        return o == Outcome::migrated || o == Outcome::up_to_date;
    });
    return some_at_target ? ExitCode::partial_failure : failure;
}

}  // namespace pgt::migration
