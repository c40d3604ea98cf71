// The catalog layer: captured sources (pgtrickle.pgt_change_tracking) and the slots of the
// WAL-captured ones on each node (pgtrickle.pgt_worker_slots). See generation.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

extern "C" {
#include "postgres.h"
#include "utils/snapshot.h"
}

namespace pgt::catalog {

/// A source a stream table reads, and how its changes are captured.
struct Source {
    Oid relid = InvalidOid;
    bool captured = false;  ///< it has a change buffer (pgt_change_tracking row)
    std::string key;        ///< stable name (its OID on 0.31.0-style rows): names the buffer
    std::optional<std::string> stable_name;   ///< the recorded stable name, when there is one
    std::string cdc_mode;                     ///< trigger | wal
    std::string placement;                    ///< local | reference | distributed
    std::optional<std::string> buffer_sysid;  ///< cluster whose transactions the buffer holds

    /// The change buffer, qualified and quoted.
    std::string buffer() const;
};

/// The captured source `relid`, if it is captured.
std::optional<Source> source(Oid relid);
/// The captured source whose key is `key`.
std::optional<Source> source_with_key(const std::string& key);
/// The sources stream table `id` reads (uncaptured ones with captured = false), under
/// `snapshot` (the current one when invalid).
std::vector<Source> sources_of(int64_t id, Snapshot snapshot = InvalidSnapshot);
/// Every captured source, by OID.
std::vector<Source> captured_sources();
/// The WAL-captured sources of stream table `id` (every one when nullopt), by OID.
std::vector<Oid> wal_sources(std::optional<int64_t> id = std::nullopt);
/// A WAL-captured source as the poller looks at it.
struct WalSourceState {
    Source source;
    /// An inactive 0.31.0 slot named after its OID (pgtrickle_<oid>) is on this server.
    bool legacy_slot_present = false;
};
std::vector<WalSourceState> wal_source_states();
/// The captured source whose capture trigger (insert) is named `trigger_name`.
std::optional<Source> source_with_trigger(const std::string& trigger_name);

/// Record a newly captured source.
void insert_source(Oid relid, const std::string& key, const std::string& cdc_mode,
                   const std::string& placement, const std::string& sysid);
/// Stamp the buffer of `relid` as holding transactions of cluster `sysid`. Returns whether
/// it was stamped with another cluster before (a restored buffer, whose rows are foreign).
bool claim_buffer(Oid relid, const std::string& sysid, Snapshot snapshot = InvalidSnapshot);
void set_cdc_mode(Oid relid, const std::string& cdc_mode);
/// Record where the source's rows live now (local | reference | distributed), for its
/// change tracking and every reader's dependency row.
void set_placement(Oid relid, const std::string& placement);
/// Stream tables reading `relid` (only those maintained differentially, when
/// `differential_only`).
int64_t reader_count(Oid relid, bool differential_only = false);
void delete_source(Oid relid);

/// The oldest transaction every reader of source `key` has consumed: the smallest xmin of
/// their frontiers (readers that recompute anyway, or belong to another cluster, do not
/// hold the buffer back). nullopt when no reader holds it.
/// What the buffer of source `key` must keep, as its readers' frontiers say under
/// `snapshot`: rows from `oldest_xmin` on (the smallest xmin of the frontiers; readers that
/// recompute anyway, or belong to another cluster, do not hold the buffer back; nullopt when
/// no reader holds it), and the rows of `own_xids` (a xid8[] literal): the transactions whose
/// own rows a frontier tells apart by their cmin. Those must never be deleted by a
/// transaction that may still abort: its delete would leave its own command id where their
/// cmin is read.
struct BufferRetention {
    std::optional<std::string> oldest_xmin;
    std::string own_xids = "{}";
};
BufferRetention buffer_retention(const std::string& key, Oid relid, const std::string& sysid,
                                 Snapshot snapshot);

// ---- worker slots ------------------------------------------------------------------------

/// A slot of a WAL-captured source on one node.
struct WorkerSlot {
    std::string source_key, host;
    int port = 0;
    std::string slot, publication;
    std::optional<std::string> frontier;  ///< LSN consumed up to; nullopt: not capturable
    std::optional<std::string> lsn;       ///< the node's flushed WAL position at the last drain
    int consecutive_failures = 0;
    std::optional<std::string> last_error;
    /// The row was written by the current transaction (its frontier is not committed yet).
    bool written_here = false;

    std::string node() const { return host + ":" + std::to_string(port); }
};

/// The slots of source `key` (on node "host:port" only, when given), locked FOR UPDATE
/// until the transaction ends (drains of one slot are serialized); `skip_locked` skips the
/// ones another transaction holds.
std::vector<WorkerSlot> lock_worker_slots(const std::string& key,
                                          const std::optional<std::string>& only_node,
                                          bool skip_locked);
/// The slots of source `key`, not locked.
std::vector<WorkerSlot> worker_slots(const std::string& key);
/// Every recorded slot of every WAL-captured source, with the source's OID.
struct SlotOfSource {
    Oid relid = InvalidOid;
    WorkerSlot slot;
};
std::vector<SlotOfSource> all_worker_slots();
/// Whether `slot` on host:port is a recorded slot.
bool is_recorded_slot(const std::string& slot, const std::string& host, int port);

/// A new (or recreated) slot of source `key`: its frontier is `lsn`, its failures cleared.
void record_worker_slot(const std::string& key, const std::string& host, int port,
                        const std::string& slot, const std::string& lsn);
/// A node that cannot capture source `key` (checks failed): recorded without a slot or a
/// frontier, with `why`, so that its readers fail naming it and status shows it.
void record_uncapturable_node(const std::string& key, const std::string& host, int port,
                              const std::string& slot, const std::string& why);
/// A drain committed (with this transaction): the new frontier and the node's position.
void store_drain(const std::string& key, const std::string& host, int port,
                 const std::string& frontier, const std::string& lsn);
/// A failed poll of the slot on `node` ("host:port"): counted. Returns the failures in a row.
int record_poll_failure(const std::string& key, const std::string& node,
                        const std::string& message);
/// Why the readers of `key` recompute, on its slots that show no error yet.
void note_slot_problem(const std::string& key, const std::string& why);
void delete_worker_slot(const std::string& key, const std::string& host, int port);
void delete_worker_slots(const std::string& key);

/// A 0.31.0 slot named after the OID `relid_text` that waits to be taken over (its source is
/// captured through WAL with no slot recorded yet), or `slot` is recorded already.
bool legacy_slot_in_use(const std::string& relid_text, const std::string& slot);

}  // namespace pgt::catalog
