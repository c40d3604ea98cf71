#include "capture/wal.h"

#include "capture/buffer_writer.h"
#include "capture/capture.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <utility>

#include "boundary/guard.h"
#include "boundary/pg.h"
#include "boundary/spi.h"
#include "catalog/generation.h"
#include "catalog/sources.h"
#include "catalog/stream_tables.h"
#include "citus/citus.h"
#include "core/pgoutput.h"
#include "core/sql_ident.h"
#include "core/stable_name.h"
#include "engine/translate.h"
#include "remote/connection.h"
#include "scheduler/scheduler.h"
#include "settings.h"

extern "C" {
#include "access/xact.h"
#include "access/xlog.h"
#include "replication/message.h"
#include "utils/errcodes.h"
}

namespace pgt::capture::wal {
namespace {

using sql::quote_ident;
using sql::quote_literal;

const char* const kChangeSchema = "pgtrickle_changes";

std::string oid_text(Oid relid) {
    return std::to_string(relid);
}

/// schema.table, quoted (search_path-proof).
std::string qualified_name(Oid relid) {
    auto r = spi::exec(
        "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace "
        "WHERE c.oid OPERATOR(pg_catalog.=) $1::pg_catalog.oid",
        {oid_text(relid)});
    if (!r.scalar()) {
        throw Error(ERRCODE_UNDEFINED_TABLE,
                    "relation with OID " + oid_text(relid) + " does not exist");
    }
    return *r.scalar();
}

/// Remote connections are made as the extension's owner, who owns the slots and the
/// publications (like the change buffers), whoever triggered the drain.
std::string connecting_user() {
    return pg::role_name(pg::extension_owner());
}

remote::Connection& connect(const remote::Node& node) {
    return remote::cached_connection(node, connecting_user());
}

/// The node of pg_dist_node with this address (for its pg_dist_authinfo rows), or a node
/// with only the address when it is no longer there.
remote::Node node_at(const std::string& host, int port) {
    for (const auto& n : citus::active_primaries()) {
        if (n.node.host == host && n.node.port == port) {
            return n.node;
        }
    }
    remote::Node n;
    n.host = host;
    n.port = port;
    return n;
}

std::string local_version() {
    return spi::exec(
               "SELECT extversion FROM pg_catalog.pg_extension WHERE extname "
               "OPERATOR(pg_catalog.=) 'pg_trickle'")
        .scalar()
        .value_or("");
}

/// wal_level, Citus CDC and the pg_trickle version on `node`; and that this transaction has
/// not written there (creating a slot waits for every transaction running on the node, ours
/// included: it would wait forever).
void check_node(const remote::Node& node, const std::string& version, const std::string& gpid,
                bool citus_node) {
    remote::Connection& c = connect(node);
    auto r = c.exec(
        "SELECT pg_catalog.current_setting('wal_level'), "
        "COALESCE(pg_catalog.current_setting('citus.enable_change_data_capture', true), ''), "
        "COALESCE((SELECT extversion FROM pg_catalog.pg_extension WHERE extname "
        "OPERATOR(pg_catalog.=) 'pg_trickle'), ''), "
        "(SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity WHERE application_name "
        "OPERATOR(pg_catalog.=) ('citus_internal gpid=' OPERATOR(pg_catalog.||) $1) "
        "AND backend_xid IS NOT NULL)::pg_catalog.text",
        {citus_node ? gpid : std::string()});
    const std::string where = "node " + node.label();
    if (r.text(0, 0) != "logical") {
        throw Error(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    "wal_level is '" + r.text(0, 0) + "' on " + where,
                    "Changes of distributed tables are read from each node's WAL.",
                    "Set wal_level = logical on every node (ALTER SYSTEM SET wal_level = logical) "
                    "and restart them; pgtrickle preflight checks every node.");
    }
    if (citus_node && r.text(0, 1) != "on") {
        throw Error(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    "citus.enable_change_data_capture is not on on " + where,
                    "Without Citus CDC, logical decoding reports shard names instead of the "
                    "distributed table, and shard moves as changes.",
                    "Set citus.enable_change_data_capture = on in postgresql.conf of every node "
                    "and restart them.");
    }
    if (citus_node && r.text(0, 2) != version) {
        throw Error(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    "pg_trickle version differs between nodes: the coordinator has " + version +
                        ", " + where + " has " +
                        (r.text(0, 2).empty() ? std::string("none") : r.text(0, 2)),
                    "",
                    "Install the same pg_trickle version on every node (CREATE/ALTER EXTENSION "
                    "on the coordinator reaches the workers).");
    }
    if (citus_node && r.text(0, 3) != "0") {
        throw Error(ERRCODE_ACTIVE_SQL_TRANSACTION,
                    "this transaction has already written on " + where,
                    "Creating the replication slot there waits for every transaction running on "
                    "the node, this one included.",
                    "Create the stream table in a transaction of its own (commit the DDL or "
                    "writes on distributed tables first).");
    }
}

bool slot_exists(remote::Connection& c, const std::string& slot) {
    return c.exec(
                "SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name "
                "OPERATOR(pg_catalog.=) $1",
                {slot})
               .rows() > 0;
}

// ---- slots of a transaction that fails ---------------------------------------------------
// Creating a slot is not transactional. A slot created by a transaction that then fails
// (a create_stream_table whose initial population fails, a deadlock victim, a cancel)
// would keep WAL forever, or, recreated in place of a lost one, stand for a recorded slot
// whose frontier it does not match: it is dropped when its (sub)transaction aborts.

/// The longest an abort callback waits for a node to drop a slot.
constexpr int kAbortCommandTimeoutMs = 5000;

struct CreatedSlot {
    remote::Node node;
    std::string user, slot;
    SubTransactionId subxact;
};

std::vector<CreatedSlot>& created_slots() {
    static auto* slots = new std::vector<CreatedSlot>();  // never destroyed: used at exit
    return *slots;
}

/// Drop (as far as an idle connection to its node allows, never raising) the slots created
/// in subtransaction `from` or later ones; all of them when `from` is invalid.
void drop_created_slots(SubTransactionId from) noexcept {
    auto& slots = created_slots();
    for (auto it = slots.begin(); it != slots.end();) {
        if (from != InvalidSubTransactionId && it->subxact < from) {
            ++it;
            continue;
        }
        // Bounded and never raising (this runs while the transaction aborts). A node that
        // does not answer in time keeps the slot: an orphan the poller's sweep drops later.
        if (remote::Connection* c = remote::idle_cached_connection(it->node, it->user)) {
            (void)c->try_exec_during_abort(
                "SELECT pg_catalog.pg_drop_replication_slot(slot_name) FROM "
                "pg_catalog.pg_replication_slots WHERE slot_name OPERATOR(pg_catalog.=) $1 "
                "AND NOT active",
                {it->slot}, kAbortCommandTimeoutMs);
        }
        it = slots.erase(it);
    }
}

void on_xact_event(XactEvent event, void* /*arg*/) noexcept {
    if (event == XACT_EVENT_ABORT) {
        drop_created_slots(InvalidSubTransactionId);
    } else if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PREPARE) {
        created_slots().clear();
    }
}

void on_subxact_event(SubXactEvent event, SubTransactionId sub, SubTransactionId parent,
                      void* /*arg*/) noexcept {
    if (event == SUBXACT_EVENT_ABORT_SUB) {
        drop_created_slots(sub);
    } else if (event == SUBXACT_EVENT_COMMIT_SUB) {
        for (auto& s : created_slots()) {
            if (s.subxact >= sub) {
                s.subxact = parent;
            }
        }
    }
}

/// Create `slot` on the node (dropping an unrecorded one of that name first); returns the
/// LSN from which it reports transactions. Dropped again if this transaction fails.
std::string create_slot(remote::Connection& c, const std::string& slot) {
    static bool registered = false;
    if (!registered) {
        pg_call([]() noexcept {
            RegisterXactCallback(on_xact_event, nullptr);
            RegisterSubXactCallback(on_subxact_event, nullptr);
        });
        registered = true;
    }
    if (slot_exists(c, slot)) {
        c.exec("SELECT pg_catalog.pg_drop_replication_slot($1)", {slot});
    }
    std::string lsn =
        c.exec(
             "SELECT lsn::pg_catalog.text FROM pg_catalog.pg_create_logical_replication_slot($1, "
             "'pgoutput')",
             {slot})
            .text(0, 0);
    created_slots().push_back({c.node(), connecting_user(), slot,
                               pg_call([]() noexcept { return GetCurrentSubTransactionId(); })});
    return lsn;
}

/// A 0.31.0 slot lagging more than this is not taken over (its readers recompute
/// instead): writers to the source wait while it is read.
constexpr long long kAdoptMaxLagBytes = 64LL * 1024 * 1024;

/// Drop a 0.31.0 slot and its publication (local: Citus never had them).
void drop_legacy_capture(remote::Connection& c, const std::string& slot) {
    // The publication first: should the slot's drop fail, the poller finds the slot and
    // comes back for both.
    c.exec(
        "DO $pgt$ BEGIN PERFORM pg_catalog.set_config('citus.enable_ddl_propagation', 'off', "
        "true); DROP PUBLICATION IF EXISTS " +
        quote_ident(slot) + "; END $pgt$");
    c.exec("SELECT pg_catalog.pg_drop_replication_slot($1)", {slot});
}

/// The publication a source's slots decode with, created if missing. It must exist on
/// every node before a slot starts decoding (pgoutput looks it up at each change): so it is
/// created and committed on its own, through a connection to `home` (this server, or the
/// coordinator, which Citus propagates it from).
void ensure_publication(const remote::Node& home, const std::string& publication,
                        const std::string& source_name) {
    remote::Connection& c = connect(home);
    if (c.exec("SELECT 1 FROM pg_catalog.pg_publication WHERE pubname OPERATOR(pg_catalog.=) $1",
               {publication})
            .rows() > 0) {
        return;
    }
    try {
        // Only for this statement: a slot created later on this connection waits for
        // running transactions, as long as they run.
        c.exec("SET lock_timeout = '10s'");
        c.exec("CREATE PUBLICATION " + quote_ident(publication) + " FOR TABLE " + source_name);
        c.exec("RESET lock_timeout");
    } catch (const remote::RemoteError& e) {
        if (c.ok()) {
            c.exec("RESET lock_timeout");
        }
        throw Error(e.sqlstate(),
                    std::string("could not create publication ") + publication + " for " +
                        source_name + ": " + e.what(),
                    e.detail(),
                    "The publication is created in a transaction of its own: commit the "
                    "transaction that created or altered " +
                        source_name + " first.",
                    e.context());
    }
}

/// The node's current WAL insert position: every transaction committed so far ends below.
std::string current_insert_lsn(remote::Connection& c) {
    return c.exec("SELECT pg_catalog.pg_current_wal_insert_lsn()::pg_catalog.text").text(0, 0);
}

void record_slot(const std::string& key, const remote::Node& node, const CaptureObjectNames& n,
                 const std::string& lsn) {
    catalog::record_worker_slot(key, node.host, node.port, n.slot, lsn);
}

/// Readers of source `key` compute from scratch at their next refresh: changes may have
/// been missed (a slot was lost or recreated, a node joined with shards).
void readers_recompute(const std::string& key, const std::string& reason) {
    catalog::mark_readers_for_full_refresh(key, reason);
    catalog::note_slot_problem(key, reason);
    pg_call([&]() noexcept {
        ereport(LOG, (errmsg("pg_trickle: readers of source %s recompute", key.c_str()),
                      errdetail("%s", reason.c_str())));
    });
}

pgoutput::Lsn lsn_of(const std::string& text) {
    auto l = pgoutput::parse_lsn(text);
    if (!l) {
        throw Error(ERRCODE_DATA_CORRUPTED, "invalid LSN \"" + text + "\"");
    }
    return *l;
}

/// Output functions run in the decoding session: pin the settings that shape their text so
/// that the coordinator's input functions read it back exactly.
void pin_output_settings(remote::Connection& c) {
    c.exec(
        "SELECT pg_catalog.set_config('DateStyle', 'ISO, MDY', false), "
        "pg_catalog.set_config('IntervalStyle', 'postgres', false), "
        "pg_catalog.set_config('TimeZone', 'UTC', false), "
        "pg_catalog.set_config('extra_float_digits', '3', false), "
        "pg_catalog.set_config('bytea_output', 'hex', false)");
}

/// Drain one slot into `writer`: every transaction committed on the node since the slot's
/// committed frontier (s.frontier; "0/0": the slot's own position, for a 0.31.0 slot taken
/// over), up to the node's flushed WAL position. The new frontier is stored in this
/// transaction.
Drained drain_slot(Oid relid, const catalog::WorkerSlot& s, BufferWriter& writer, int max_changes,
                   bool exact) {
    Drained out;
    out.source = s.source_key;
    const remote::Node node = node_at(s.host, s.port);
    out.node = node.label();
    remote::Connection& c = connect(node);
    pin_output_settings(c);
    const pgoutput::Lsn stored = lsn_of(s.frontier.value_or("0/0"));
    const bool adopting = stored == 0;
    if (!s.written_here && !adopting) {
        // What the last committed drain consumed can go: the slot keeps WAL from there on.
        // Only a committed frontier: this transaction's own, stored by an earlier drain in
        // it, is undone if the transaction rolls back, and the slot must still hold what it
        // read then.
        c.exec(
            "SELECT pg_catalog.pg_replication_slot_advance(slot_name, $2::pg_catalog.pg_lsn) "
            "FROM pg_catalog.pg_replication_slots WHERE slot_name OPERATOR(pg_catalog.=) $1 AND "
            "confirmed_flush_lsn OPERATOR(pg_catalog.<) $2::pg_catalog.pg_lsn",
            {s.slot, pgoutput::format_lsn(stored)});
    }
    if (exact) {
        // Every transaction that committed on the node must be read, also one committed
        // asynchronously (synchronous_commit = off) whose WAL is not flushed yet: wait until
        // the WAL written so far is flushed (the walwriter does it within wal_writer_delay).
        const std::string inserted = current_insert_lsn(c);
        c.exec(
            "DO $pgt$ BEGIN WHILE pg_catalog.pg_current_wal_flush_lsn() OPERATOR(pg_catalog.<) " +
            quote_literal(pgoutput::format_lsn(lsn_of(inserted))) +
            "::pg_catalog.pg_lsn LOOP PERFORM pg_catalog.pg_sleep(0.005); END LOOP; END $pgt$");
    }
    // Flushed, not inserted: logical decoding reads flushed WAL only, and a frontier past
    // what was read would skip transactions.
    auto pos = c.exec(
        "SELECT pg_catalog.pg_current_wal_flush_lsn()::pg_catalog.text, s.wal_status, "
        "pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_flush_lsn(), "
        "s.confirmed_flush_lsn)::bigint::pg_catalog.text, "
        "s.confirmed_flush_lsn::pg_catalog.text FROM (SELECT) AS one LEFT JOIN "
        "pg_catalog.pg_replication_slots s ON s.slot_name OPERATOR(pg_catalog.=) $1",
        {s.slot});
    const std::string upto_text = pos.text(0, 0);
    const pgoutput::Lsn upto = lsn_of(upto_text);
    std::string problem;
    if (pos.is_null(0, 1)) {
        problem = "slot " + s.slot + " is missing on node " + node.label();
    } else if (pos.text(0, 1) == "lost") {
        problem = "slot " + s.slot + " on node " + node.label() +
                  " was invalidated (its WAL was removed)";
    } else if (!adopting && !pos.is_null(0, 3) && lsn_of(pos.text(0, 3)) > stored) {
        // The slot confirmed more than pg_trickle ever committed: what lies in between was
        // consumed and is in no buffer (a coordinator restored from a backup, another
        // consumer of the slot).
        problem = "slot " + s.slot + " on node " + node.label() + " was consumed up to " +
                  pos.text(0, 3) + ", past the frontier pg_trickle committed (" +
                  pgoutput::format_lsn(stored) + ")";
    } else if (settings::citus_slot_max_lag_bytes > 0 && !pos.is_null(0, 2) &&
               std::stoll(pos.text(0, 2)) >
                   static_cast<long long>(settings::citus_slot_max_lag_bytes)) {
        problem = "slot " + s.slot + " on node " + node.label() + " lags " + pos.text(0, 2) +
                  " bytes, more than pg_trickle.citus_slot_max_lag_bytes";
    }
    if (!problem.empty()) {
        // Recreating it here could wait forever: this transaction holds a transaction id by
        // now, and a new slot waits for every running one (on the coordinator, ours).
        throw SlotLost(problem);
    }

    pgoutput::StreamDecoder decoder(1);
    pgoutput::RelationCache relations;
    std::map<pgoutput::Oid, std::vector<int>> mapping;  // relation column -> writer position
    std::vector<pgoutput::ChangeRow> changes;
    bool skip = false;
    pgoutput::Lsn frontier = stored;
    const int64_t written_before = writer.written();
    std::vector<std::optional<std::string>> values(writer.width());
    long n = 0;
    // Streamed: one message of the slot in memory at a time (and the writer's batch), however
    // large the backlog.
    c.exec_rows(
        "SELECT data FROM pg_catalog.pg_logical_slot_peek_binary_changes($1, "
        "$2::pg_catalog.pg_lsn, $3::int, 'proto_version', '1', 'publication_names', $4)",
        {s.slot, upto_text,
         max_changes > 0 ? std::optional<std::string>(std::to_string(max_changes)) : std::nullopt,
         s.publication},
        /*binary_results=*/true, [&](const remote::RowView& row) {
            ++n;
            pgoutput::Message m;
            try {
                m = decoder.next(row.value(0));
            } catch (const pgoutput::Error& e) {
                throw Error(ERRCODE_DATA_CORRUPTED, std::string(e.what()) + " (slot " + s.slot +
                                                        " on node " + node.label() + ")");
            }
            if (const auto* b = std::get_if<pgoutput::Begin>(&m)) {
                // Transactions that committed before the stored frontier are in the buffer
                // already (a drain committed, the slot was not advanced yet). pgoutput
                // (protocol 1) sends each transaction whole at its commit: its rows can be
                // written as they come.
                skip = b->final_lsn < stored;
            } else if (const auto* commit = std::get_if<pgoutput::Commit>(&m)) {
                frontier = std::max(frontier, commit->end_lsn);
            } else if (const auto* rel = std::get_if<pgoutput::Relation>(&m)) {
                std::vector<int> map;
                for (const auto& col : rel->columns) {
                    map.push_back(writer.position_of(col.name));
                }
                mapping[rel->oid] = std::move(map);
                relations.add(*rel);
            } else if (std::holds_alternative<pgoutput::Truncate>(m)) {
                if (!skip) {
                    writer.add_marker();
                }
            } else if (std::holds_alternative<pgoutput::Type>(m)) {
                relations.add(std::get<pgoutput::Type>(m));
            } else if (!skip) {
                changes.clear();
                try {
                    relations.apply(m, changes);
                } catch (const pgoutput::Error& e) {
                    throw Error(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                                std::string(e.what()) + " (slot " + s.slot + " on node " +
                                    node.label() + ")",
                                "", "ALTER TABLE the source REPLICA IDENTITY FULL.");
                }
                for (const auto& change : changes) {
                    const auto& map = mapping.at(change.relation_oid);
                    std::fill(values.begin(), values.end(), std::nullopt);
                    for (size_t k = 0; k < change.values.size() && k < map.size(); ++k) {
                        if (map[k] >= 0) {
                            values[static_cast<size_t>(map[k])] = change.values[k];
                        }
                    }
                    writer.add(static_cast<char>(change.action), values);
                }
            }
        });
    writer.flush();
    out.changes = writer.written() - written_before;
    // A read that was not cut short saw every transaction that committed before `upto`.
    if (max_changes <= 0 || n < max_changes) {
        frontier = std::max(frontier, upto);
    } else {
        out.more = true;
    }
    out.frontier = pgoutput::format_lsn(frontier);
    catalog::store_drain(s.source_key, s.host, s.port, out.frontier, upto_text);
    if (out.changes > 0) {
        pgt::scheduler::note_captured_write(relid);
    }
    return out;
}

/// Serializes creating, recreating and dropping the slots of source `key` (until the end of
/// the transaction). An advisory lock: it gives the transaction no id, which a slot created
/// afterwards on this server would wait for.
void lock_provisioning(const std::string& key) {
    spi::exec(
        "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('pg_trickle slots ' "
        "OPERATOR(pg_catalog.||) $1))",
        {key});
}

/// lock_provisioning without waiting: false when another transaction holds it.
bool try_lock_provisioning(const std::string& key) {
    return spi::exec(
               "SELECT pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('pg_trickle "
               "slots ' OPERATOR(pg_catalog.||) $1))",
               {key})
               .scalar() == "t";
}

/// The nodes whose slots capture `relid`: Citus' answer for Citus tables, this server for a
/// local table captured through WAL.
std::vector<remote::Node> nodes_for(Oid relid, const citus::Placement& placement) {
    if (placement.kind == citus::Placement::Kind::local) {
        return {citus::this_server()};
    }
    return citus::capture_nodes(relid, placement);
}

/// Make every WAL record written so far durable (what a synchronous commit does): a drain of
/// this server's slots then reads every transaction that committed here, also asynchronously.
void flush_local_wal() {
    // Flushed up to the end of a record of our own (the insert position itself may lie past a
    // page header no record was written after, which XLogFlush refuses). The message is not
    // transactional and slots read without 'messages' skip it.
    pg_call([]() noexcept { XLogFlush(LogLogicalMessage("pg_trickle", "", 0, false)); });
}

/// The catalog of `relid` when it is captured through WAL.
std::optional<catalog::Source> wal_source(Oid relid) {
    if (!catalog::has_wal_capture()) {
        return std::nullopt;
    }
    auto src = catalog::source(relid);
    if (!src || src->cdc_mode != "wal") {
        return std::nullopt;
    }
    return src;
}

std::optional<std::string> wal_key(Oid relid) {
    if (const auto src = wal_source(relid)) {
        return src->key;
    }
    return std::nullopt;
}

}  // namespace

