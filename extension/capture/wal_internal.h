// What the files of WAL capture share (capture/wal_*.cpp; the public API is wal.h): node
// connections, names, LSN parsing, the provisioning locks, creating slots and publications.
// Private to capture/: nothing else includes it.
//
//   wal_common.cpp    these helpers; wants_wal
//   wal_slots.cpp     create_slot: a slot created by a transaction that fails is dropped again
//   wal_prepare.cpp   prepare_sources: slots made at create/alter time
//   wal_drain.cpp     drain, drain_slot, note_truncate, lock_sources
//   wal_provision.cpp provision, drop_source, drop_orphans: slots kept in line with the nodes
//   wal_takeover.cpp  taking over a 0.31.0 installation's OID-named slot (provision calls it)
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "capture/buffer_writer.h"
#include "capture/wal.h"
#include "catalog/sources.h"
#include "citus/citus.h"
#include "common/oids.h"
#include "core/pgoutput.h"
#include "core/stable_name.h"
#include "remote/connection.h"

extern "C" {
#include "postgres.h"
}

namespace pgt::capture::wal {

// ---- names and nodes -------------------------------------------------------------------

/// schema.table, quoted (search_path-proof).
std::string qualified_name(Oid relid);

/// A connection to `node` (cached) as the extension's owner, who owns the slots and the
/// publications (like the change buffers), whoever triggered the work.
remote::Connection& connect(const remote::Node& node);

/// The extension's owner, as whom remote connections are made.
std::string connecting_user();

/// The node of pg_dist_node with this address (for its pg_dist_authinfo rows), or a node
/// with only the address when it is no longer there.
remote::Node node_at(const std::string& host, int port);

/// The nodes whose slots capture `relid`: Citus' answer for Citus tables, this server for a
/// local table captured through WAL.
std::vector<remote::Node> nodes_for(Oid relid, const citus::Placement& placement);

/// The pg_trickle version installed in this database ("" when none).
std::string local_version();

/// wal_level, Citus CDC and the pg_trickle version on `node` (against `version`); and that
/// this transaction (Citus global process id `gpid`) has not written there. Throws Error
/// naming what is wrong, or remote::RemoteError when the node does not answer.
void check_node(const remote::Node& node, const std::string& version, const std::string& gpid,
                bool citus_node);

// ---- the catalog ---------------------------------------------------------------------------

/// The catalog of `relid` when it is captured through WAL.
std::optional<catalog::Source> wal_source(Oid relid);
/// Its key (stable name) when it is captured through WAL.
std::optional<std::string> wal_key(Oid relid);

/// Record the slot of source `key` on `node`, which reports transactions from `lsn` on.
void record_slot(const std::string& key, const remote::Node& node, const CaptureObjectNames& n,
                 const std::string& lsn);

/// Serializes creating, recreating and dropping the slots of source `key` (until the end of
/// the transaction). An advisory lock: it gives the transaction no id, which a slot created
/// afterwards on this server would wait for.
void lock_provisioning(const std::string& key);
/// lock_provisioning without waiting: false when another transaction holds it.
bool try_lock_provisioning(const std::string& key);
/// Whether another transaction holds lock_provisioning(key) now (a probe: nothing is held
/// afterwards).
bool provisioning_elsewhere(const std::string& key);

// ---- slots, publications, LSNs -------------------------------------------------------------

/// Whether the node has a replication slot named `slot`.
bool slot_exists(remote::Connection& c, const std::string& slot);

/// Create `slot` on the node (dropping an unrecorded one of that name first); returns the
/// LSN from which it reports transactions. Dropped again if this transaction (or the
/// subtransaction that created it) fails (wal_slots.cpp).
std::string create_slot(remote::Connection& c, const std::string& slot);

/// The publication a source's slots decode with, created if missing, on its own (committed)
/// through a connection to `home` (this server, or the coordinator, which Citus propagates it
/// from): it must exist on every node before a slot starts decoding.
void ensure_publication(const remote::Node& home, const std::string& publication,
                        const std::string& source_name);

/// The node's current WAL insert position: every transaction committed so far ends below.
std::string current_insert_lsn(remote::Connection& c);

/// The LSN `text` ("X/Y"); an Error when it is not one.
pgoutput::Lsn lsn_of(const std::string& text);

// ---- draining (wal_drain.cpp) ----------------------------------------------------------------

/// Drain one slot into `writer`: every transaction committed on the node since the slot's
/// committed frontier (s.frontier; "0/0": the slot's own position, for a 0.31.0 slot taken
/// over), up to the node's flushed WAL position. The new frontier is stored in this
/// transaction. `writer_xids`: rows are stamped with the transaction that wrote them (a slot
/// on this server: its transaction ids are this server's), else with the current one.
Drained drain_slot(Oid relid, const catalog::WorkerSlot& s, BufferWriter& writer, int max_changes,
                   bool exact, bool writer_xids);

// ---- the 0.31.0 take-over (wal_takeover.cpp) -------------------------------------------------
// A 0.31.0 installation captured a local source through a slot and a publication named after
// the table's OID (pgtrickle_<oid>), and recorded neither. provision() takes such a slot over
// when the source has no slot recorded and the old one can be read whole and quickly: its
// unread changes are drained into the buffer up to where the new slot starts. Otherwise the
// source's readers recompute and the old slot goes.

/// A 0.31.0 slot, as its node has it.
struct LegacySlot {
    remote::Node node;  ///< this server
    std::string name;   ///< pgtrickle_<oid>, also its publication's name
    bool lost = false;  ///< invalidated (its WAL was removed)
    bool active = false;
    bool has_publication = false;
    bool lag_ok = false;         ///< lags no more than the take-over allows
    bool full_identity = false;  ///< the source is REPLICA IDENTITY FULL
};

/// The 0.31.0 slot of local source `relid` on this server (`self`), or nullopt when there is
/// none.
std::optional<LegacySlot> legacy_slot(Oid relid, const remote::Node& self);

/// Whether the source, captured by `nodes`, can take `old` over: it is read whole (whole old
/// rows, its publication) and quickly (writers wait for the source while it is read).
bool can_adopt(const LegacySlot& old, const std::vector<remote::Node>& nodes);

/// Drop `old` and its publication unless something reads it; the action (for source `key`)
/// is appended to `out`.
void drop_legacy_slot_if_idle(const LegacySlot& old, const std::string& key,
                              std::vector<SlotAction>& out);

/// A source taking over its 0.31.0 slot.
struct Adoption {
    Oid relid;
    std::string key, old_slot;
    std::string frontier;  ///< where the new slot starts (begin_adoption)
};

/// Once every slot of provision() exists: hold writers to the source off (SHARE lock until
/// commit) and take this server's WAL insert position as the frontier that the old slot is
/// read up to and the new slot starts after.
void begin_adoption(Adoption& a);

/// Drain the old slot into the source's buffer up to `a.frontier`, in a subtransaction.
/// Returns why that failed (then its changes are given up: the readers recompute, and the
/// old slot is dropped by the next call), or nullopt.
std::optional<std::string> drain_legacy_slot(const Adoption& a);

/// The orphan sweep on this server: drop the 0.31.0 slots (and publications) no source
/// waits to take over; the actions are appended to `out`.
void drop_unclaimed_legacy_slots(remote::Connection& c, const remote::Node& node,
                                 std::vector<SlotAction>& out);

}  // namespace pgt::capture::wal
