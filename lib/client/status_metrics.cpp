#include "client/status_metrics.h"

#include <algorithm>
#include <set>

namespace pgt::client {

namespace {

using Labels = std::vector<std::pair<std::string, std::string>>;

// The statuses of pgt_stream_tables.status, each exported as its own 0/1 series so that
// an alert on one of them keeps a series when the status changes.
const char* const statuses[] = {"initializing", "active", "suspended", "error"};

prometheus::Family up_family(bool up) {
    prometheus::Family f{"pgtrickle_up",
                         "1 when pgtrickle could read the status from the database, else 0",
                         prometheus::Type::gauge,
                         {}};
    f.add({}, up ? 1 : 0);
    return f;
}

Labels table_labels(const json::Value& st) {
    return {{"schema", json::string_or_empty(st["pgt_schema"])},
            {"name", json::string_or_empty(st["pgt_name"])}};
}

Labels with(Labels labels, const char* name, std::string value) {
    labels.emplace_back(name, std::move(value));
    return labels;
}

// A per-table gauge from one numeric (or boolean) column; rows where it is NULL are skipped.
prometheus::Family column_gauge(const json::Value& rows, const char* metric, const char* help,
                                const char* column) {
    prometheus::Family f{metric, help, prometheus::Type::gauge, {}};
    for (const json::Value& st : rows.as_array()) {
        const json::Value& v = st[column];
        if (v.is_number()) {
            f.add(table_labels(st), v.as_double());
        } else if (v.is_bool()) {
            f.add(table_labels(st), v.as_bool() ? 1 : 0);
        }
    }
    return f;
}

// Worker slots: health, lag, failures and poll age per source and worker. Only present when
// pgt_worker_slots has rows, so nothing changes without WAL capture.
void append_worker_slot_metrics(const json::Value& slots, std::vector<prometheus::Family>& out) {
    prometheus::Family lag{"pgtrickle_worker_slot_lag_bytes",
                           "bytes of WAL between the worker slot's consumed frontier and the "
                           "worker's position at the last poll",
                           prometheus::Type::gauge,
                           {}};
    prometheus::Family failures{"pgtrickle_worker_slot_consecutive_failures",
                                "polls of the worker slot that failed since the last success",
                                prometheus::Type::gauge,
                                {}};
    prometheus::Family age{"pgtrickle_worker_slot_last_poll_age_seconds",
                           "seconds since the worker slot was last polled successfully",
                           prometheus::Type::gauge,
                           {}};
    prometheus::Family up{"pgtrickle_worker_slot_up",
                          "1 when the worker slot is healthy (it has a frontier and its last poll "
                          "did not fail), else 0",
                          prometheus::Type::gauge,
                          {}};
    for (const json::Value& s : slots.as_array()) {
        const Labels labels{{"source", json::string_or_empty(s["source"])},
                            {"worker", json::string_or_empty(s["worker"])}};
        up.add(labels, worker_slot_status(s).ok() ? 1 : 0);
        if (s["lag_bytes"].is_number()) {
            lag.add(labels, s["lag_bytes"].as_double());
        }
        if (s["consecutive_failures"].is_number()) {
            failures.add(labels, s["consecutive_failures"].as_double());
        }
        if (s["last_poll_age_seconds"].is_number()) {
            age.add(labels, s["last_poll_age_seconds"].as_double());
        }
    }
    out.push_back(std::move(up));
    out.push_back(std::move(lag));
    out.push_back(std::move(failures));
    out.push_back(std::move(age));
}

// Citus nodes: whether the coordinator reaches each. Only present with Citus.
prometheus::Family node_up_family(const std::vector<NodeReachability>& nodes) {
    prometheus::Family f{"pgtrickle_node_up",
                         "1 when the coordinator reached the Citus node, 0 when it could not or "
                         "the check failed",
                         prometheus::Type::gauge,
                         {}};
    for (const NodeReachability& n : nodes) {
        f.add({{"node", n.node}, {"role", n.role}}, n.reachable == true ? 1 : 0);
    }
    return f;
}

}  // namespace

std::vector<prometheus::Family> status_metrics(const StatusSnapshot& snap, const Health& health) {
    const json::Value& rows = snap.stream_tables;
    std::vector<prometheus::Family> out;
    out.push_back(up_family(true));

    prometheus::Family healthy{"pgtrickle_healthy",
                               "1 when pgtrickle status would exit 0 (nothing unhealthy), else 0",
                               prometheus::Type::gauge,
                               {}};
    healthy.add({}, health.healthy ? 1 : 0);
    out.push_back(std::move(healthy));

    prometheus::Family scheduler{"pgtrickle_scheduler_running",
                                 "1 when this database's pg_trickle scheduler is running, else 0",
                                 prometheus::Type::gauge,
                                 {}};
    scheduler.add({}, snap.scheduler_pid ? 1 : 0);
    out.push_back(std::move(scheduler));

    prometheus::Family count{
        "pgtrickle_stream_tables", "number of stream tables reported", prometheus::Type::gauge, {}};
    count.add({}, static_cast<double>(rows.as_array().size()));
    out.push_back(std::move(count));

    std::set<std::string> unhealthy;
    for (const Problem& p : health.problems) {
        unhealthy.insert(p.subject);
    }
    prometheus::Family up{"pgtrickle_stream_table_up",
                          "1 when the stream table is healthy (not in error, suspended or stale), "
                          "else 0",
                          prometheus::Type::gauge,
                          {}};
    prometheus::Family status{"pgtrickle_stream_table_status",
                              "1 for the stream table's current status, 0 for the others",
                              prometheus::Type::gauge,
                              {}};
    prometheus::Family recent{"pgtrickle_stream_table_recent_refreshes",
                              "refreshes by mode in the bounded refresh history "
                              "(pgtrickle.pgt_refresh_history; old entries are removed, so this "
                              "is not a counter)",
                              prometheus::Type::gauge,
                              {}};
    for (const json::Value& st : rows.as_array()) {
        const Labels labels = table_labels(st);
        up.add(labels, unhealthy.count(stream_table_label(st)) ? 0 : 1);
        const std::string current = json::string_or_empty(st["status"]);
        for (const char* s : statuses) {
            status.add(with(labels, "status", s), current == s ? 1 : 0);
        }
        if (!current.empty() && std::none_of(std::begin(statuses), std::end(statuses),
                                             [&](const char* s) { return current == s; })) {
            status.add(with(labels, "status", current), 1);
        }
        if (const json::Value& by_mode = st["recent_refreshes"]; by_mode.is_object()) {
            for (const auto& [mode, n] : by_mode.as_object()) {
                if (n.is_number()) {
                    recent.add(with(labels, "mode", mode), n.as_double());
                }
            }
        }
    }
    out.push_back(std::move(up));
    out.push_back(std::move(status));
    out.push_back(column_gauge(rows, "pgtrickle_stream_table_stale",
                               "1 when the stream table was last refreshed more than two "
                               "schedule intervals ago (pgt_status.stale), else 0",
                               "stale"));
    out.push_back(column_gauge(rows, "pgtrickle_stream_table_staleness_seconds",
                               "seconds since the stream table's last refresh",
                               "staleness_seconds"));
    out.push_back(column_gauge(rows, "pgtrickle_stream_table_schedule_interval_seconds",
                               "the stream table's refresh interval in seconds",
                               "schedule_interval_seconds"));
    out.push_back(column_gauge(rows, "pgtrickle_stream_table_consecutive_errors",
                               "failed refreshes since the last successful one",
                               "consecutive_errors"));
    out.push_back(column_gauge(rows, "pgtrickle_stream_table_pending_changes",
                               "captured changes not yet applied to the stream table",
                               "pending_changes"));
    out.push_back(column_gauge(rows, "pgtrickle_stream_table_last_refresh_rows",
                               "rows changed by the stream table's last refresh",
                               "last_refresh_rows"));
    out.push_back(std::move(recent));

    prometheus::Family readers{"pgtrickle_source_readers",
                               "stream tables reading each captured source",
                               prometheus::Type::gauge,
                               {}};
    for (const json::Value& src : snap.sources.as_array()) {
        if (src["readers"].is_number()) {
            readers.add({{"source", json::string_or_empty(src["source_relid"])},
                         {"stable_name", json::string_or_empty(src["source_stable_name"])}},
                        src["readers"].as_double());
        }
    }
    out.push_back(std::move(readers));
    if (!snap.worker_slots.as_array().empty()) {
        append_worker_slot_metrics(snap.worker_slots, out);
    }
    if (!snap.nodes.empty()) {
        out.push_back(node_up_family(snap.nodes));
    }
    return out;
}

std::vector<prometheus::Family> unreachable_metrics() {
    std::vector<prometheus::Family> out;
    out.push_back(up_family(false));
    return out;
}

}  // namespace pgt::client