bool wants_wal(Oid relid) {
    return citus::placement_of(relid).kind != citus::Placement::Kind::local;
}

void prepare_sources(const std::vector<Oid>& relids, const std::string& cdc_mode) {
    if (!catalog::has_wal_capture()) {
        // A catalog from before 0.35.0: triggers only. Refuse what needs WAL capture.
        bool needs_wal = cdc_mode == "wal";
        for (Oid relid : relids) {
            needs_wal = needs_wal || (citus::loaded() && citus::placement_of(relid).kind !=
                                                             citus::Placement::Kind::local);
        }
        if (needs_wal) {
            throw Error(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                        "WAL capture needs the pg_trickle 0.35.0 catalog",
                        "This database's pg_trickle catalog is older than its library.",
                        "ALTER EXTENSION pg_trickle UPDATE; (or pgtrickle migrate).");
        }
        return;
    }
    struct Made {
        std::string key;
        remote::Node node;
        std::string lsn;
        Oid switch_from_trigger = InvalidOid;
    };
    std::vector<Made> made;
    std::vector<Oid> to_triggers, locked;
    std::string version, gpid;
    const bool citus_loaded = citus::loaded();
    for (Oid relid : relids) {
        const citus::Placement placement =
            citus_loaded ? citus::placement_of(relid) : citus::Placement{};
        const bool local = placement.kind == citus::Placement::Kind::local;
        const std::string name = qualified_name(relid);
        const auto tracked = catalog::source(relid);
        const std::optional<std::string> current =
            tracked ? std::optional<std::string>(tracked->cdc_mode) : std::nullopt;
        if (!local && cdc_mode == "trigger") {
            throw Error(ERRCODE_FEATURE_NOT_SUPPORTED,
                        std::string("cdc_mode 'trigger' cannot capture Citus ") + placement.name() +
                            " table " + name,
                        "Its writes happen on other nodes, where no trigger of pg_trickle runs.",
                        "Use cdc_mode => 'auto' or 'wal'.");
        }
        if (local && current == "wal" && cdc_mode == "trigger") {
            to_triggers.push_back(relid);  // after every slot is made (see below)
            continue;
        }
        if (local && cdc_mode != "wal") {
            continue;  // trigger capture (capture::ensure_source)
        }
        if (current == "wal") {
            continue;  // captured already: the first refresh locks and drains it
        }
        auto info = spi::exec(
            "SELECT relreplident::pg_catalog.text, relkind::pg_catalog.text FROM "
            "pg_catalog.pg_class WHERE oid "
            "OPERATOR(pg_catalog.=) $1::pg_catalog.oid",
            {oid_text(relid)});
        if (info.rows[0][1] == "p") {
            throw Error(ERRCODE_FEATURE_NOT_SUPPORTED,
                        "partitioned table " + name + " cannot be captured through WAL yet",
                        "Changes of partitions are reported per partition.",
                        local ? "Use cdc_mode => 'trigger' for it."
                              : "Read its partitions, or use a non-partitioned distributed table.");
        }
        if (info.rows[0][0] != "f") {
            throw Error(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                        "source " + name + " needs REPLICA IDENTITY FULL",
                        std::string("Changes of ") + (local ? "WAL-captured" : placement.name()) +
                            " tables are read from the WAL, which holds whole old rows only "
                            "under REPLICA IDENTITY FULL.",
                        "ALTER TABLE " + name + " REPLICA IDENTITY FULL;");
        }
        if (version.empty()) {
            version = local_version();
            gpid = citus_loaded ? citus::backend_gpid() : "";
        }
        const std::vector<remote::Node> nodes = nodes_for(relid, placement);
        const remote::Node coord = citus_loaded ? citus::coordinator() : citus::this_server();
        for (const auto& node : nodes) {
            const bool self = local || (node.host == coord.host && node.port == coord.port);
            if (self && pg::top_full_xid_if_any() != 0) {
                throw Error(ERRCODE_ACTIVE_SQL_TRANSACTION, "this transaction has already written",
                            "The source's changes are read from this server's WAL; creating "
                            "its replication slot waits for every running transaction, this one "
                            "included.",
                            "Create the stream table in a transaction of its own.");
            }
            check_node(node, version, gpid, !local);
        }
        const std::string key = stable_name_of(relid);
        lock_provisioning(key);  // another stream table being created on the same source
        const CaptureObjectNames n = capture_object_names(key);
        // The publication must exist on every node before a slot starts decoding (pgoutput
        // looks it up at each change), and a slot waits for the transactions running on its
        // node: so it is created and committed on its own, through a connection to the
        // coordinator (Citus propagates it to the workers).
        ensure_publication(local ? citus::this_server() : coord, n.slot, name);
        // Every slot first, then the locks (below): a new slot waits for every transaction
        // running on its node, and one of them may be a writer waiting for such a lock (a
        // wait no deadlock detector sees, across two sessions).
        for (const auto& node : nodes) {
            made.push_back({key, node, create_slot(connect(node), n.slot),
                            current == "trigger" ? relid : InvalidOid});
        }
        locked.push_back(relid);
    }
    // No write to these sources commits from here until the initial population read them
    // (or their triggers are replaced). Every earlier write committed below each node's
    // current WAL position: that is the slot's frontier, so a slot delivers exactly the
    // transactions committed after this one.
    lock_sources(locked);
    for (auto& m : made) {
        m.lsn = current_insert_lsn(connect(m.node));
    }
    // Recorded only now: the first write gives this transaction an id, which a slot created
    // after it on the coordinator would wait for.
    for (const auto& m : made) {
        record_slot(m.key, m.node, capture_object_names(m.key), m.lsn);
        if (m.switch_from_trigger != InvalidOid) {
            // The source is locked: every change committed before the slot's frontier is in
            // the buffer (its triggers wrote them), every later one reaches the slot.
            switch_to_wal(m.switch_from_trigger);
        }
    }
    // WAL back to triggers: with the source locked, everything committed so far is drained
    // into the buffer, then the triggers take over and the slot goes. No gap, no overlap.
    for (Oid relid : to_triggers) {
        const auto key = wal_key(relid);
        lock_provisioning(*key);
        lock_sources({relid});
        (void)drain(relid, false, std::nullopt, 0, true);
        switch_to_triggers(relid);
        drop_source(*key, qualified_name(relid));
    }
}

