// Draining slots into change buffers (exactly once: see wal.h), TRUNCATE markers and the
// SHARE locks that hold writers off while the buffer catches up with a source.
#include "capture/wal_internal.h"

#include <algorithm>
#include <map>
#include <utility>

#include "boundary/guard.h"
#include "boundary/spi.h"
#include "capture/state_copy.h"
#include "catalog/sources.h"
#include "catalog/stream_tables.h"
#include "core/sql_ident.h"
#include "scheduler/scheduler.h"
#include "settings.h"

extern "C" {
#include "access/xlog.h"
#include "replication/message.h"
#include "storage/standby.h"
#include "utils/errcodes.h"
}

namespace pgt::capture::wal {
namespace {

using sql::quote_literal;

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

/// Make every WAL record written so far durable (what a synchronous commit does): a drain of
/// this server's slots then reads every transaction that committed here, also asynchronously.
void flush_local_wal() {
    pg_call([]() noexcept {
        // A running-transactions record first: decoding past it lets the slot's restart
        // position move up to here when the next drain advances the slot. PostgreSQL writes
        // one only every 15 s; under heavy writes each drain would otherwise decode (twice)
        // all the WAL since then (pg_log_standby_snapshot() of PostgreSQL 16 does the same).
        (void)LogStandbySnapshot();
        // Flushed up to the end of a record of our own (the insert position itself may lie
        // past a page header no record was written after, which XLogFlush refuses). The
        // message is not transactional and slots read without 'messages' skip it.
        XLogFlush(LogLogicalMessage("pg_trickle", "", 0, false));
    });
}

}  // namespace

Drained drain_slot(Oid relid, const catalog::WorkerSlot& s, BufferWriter& writer, int max_changes,
                   bool exact, bool writer_xids) {
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
        // asynchronously (synchronous_commit = off) whose WAL is not flushed yet: the WAL
        // written so far must be flushed. The walwriter flushes an asynchronous commit within
        // wal_writer_delay, but not a partly filled page of WAL that no commit follows (an
        // open transaction's, this refresh's own Citus DDL): one synchronous commit here
        // flushes everything before it (a transaction id, nothing else, on that node).
        const std::string inserted = current_insert_lsn(c);
        c.exec(
            "DO $pgt$ BEGIN PERFORM pg_catalog.set_config('synchronous_commit', 'on', true); "
            "PERFORM pg_catalog.txid_current(); END $pgt$");
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
    if (!problem.empty() && provisioning_elsewhere(s.source_key)) {
        // The scheduler's poller (or provision_worker_slots()) found the slot lost first and
        // is recreating it: what is on the node now is its new slot, which it records once
        // this transaction gives the slot's row lock back.
        problem = "slot " + s.slot + " on node " + node.label() +
                  " is being recreated by another session (the scheduler's poller or "
                  "pgtrickle.provision_worker_slots()), which found it missing or lost";
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
                if (writer_xids && !skip) {
                    writer.stamp_writer(b->xid);
                }
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
    // A plain table's rows are written by this server's transactions: its buffer rows carry
    // their writers' ids, as trigger capture's do. A Citus table's are written on other
    // nodes (or through them), in transaction id spaces of their own: stamped with ours.
    const bool writer_xids = src->placement == "local";
    BufferWriter writer(relid, src->key);
    // A Citus source whose rows a delta reads has a state copy: it takes every row the
    // buffer takes, in this transaction.
    state::Applier copy(src->key);
    if (copy.active()) {
        writer.after_flush([&copy](const std::vector<std::string>& tids) { copy.apply(tids); });
    }
    for (const auto& s : slots) {
        out.push_back(drain_slot(relid, s, writer, max_changes, exact, writer_xids));
    }
    if (copy.unmatched() > 0) {
        // A deletion decoded before its insertion (slots of different nodes are read in no
        // common order, as around a shard move): the copy is wrong until it is filled again,
        // which its readers' full refresh does.
        catalog::mark_readers_for_full_refresh(
            src->key, std::to_string(copy.unmatched()) + " deleted row(s) of " +
                          qualified_name(relid) +
                          " arrived before their insertion; its state copy is filled again");
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

}  // namespace pgt::capture::wal
