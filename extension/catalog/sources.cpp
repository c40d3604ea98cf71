// The catalog layer: captured sources and worker slots. Every function runs as the
// extension's owner with search_path pinned (pg::AsExtensionOwner); SQL is schema-qualified.
#include "catalog/sources.h"

#include "boundary/guard.h"
#include "boundary/pg.h"
#include "boundary/spi.h"
#include "catalog/generation.h"
#include "common/oids.h"
#include "core/sql_ident.h"
#include "core/stable_name.h"

extern "C" {
#include "access/transam.h"
#include "access/xact.h"
}

namespace pgt::catalog {
namespace {

using detail::source_key_sql;

/// Columns of pgt_change_tracking `ct` read into a Source, in the order from_row reads them.
std::string source_columns() {
    const bool stable = has_stable_names();
    return "ct.source_relid::pg_catalog.oid::pg_catalog.text, " + source_key_sql("ct") +
           ", ct.cdc_mode, " +
           (stable ? std::string("ct.source_placement") : "'local'::pg_catalog.text") +
           ", ct.buffer_sysid, " +
           (stable ? std::string("ct.source_stable_name") : "NULL::pg_catalog.text");
}

Source from_row(const spi::Row& r, size_t at = 0) {
    Source s;
    s.relid = oid_of(r[at]);
    s.captured = true;
    s.key = r[at + 1].value_or("");
    s.cdc_mode = r[at + 2].value_or("trigger");
    s.placement = r[at + 3].value_or("local");
    s.buffer_sysid = r[at + 4];
    s.stable_name = r[at + 5];
    return s;
}

std::vector<Source> sources_where(const std::string& condition,
                                  const std::vector<spi::Value>& params) {
    const pg::AsExtensionOwner owner;
    std::vector<Source> out;
    for (const auto& r : spi::exec_cached("SELECT " + source_columns() +
                                              " FROM pgtrickle.pgt_change_tracking ct WHERE " +
                                              condition + " ORDER BY ct.source_relid",
                                          params)
                             .rows) {
        out.push_back(from_row(r));
    }
    return out;
}

const char* const kWorkerSlotColumns =
    "source_stable_name, worker_name, worker_port::pg_catalog.text, slot_name, "
    "publication_name, worker_frontier::pg_catalog.text, worker_lsn::pg_catalog.text, "
    "consecutive_failures::pg_catalog.text, last_error, xmin::pg_catalog.text";

WorkerSlot slot_from_row(const spi::Row& r, size_t at = 0) {
    WorkerSlot s;
    s.source_key = r[at].value_or("");
    s.host = r[at + 1].value_or("");
    s.port = std::stoi(r[at + 2].value_or("0"));
    s.slot = r[at + 3].value_or("");
    s.publication = r[at + 4].value_or("");
    s.frontier = r[at + 5];
    s.lsn = r[at + 6];
    s.consecutive_failures = std::stoi(r[at + 7].value_or("0"));
    s.last_error = r[at + 8];
    const auto xmin = static_cast<TransactionId>(std::stoul(r[at + 9].value_or("0")));
    s.written_here =
        pg_call([xmin]() noexcept { return TransactionIdIsCurrentTransactionId(xmin); });
    return s;
}

}  // namespace

std::string Source::buffer() const {
    return sql::qualified(kChangeSchema, capture_object_names(key).buffer_table);
}

std::optional<Source> source(Oid relid) {
    auto found =
        sources_where("ct.source_relid::pg_catalog.oid OPERATOR(pg_catalog.=) $1::pg_catalog.oid",
                      {oid_text(relid)});
    if (found.empty()) {
        return std::nullopt;
    }
    return found.front();
}

std::optional<Source> source_with_key(const std::string& key) {
    auto found = sources_where(source_key_sql("ct") + " OPERATOR(pg_catalog.=) $1", {key});
    if (found.empty()) {
        return std::nullopt;
    }
    return found.front();
}

std::vector<Source> sources_of(int64_t id, Snapshot snapshot) {
    const pg::AsExtensionOwner owner;
    std::vector<Source> out;
    for (const auto& r :
         spi::exec_cached(
             "SELECT d.source_relid::pg_catalog.oid::pg_catalog.text, " + source_columns() +
                 " FROM pgtrickle.pgt_dependencies d LEFT JOIN pgtrickle.pgt_change_tracking ct "
                 "ON ct.source_relid::pg_catalog.oid OPERATOR(pg_catalog.=) "
                 "d.source_relid::pg_catalog.oid WHERE d.pgt_id OPERATOR(pg_catalog.=) "
                 "$1::pg_catalog.int8 ORDER BY d.source_relid",
             {std::to_string(id)}, snapshot)
             .rows) {
        if (r[1]) {
            out.push_back(from_row(r, 1));
        } else {
            Source s;
            s.relid = oid_of(r[0]);
            out.push_back(s);
        }
    }
    return out;
}

std::vector<Source> captured_sources() {
    return sources_where("true", {});
}

std::vector<Oid> wal_sources(std::optional<int64_t> id) {
    if (!has_wal_capture()) {
        return {};
    }
    const pg::AsExtensionOwner owner;
    std::vector<Oid> out;
    const auto rows =
        id ? spi::exec_cached(
                 "SELECT ct.source_relid::pg_catalog.oid::pg_catalog.text FROM "
                 "pgtrickle.pgt_dependencies d JOIN pgtrickle.pgt_change_tracking ct ON "
                 "ct.source_relid::pg_catalog.oid OPERATOR(pg_catalog.=) "
                 "d.source_relid::pg_catalog.oid WHERE d.pgt_id OPERATOR(pg_catalog.=) "
                 "$1::pg_catalog.int8 AND ct.cdc_mode OPERATOR(pg_catalog.=) 'wal' ORDER BY 1",
                 {std::to_string(*id)})
           : spi::exec_cached(
                 "SELECT source_relid::pg_catalog.oid::pg_catalog.text FROM "
                 "pgtrickle.pgt_change_tracking WHERE cdc_mode OPERATOR(pg_catalog.=) 'wal' "
                 "ORDER BY source_relid");
    for (const auto& r : rows.rows) {
        out.push_back(oid_of(r[0]));
    }
    return out;
}

std::vector<WalSourceState> wal_source_states() {
    if (!has_wal_capture()) {
        return {};
    }
    const pg::AsExtensionOwner owner;
    std::vector<WalSourceState> out;
    for (const auto& r :
         spi::exec_cached(
             "SELECT " + source_columns() +
             ", EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots s WHERE s.slot_name "
             "OPERATOR(pg_catalog.=) ('pgtrickle_' OPERATOR(pg_catalog.||) "
             "ct.source_relid::pg_catalog.oid::pg_catalog.text) AND NOT s.active AND s.plugin "
             "OPERATOR(pg_catalog.=) 'pgoutput' AND s.database OPERATOR(pg_catalog.=) "
             "pg_catalog.current_database())::pg_catalog.text FROM "
             "pgtrickle.pgt_change_tracking ct WHERE ct.cdc_mode OPERATOR(pg_catalog.=) 'wal' "
             "ORDER BY ct.source_relid")
             .rows) {
        out.push_back({from_row(r), r[6] == "true"});
    }
    return out;
}

std::optional<Source> source_with_trigger(const std::string& trigger_name) {
    auto found = sources_where("'pg_trickle_cdc_ins_' OPERATOR(pg_catalog.||) " +
                                   source_key_sql("ct") + " OPERATOR(pg_catalog.=) $1",
                               {trigger_name});
    if (found.empty()) {
        return std::nullopt;
    }
    return found.front();
}

void insert_source(Oid relid, const std::string& key, const std::string& cdc_mode,
                   const std::string& placement, const std::string& sysid) {
    const pg::AsExtensionOwner owner;
    if (has_stable_names()) {
        spi::run(
            "INSERT INTO pgtrickle.pgt_change_tracking (source_relid, cdc_mode, buffer_sysid, "
            "source_stable_name, source_placement) VALUES ($1::pg_catalog.oid, $2, $3, $4, $5)",
            {oid_text(relid), cdc_mode, sysid, key, placement});
    } else {
        spi::run(
            "INSERT INTO pgtrickle.pgt_change_tracking (source_relid, cdc_mode, buffer_sysid) "
            "VALUES ($1::pg_catalog.oid, $2, $3)",
            {oid_text(relid), cdc_mode, sysid});
    }
}

bool claim_buffer(Oid relid, const std::string& sysid, Snapshot snapshot) {
    const pg::AsExtensionOwner owner;
    return !spi::exec_cached(
                "UPDATE pgtrickle.pgt_change_tracking SET buffer_sysid = $2 WHERE "
                "source_relid::pg_catalog.oid OPERATOR(pg_catalog.=) $1::pg_catalog.oid AND "
                "buffer_sysid IS DISTINCT FROM $2 RETURNING 1",
                {oid_text(relid), sysid}, snapshot)
                .rows.empty();
}

void set_cdc_mode(Oid relid, const std::string& cdc_mode) {
    const pg::AsExtensionOwner owner;
    spi::run(
        "UPDATE pgtrickle.pgt_change_tracking SET cdc_mode = $2 WHERE "
        "source_relid::pg_catalog.oid OPERATOR(pg_catalog.=) $1::pg_catalog.oid",
        {oid_text(relid), cdc_mode});
}

void set_placement(Oid relid, const std::string& placement) {
    const pg::AsExtensionOwner owner;
    spi::run(
        "UPDATE pgtrickle.pgt_change_tracking SET source_placement = $2 WHERE "
        "source_relid::pg_catalog.oid OPERATOR(pg_catalog.=) $1::pg_catalog.oid",
        {oid_text(relid), placement});
    spi::run(
        "UPDATE pgtrickle.pgt_dependencies SET source_placement = $2 WHERE "
        "source_relid::pg_catalog.oid OPERATOR(pg_catalog.=) $1::pg_catalog.oid",
        {oid_text(relid), placement});
}

int64_t reader_count(Oid relid, bool differential_only) {
    const pg::AsExtensionOwner owner;
    return std::stoll(
        spi::exec("SELECT pg_catalog.count(*)::pg_catalog.text FROM pgtrickle.pgt_dependencies d "
                  "JOIN pgtrickle.pgt_stream_tables s ON s.pgt_id OPERATOR(pg_catalog.=) d.pgt_id "
                  "WHERE d.source_relid::pg_catalog.oid OPERATOR(pg_catalog.=) "
                  "$1::pg_catalog.oid AND (NOT $2::pg_catalog.bool OR s.effective_mode "
                  "OPERATOR(pg_catalog.=) 'differential')",
                  {oid_text(relid), differential_only ? "true" : "false"})
            .scalar()
            .value_or("0"));
}

void delete_source(Oid relid) {
    const pg::AsExtensionOwner owner;
    spi::run(
        "DELETE FROM pgtrickle.pgt_change_tracking WHERE source_relid::pg_catalog.oid "
        "OPERATOR(pg_catalog.=) $1::pg_catalog.oid",
        {oid_text(relid)});
}

BufferRetention buffer_retention(const std::string& key, Oid relid, const std::string& sysid,
                                 Snapshot snapshot) {
    const pg::AsExtensionOwner owner;
    // One pass over the readers: the oldest xmin of those that hold the buffer, and the own
    // transaction of every frontier (whatever the reader's state).
    const auto r = spi::exec_cached(
        "WITH f AS (SELECT st.frontier OPERATOR(pg_catalog.->) 'sources' "
        "OPERATOR(pg_catalog.->) $1 AS src, NOT st.needs_full_refresh AND st.status "
        "OPERATOR(pg_catalog.<>) 'suspended' AND (st.frontier OPERATOR(pg_catalog.->>) 'sysid') "
        "OPERATOR(pg_catalog.=) $3 AS holds FROM pgtrickle.pgt_stream_tables st JOIN "
        "pgtrickle.pgt_dependencies d ON d.pgt_id OPERATOR(pg_catalog.=) st.pgt_id WHERE "
        "d.source_relid::pg_catalog.oid OPERATOR(pg_catalog.=) $2::pg_catalog.oid) "
        "SELECT (pg_catalog.min(pg_catalog.pg_snapshot_xmin((src OPERATOR(pg_catalog.->>) "
        "'snapshot')::pg_catalog.pg_snapshot)) FILTER (WHERE holds))::pg_catalog.text, "
        "COALESCE(pg_catalog.array_agg(DISTINCT (src OPERATOR(pg_catalog.->>) "
        "'own_xid')::pg_catalog.xid8) FILTER (WHERE src OPERATOR(pg_catalog.->>) 'own_xid' IS "
        "NOT NULL), '{}')::pg_catalog.text FROM f WHERE src IS NOT NULL",
        {key, oid_text(relid), sysid}, snapshot);
    BufferRetention out;
    if (!r.rows.empty()) {
        out.oldest_xmin = r.rows[0][0];
        out.own_xids = r.rows[0][1].value_or("{}");
    }
    return out;
}

// ---- worker slots ------------------------------------------------------------------------

std::vector<WorkerSlot> lock_worker_slots(const std::string& key,
                                          const std::optional<std::string>& only_node,
                                          bool skip_locked) {
    const pg::AsExtensionOwner owner;
    std::vector<WorkerSlot> out;
    for (const auto& r :
         spi::exec(std::string("SELECT ") + kWorkerSlotColumns +
                       " FROM pgtrickle.pgt_worker_slots WHERE source_stable_name "
                       "OPERATOR(pg_catalog.=) $1 AND ($2::pg_catalog.text IS NULL OR "
                       "worker_name OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) "
                       "worker_port::pg_catalog.text OPERATOR(pg_catalog.=) $2) ORDER BY "
                       "worker_name, worker_port FOR UPDATE" +
                       (skip_locked ? " SKIP LOCKED" : ""),
                   {key, only_node})
             .rows) {
        out.push_back(slot_from_row(r));
    }
    return out;
}

std::vector<WorkerSlot> worker_slots(const std::string& key) {
    const pg::AsExtensionOwner owner;
    std::vector<WorkerSlot> out;
    for (const auto& r : spi::exec_cached(std::string("SELECT ") + kWorkerSlotColumns +
                                              " FROM pgtrickle.pgt_worker_slots WHERE "
                                              "source_stable_name OPERATOR(pg_catalog.=) $1 "
                                              "ORDER BY worker_name, worker_port",
                                          {key})
                             .rows) {
        out.push_back(slot_from_row(r));
    }
    return out;
}

std::vector<SlotOfSource> all_worker_slots() {
    if (!has_wal_capture()) {
        return {};
    }
    const pg::AsExtensionOwner owner;
    std::vector<SlotOfSource> out;
    for (const auto& r :
         spi::exec_cached(std::string("SELECT ct.source_relid::pg_catalog.oid::pg_catalog.text, ") +
                          "ws.source_stable_name, ws.worker_name, "
                          "ws.worker_port::pg_catalog.text, ws.slot_name, ws.publication_name, "
                          "ws.worker_frontier::pg_catalog.text, ws.worker_lsn::pg_catalog.text, "
                          "ws.consecutive_failures::pg_catalog.text, ws.last_error, "
                          "ws.xmin::pg_catalog.text FROM pgtrickle.pgt_worker_slots ws JOIN "
                          "pgtrickle.pgt_change_tracking ct ON ct.source_stable_name "
                          "OPERATOR(pg_catalog.=) ws.source_stable_name ORDER BY "
                          "ct.source_relid, ws.worker_name, ws.worker_port")
             .rows) {
        out.push_back({oid_of(r[0]), slot_from_row(r, 1)});
    }
    return out;
}

bool is_recorded_slot(const std::string& slot, const std::string& host, int port) {
    const pg::AsExtensionOwner owner;
    return spi::exec(
               "SELECT 1 FROM pgtrickle.pgt_worker_slots WHERE slot_name OPERATOR(pg_catalog.=) "
               "$1 AND worker_name OPERATOR(pg_catalog.=) $2 AND worker_port "
               "OPERATOR(pg_catalog.=) $3::pg_catalog.int4",
               {slot, host, std::to_string(port)})
        .scalar()
        .has_value();
}

void record_worker_slot(const std::string& key, const std::string& host, int port,
                        const std::string& slot, const std::string& lsn) {
    const pg::AsExtensionOwner owner;
    spi::run(
        "INSERT INTO pgtrickle.pgt_worker_slots (source_stable_name, worker_name, worker_port, "
        "slot_name, publication_name, worker_frontier, worker_lsn, last_polled_at) VALUES ($1, "
        "$2, $3::pg_catalog.int4, $4, $4, $5::pg_catalog.pg_lsn, $5::pg_catalog.pg_lsn, "
        "pg_catalog.now()) ON CONFLICT (source_stable_name, worker_name, worker_port) DO UPDATE "
        "SET slot_name = EXCLUDED.slot_name, publication_name = EXCLUDED.publication_name, "
        "worker_frontier = EXCLUDED.worker_frontier, worker_lsn = EXCLUDED.worker_lsn, "
        "last_polled_at = EXCLUDED.last_polled_at, consecutive_failures = 0, "
        "failing_since = NULL, last_error = NULL",
        {key, host, std::to_string(port), slot, lsn});
}

void record_uncapturable_node(const std::string& key, const std::string& host, int port,
                              const std::string& slot, const std::string& why) {
    const pg::AsExtensionOwner owner;
    spi::run(
        "INSERT INTO pgtrickle.pgt_worker_slots (source_stable_name, worker_name, worker_port, "
        "slot_name, publication_name, worker_frontier, worker_lsn, consecutive_failures, "
        "failing_since, last_error) VALUES ($1, $2, $3::pg_catalog.int4, $4, $4, NULL, NULL, 1, "
        "pg_catalog.now(), $5) ON CONFLICT (source_stable_name, worker_name, worker_port) DO "
        "UPDATE SET worker_frontier = NULL, worker_lsn = NULL, consecutive_failures = "
        "pgtrickle.pgt_worker_slots.consecutive_failures OPERATOR(pg_catalog.+) 1, "
        "failing_since = COALESCE(pgtrickle.pgt_worker_slots.failing_since, pg_catalog.now()), "
        "last_error = EXCLUDED.last_error",
        {key, host, std::to_string(port), slot, why});
}

void store_drain(const std::string& key, const std::string& host, int port,
                 const std::string& frontier, const std::string& lsn) {
    const pg::AsExtensionOwner owner;
    spi::exec_cached(
        "UPDATE pgtrickle.pgt_worker_slots SET worker_frontier = $4::pg_catalog.pg_lsn, "
        "worker_lsn = $5::pg_catalog.pg_lsn, last_polled_at = pg_catalog.now(), "
        "consecutive_failures = 0, failing_since = NULL, last_error = NULL WHERE "
        "source_stable_name OPERATOR(pg_catalog.=) $1 AND worker_name OPERATOR(pg_catalog.=) $2 "
        "AND worker_port OPERATOR(pg_catalog.=) $3::pg_catalog.int4",
        {key, host, std::to_string(port), frontier, lsn});
}

int record_poll_failure(const std::string& key, const std::string& node,
                        const std::string& message) {
    const pg::AsExtensionOwner owner;
    auto n = spi::exec(
        "UPDATE pgtrickle.pgt_worker_slots SET consecutive_failures = consecutive_failures "
        "OPERATOR(pg_catalog.+) 1, failing_since = COALESCE(failing_since, pg_catalog.now()), "
        "last_error = $3 WHERE source_stable_name OPERATOR(pg_catalog.=) $1 AND worker_name "
        "OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) worker_port::pg_catalog.text "
        "OPERATOR(pg_catalog.=) $2 RETURNING consecutive_failures::pg_catalog.text",
        {key, node, message});
    return n.scalar() ? std::stoi(*n.scalar()) : 0;
}

void note_slot_problem(const std::string& key, const std::string& why) {
    const pg::AsExtensionOwner owner;
    spi::run(
        "UPDATE pgtrickle.pgt_worker_slots SET last_error = $2 WHERE source_stable_name "
        "OPERATOR(pg_catalog.=) $1 AND last_error IS NULL",
        {key, why});
}

void delete_worker_slot(const std::string& key, const std::string& host, int port) {
    const pg::AsExtensionOwner owner;
    spi::run(
        "DELETE FROM pgtrickle.pgt_worker_slots WHERE source_stable_name OPERATOR(pg_catalog.=) "
        "$1 AND worker_name OPERATOR(pg_catalog.=) $2 AND worker_port OPERATOR(pg_catalog.=) "
        "$3::pg_catalog.int4",
        {key, host, std::to_string(port)});
}

void delete_worker_slots(const std::string& key) {
    const pg::AsExtensionOwner owner;
    spi::run(
        "DELETE FROM pgtrickle.pgt_worker_slots WHERE source_stable_name OPERATOR(pg_catalog.=) "
        "$1",
        {key});
}

bool legacy_slot_in_use(const std::string& relid_text, const std::string& slot) {
    const pg::AsExtensionOwner owner;
    return spi::exec(
               "SELECT 1 FROM pgtrickle.pgt_change_tracking ct WHERE "
               "ct.source_relid::pg_catalog.oid::pg_catalog.text OPERATOR(pg_catalog.=) $1 AND "
               "ct.cdc_mode OPERATOR(pg_catalog.=) 'wal' AND NOT EXISTS (SELECT 1 FROM "
               "pgtrickle.pgt_worker_slots ws WHERE ws.source_stable_name OPERATOR(pg_catalog.=) "
               "ct.source_stable_name) UNION ALL SELECT 1 FROM pgtrickle.pgt_worker_slots WHERE "
               "slot_name OPERATOR(pg_catalog.=) $2",
               {relid_text, slot})
        .scalar()
        .has_value();
}

}  // namespace pgt::catalog