std::vector<Drained> drain(Oid relid, bool skip_locked, const std::optional<std::string>& only_node,
                           int max_changes, bool exact) {
    std::vector<Drained> out;
    const auto src = wal_source(relid);
    if (!src) {
        return out;
    }
    // Row locks serialize drains of one slot: a second drainer waits, then reads the
    // frontier the first one committed and skips what it wrote.
    const auto slots = catalog::lock_worker_slots(src->key, only_node, skip_locked);
    if (slots.empty()) {
        if (!skip_locked && !only_node && catalog::worker_slots(src->key).empty()) {
            throw SlotLost("source " + qualified_name(relid) +
                           " is captured through WAL but has no slot recorded (an installation "
                           "upgraded from 0.31.0?)");
        }
        return out;
    }
    for (const auto& s : slots) {
        if (!s.frontier) {
            // A node that joined and failed the checks capture needs (record_uncapturable_node):
            // its changes reach no buffer, so its readers fail rather than go silently stale.
            throw NodeNotCapturable(s.node(), qualified_name(relid), s.last_error.value_or(""));
        }
    }
    if (src->placement != "distributed") {
        flush_local_wal();  // its slot is on this server
    }
    BufferWriter writer(relid, src->key);
    for (const auto& s : slots) {
        out.push_back(drain_slot(relid, s, writer, max_changes, exact));
    }
    return out;
}

void note_truncate(const std::vector<Oid>& relids) {
    for (Oid relid : relids) {
        const auto key = wal_key(relid);
        if (!key) {
            continue;
        }
        BufferWriter writer(relid, *key);
        writer.add_marker();
        writer.flush();
        pgt::scheduler::note_captured_write(relid);
    }
}

void lock_sources(const std::vector<Oid>& relids) {
    for (Oid relid : relids) {
        spi::run("LOCK TABLE " + qualified_name(relid) + " IN SHARE MODE");
    }
}

void drop_source(const std::string& key, const std::string& qualified_name_text) {
    // The poller may be draining these slots (a slot being read cannot be dropped) or about
    // to recreate one it finds missing: wait for it (the source's provisioning lock, then
    // the rows' locks, which its drains hold) before dropping anything.
    lock_provisioning(key);
    for (const auto& s : catalog::lock_worker_slots(key, std::nullopt, false)) {
        const remote::Node node = node_at(s.host, s.port);
        try {
            remote::Connection& c = connect(node);
            if (slot_exists(c, s.slot)) {
                c.exec("SELECT pg_catalog.pg_drop_replication_slot($1)", {s.slot});
            }
        } catch (const remote::RemoteError& e) {
            const std::string msg = std::string("could not drop replication slot ") + s.slot +
                                    " on node " + node.label() + ": " + e.what();
            pg_call([&]() noexcept {
                ereport(WARNING,
                        (errmsg("%s", msg.c_str()),
                         errhint("The slot keeps WAL on that node: run pgtrickle slots drop "
                                 "when the node is back.")));
            });
        }
    }
    catalog::delete_worker_slots(key);
    const std::string pub = capture_object_names(key).slot;
    if (spi::exec("SELECT 1 FROM pg_catalog.pg_publication WHERE pubname OPERATOR(pg_catalog.=) $1",
                  {pub})
            .scalar()) {
        spi::run("DROP PUBLICATION IF EXISTS " + quote_ident(pub));
    }
    (void)qualified_name_text;
}

std::vector<SlotAction> provision(std::optional<Oid> relid) {
    if (pg::isolation_uses_xact_snapshot()) {
        // The recorded slots are read after waiting for a concurrent provisioning: under a
        // transaction snapshot they would be read as they were before it committed.
        throw Error(ERRCODE_ACTIVE_SQL_TRANSACTION,
                    "slots are provisioned in READ COMMITTED transactions only", "",
                    "Call it outside an explicit REPEATABLE READ/SERIALIZABLE transaction.");
    }
    std::vector<SlotAction> out;
    struct Planned {
        SlotAction action;
        remote::Node node;
        std::string lsn;         ///< the new slot's start (created, recreated)
        std::string not_usable;  ///< why the node cannot capture the source (uncapturable)
    };
    std::string version, gpid;  // what a node is checked against, read once
    std::vector<Planned> planned;
    std::map<std::string, std::string> missed;  // key -> why its readers recompute
    struct Adopted {
        Oid relid;
        std::string key, old_slot, frontier;
    };
    std::vector<Adopted> adopt;  // 0.31.0 slots whose changes are drained, not recomputed
    const std::vector<Oid> sources = relid ? std::vector<Oid>{*relid} : catalog::wal_sources();
    // Phase 1, before this transaction writes anything: look at every node, create slots.
    for (Oid src : sources) {
        const auto key = wal_key(src);
        if (!key) {
            throw Error(ERRCODE_INVALID_PARAMETER_VALUE,
                        "relation " + qualified_name(src) + " is not a WAL-captured source", "",
                        "Only sources of stream tables on distributed or reference tables have "
                        "slots.");
        }
        lock_provisioning(*key);
        if (!wal_key(src)) {
            continue;  // its last reader was dropped while we waited
        }
        const CaptureObjectNames n = capture_object_names(*key);
        const citus::Placement placement =
            citus::loaded() ? citus::placement_of(src) : citus::Placement{};
        const auto nodes = nodes_for(src, placement);
        std::map<std::pair<std::string, int>, bool> recorded;
        std::map<std::pair<std::string, int>, catalog::WorkerSlot> rows;
        for (const auto& r : catalog::worker_slots(*key)) {
            recorded[{r.host, r.port}] = false;
            rows[{r.host, r.port}] = r;
        }
        // A 0.31.0 installation captured a local source through a slot and a publication
        // named after the table's OID (pgtrickle_<oid>), and recorded neither.
        // Only local sources had one: Citus tables are not looked at.
        const bool local = placement.kind == citus::Placement::Kind::local;
        const std::string old_slot = "pgtrickle_" + oid_text(src);
        const remote::Node self_node = citus::this_server();
        std::optional<remote::Result> old_state;
        if (local) {
            old_state = connect(self_node).exec(
                "SELECT s.wal_status, s.active, EXISTS (SELECT 1 FROM pg_catalog.pg_publication p "
                "WHERE p.pubname OPERATOR(pg_catalog.=) s.slot_name), "
                "COALESCE(pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_flush_lsn(), "
                "s.confirmed_flush_lsn), 0) OPERATOR(pg_catalog.<=) $2::pg_catalog.numeric FROM "
                "pg_catalog.pg_replication_slots s WHERE s.slot_name OPERATOR(pg_catalog.=) $1 AND "
                "s.plugin OPERATOR(pg_catalog.=) 'pgoutput' AND s.database OPERATOR(pg_catalog.=) "
                "pg_catalog.current_database()",
                {old_slot, std::to_string(std::min<long long>(
                               kAdoptMaxLagBytes,
                               static_cast<long long>(settings::citus_slot_max_lag_bytes)))});
        }
        const bool old_exists = old_state && old_state->rows() > 0;
        const bool full_identity =
            old_exists &&
            spi::exec(
                "SELECT relreplident::pg_catalog.text FROM pg_catalog.pg_class WHERE oid "
                "OPERATOR(pg_catalog.=) $1::pg_catalog.oid",
                {oid_text(src)})
                    .scalar() == "f";
        if (old_exists && !recorded.empty()) {
            // Its changes were drained into the buffer by the committed transaction that
            // recorded the new slot (below): what it holds now, the new slot holds too.
            if (old_state->text(0, 1) != "t") {
                drop_legacy_capture(connect(self_node), old_slot);
                out.push_back({*key, self_node.host, self_node.port, old_slot, "dropped"});
            }
        } else if (recorded.empty()) {
            // Taken over only when it can be read whole (whole old rows, its publication)
            // and quickly: writers wait for the source while it is read.
            const bool adoptable = old_exists && old_state->text(0, 0) != "lost" &&
                                   old_state->text(0, 1) != "t" && old_state->text(0, 2) == "t" &&
                                   old_state->text(0, 3) == "t" && full_identity &&
                                   nodes.size() == 1 && nodes[0].host == self_node.host &&
                                   nodes[0].port == self_node.port;
            if (adoptable) {
                // Its unread changes are drained into the buffer (phase 2), exactly up to
                // where the new slot takes over; it is dropped once that has committed.
                adopt.push_back({src, *key, old_slot, ""});
            } else {
                // Captured through WAL with no slot at all: what was written before the new
                // slot is in no buffer, so readers recompute.
                missed[*key] = "the source had no slot recorded";
                if (old_exists && old_state->text(0, 1) != "t") {
                    drop_legacy_capture(connect(self_node), old_slot);
                    out.push_back({*key, self_node.host, self_node.port, old_slot, "dropped"});
                }
            }
        }
        // A slot about to be made (created, or recreated) decodes with the publication.
        bool publication_checked = false;
        const auto make_slot = [&](remote::Connection& c) {
            if (!publication_checked) {
                ensure_publication(local ? self_node : citus::coordinator(), n.slot,
                                   qualified_name(src));
                publication_checked = true;
            }
            return create_slot(c, n.slot);
        };
        for (const auto& node : nodes) {
            Planned p{{*key, node.host, node.port, n.slot, "present"}, node, "", ""};
            auto it = recorded.find({node.host, node.port});
            const catalog::WorkerSlot* row =
                it == recorded.end() ? nullptr : &rows.at({node.host, node.port});
            remote::Connection& c = connect(node);
            if (row == nullptr || !row->frontier) {
                // A node that joined, or was not capturable at its last look, is checked as
                // create checks before its slot is trusted; until it passes, its readers fail
                // naming it (drain) and status shows why.
                if (version.empty()) {
                    version = local_version();
                    gpid = citus::loaded() ? citus::backend_gpid() : "";
                }
                try {
                    check_node(node, version, gpid, !local);
                } catch (const remote::RemoteError& e) {
                    if (e.connection_failure()) {
                        throw;  // unreachable: retried by the next poll
                    }
                    p.not_usable = describe(e);
                } catch (const Error& e) {
                    p.not_usable =
                        std::string(e.what()) + (e.hint().empty() ? "" : ". " + e.hint());
                }
                if (!p.not_usable.empty()) {
                    if (it != recorded.end()) {
                        it->second = true;
                    }
                    p.action.action = "uncapturable";
                    planned.push_back(p);
                    continue;
                }
            }
            if (it != recorded.end()) {
                it->second = true;
                auto state = c.exec(
                    "SELECT wal_status, pg_catalog.pg_wal_lsn_diff("
                    "pg_catalog.pg_current_wal_flush_lsn(), confirmed_flush_lsn)::bigint::"
                    "pg_catalog.text, confirmed_flush_lsn::pg_catalog.text FROM "
                    "pg_catalog.pg_replication_slots WHERE slot_name OPERATOR(pg_catalog.=) $1",
                    {n.slot});
                std::string problem;
                if (!row->frontier) {
                    problem = "node " + node.label() + " could not capture the source until now";
                } else if (state.rows() == 0) {
                    problem = "slot " + n.slot + " was missing on node " + node.label();
                } else if (state.text(0, 0) == "lost") {
                    problem = "slot " + n.slot + " on node " + node.label() +
                              " was invalidated (its WAL was removed)";
                } else if (!state.is_null(0, 2) &&
                           lsn_of(state.text(0, 2)) > lsn_of(*row->frontier)) {
                    problem = "slot " + n.slot + " on node " + node.label() +
                              " was consumed up to " + state.text(0, 2) +
                              ", past the frontier pg_trickle committed (" + *row->frontier + ")";
                } else if (settings::citus_slot_max_lag_bytes > 0 && !state.is_null(0, 1) &&
                           std::stoll(state.text(0, 1)) >
                               static_cast<long long>(settings::citus_slot_max_lag_bytes)) {
                    problem = "slot " + n.slot + " on node " + node.label() + " lagged " +
                              state.text(0, 1) +
                              " bytes, more than pg_trickle.citus_slot_max_lag_bytes";
                }
                if (problem.empty()) {
                    planned.push_back(p);
                    continue;
                }
                p.action.action = "recreated";
                missed[*key] = problem;
            } else {
                p.action.action = "created";
                // A node that joined may hold shards already: what was written there before
                // its slot existed is not in the buffer.
                auto held =
                    !citus::loaded()
                        ? spi::Result{}
                        : spi::exec(
                              "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_shard s JOIN "
                              "pg_catalog.pg_dist_placement p ON p.shardid OPERATOR(pg_catalog.=) "
                              "s.shardid JOIN pg_catalog.pg_dist_node nd ON nd.groupid "
                              "OPERATOR(pg_catalog.=) p.groupid WHERE s.logicalrelid "
                              "OPERATOR(pg_catalog.=) $1::pg_catalog.oid AND nd.nodename "
                              "OPERATOR(pg_catalog.=) $2 AND nd.nodeport OPERATOR(pg_catalog.=) "
                              "$3::int)::pg_catalog.text",
                              {oid_text(src), node.host, std::to_string(node.port)});
                if (held.scalar() == "true") {
                    missed[*key] = "node " + node.label() + " joined holding shards of the source";
                }
            }
            p.lsn = make_slot(c);
            planned.push_back(p);
        }
        for (const auto& [addr, seen] : recorded) {
            if (seen) {
                continue;
            }
            const remote::Node node = node_at(addr.first, addr.second);
            Planned p{{*key, node.host, node.port, n.slot, "dropped"}, node, "", ""};
            try {
                remote::Connection& c = connect(node);
                if (slot_exists(c, n.slot)) {
                    c.exec("SELECT pg_catalog.pg_drop_replication_slot($1)", {n.slot});
                }
            } catch (const remote::RemoteError&) {
                // Gone with its node; an orphan if it comes back (drop_orphans).
                remote::forget_connection(node);
            }
            missed[*key] = "node " + node.label() + " left the cluster";
            planned.push_back(p);
        }
    }
    // Sources taking over a 0.31.0 slot, once every slot exists (a slot waits for the
    // writers that the lock below could hold up): every write to the source committed below
    // this position, which the old slot is read up to and the new slot starts after.
    for (auto& a : adopt) {
        lock_sources({a.relid});
        a.frontier = current_insert_lsn(connect(citus::this_server()));
    }
    // Phase 2: the catalog.
    for (const auto& a : adopt) {
        catalog::WorkerSlot old;
        old.source_key = a.key;
        old.host = citus::this_server().host;
        old.port = citus::this_server().port;
        old.slot = old.publication = a.old_slot;
        old.frontier = "0/0";  // read from the slot's own position
        // Any failure (a change it cannot decode, a lost slot) gives up its changes: rolled
        // back, the readers recompute, and the old slot is dropped by the next call.
        pg::subtransaction(
            [&] {
                BufferWriter writer(a.relid, a.key);
                const Drained d = drain_slot(a.relid, old, writer, /*max_changes=*/0,
                                             /*exact=*/true);
                pg_call([&]() noexcept {
                    ereport(LOG, (errmsg("pg_trickle: %lld changes of slot %s drained into the "
                                         "buffer of source %s",
                                         static_cast<long long>(d.changes), a.old_slot.c_str(),
                                         a.key.c_str())));
                });
            },
            [&](int, const std::string& why) {
                missed[a.key] = "slot " + a.old_slot + " could not be taken over (" + why + ")";
            });
        for (auto& p : planned) {
            if (p.action.source == a.key && !p.lsn.empty()) {
                p.lsn = a.frontier;
            }
        }
    }
    for (const auto& p : planned) {
        if (p.action.action == "dropped") {
            catalog::delete_worker_slot(p.action.source, p.node.host, p.node.port);
        } else if (p.action.action == "uncapturable") {
            catalog::record_uncapturable_node(p.action.source, p.node.host, p.node.port,
                                              p.action.slot, p.not_usable);
        } else if (!p.lsn.empty()) {
            record_slot(p.action.source, p.node, capture_object_names(p.action.source), p.lsn);
        }
        out.push_back(p.action);
    }
    for (const auto& [key, why] : missed) {
        readers_recompute(key, why + "; readers fully refreshed");
    }
    return out;
}

std::vector<SlotAction> drop_orphans(bool skip_unreachable) {
    std::vector<SlotAction> out;
    std::vector<remote::Node> nodes;
    for (const auto& info : citus::active_primaries()) {
        nodes.push_back(info.node);
    }
    if (nodes.empty()) {
        nodes.push_back(citus::this_server());
    }
    for (const auto& node : nodes) {
        remote::Connection* conn = nullptr;
        try {
            conn = &connect(node);
        } catch (const remote::RemoteError& e) {
            if (!skip_unreachable || !e.connection_failure()) {
                throw;
            }
            continue;  // its orphans wait for the next sweep
        }
        remote::Connection& c = *conn;
        if (node.host == citus::this_server().host && node.port == citus::this_server().port) {
            // 0.31.0's OID-named slots: kept while their source waits to be taken over
            // (provision drains them), dropped with their publication otherwise.
            auto legacy = c.exec(
                "SELECT slot_name::pg_catalog.text, pg_catalog.substr(slot_name, 11) FROM "
                "pg_catalog.pg_replication_slots WHERE slot_name OPERATOR(pg_catalog.~) "
                "'^pgtrickle_[0-9]{1,10}$' AND NOT active AND database OPERATOR(pg_catalog.=) "
                "pg_catalog.current_database() ORDER BY 1");
            for (int i = 0; i < legacy.rows(); ++i) {
                const bool waiting =
                    catalog::legacy_slot_in_use(legacy.text(i, 1), legacy.text(i, 0));
                if (!waiting) {
                    drop_legacy_capture(c, legacy.text(i, 0));
                    out.push_back({"", node.host, node.port, legacy.text(i, 0), "dropped"});
                }
            }
        }
        auto slots = c.exec(
            "SELECT slot_name::pg_catalog.text FROM pg_catalog.pg_replication_slots WHERE "
            "slot_name "
            "OPERATOR(pg_catalog.~) '^pgtrickle_[0-9a-f]{16}$' AND NOT active AND database "
            "OPERATOR(pg_catalog.=) pg_catalog.current_database() ORDER BY 1");
        for (int i = 0; i < slots.rows(); ++i) {
            const std::string slot = slots.text(i, 0);
            // A create (or provisioning) of that source still running holds its provisioning
            // lock from before its slots exist until it commits and records them: never
            // drop a slot it is about to record.
            if (catalog::is_recorded_slot(slot, node.host, node.port) ||
                !try_lock_provisioning(slot.substr(std::strlen("pgtrickle_")))) {
                continue;
            }
            c.exec("SELECT pg_catalog.pg_drop_replication_slot($1)", {slot});
            out.push_back({"", node.host, node.port, slot, "dropped"});
        }
    }
    return out;
}

}  // namespace pgt::capture::wal
