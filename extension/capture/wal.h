// WAL capture of Citus tables (docs/citus.md): a publication pgtrickle_<stable name> created
// on the coordinator (Citus propagates it) and a pgoutput slot of the same name on every node
// whose logical decoding reports the table's changes (workers for a distributed table, the
// coordinator for a reference table; Citus CDC, citus.enable_change_data_capture = on, makes
// those report the distributed table instead of its shards). The coordinator reads each slot
// over libpq (remote/) and writes the decoded rows into the source's change buffer: the same
// rows trigger capture writes, stamped with the coordinator transaction that wrote them.
//
// Exactly once (pgtrickle.pgt_worker_slots.worker_frontier): a slot is only peeked; the rows
// of the transactions that committed at or after the stored frontier and the new frontier are
// written in one coordinator transaction; a slot is advanced only up to a committed frontier
// (at the start of the next drain). A crash anywhere re-reads what was not committed and skips
// what was.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "boundary/guard.h"

extern "C" {
#include "postgres.h"
#include "utils/errcodes.h"
}

namespace pgt::capture::wal {

/// Whether `relid` is captured through WAL (a Citus distributed or reference table), as
/// Citus places it now.
bool wants_wal(Oid relid);

/// Before anything of the creating transaction reaches a worker (Citus propagates the
/// stream table's view), for every source in `relids` that is captured through WAL (Citus
/// distributed and reference tables always; local tables when `cdc_mode` is 'wal') and not
/// captured that way yet: check the prerequisites on every capture node, create its
/// publication (in its own transaction, through a connection to this server), lock the
/// source in SHARE mode until commit (no write between the slots' start and the initial
/// population), create one slot per capture node and record them in pgt_worker_slots. A
/// local source captured by triggers so far switches to WAL capture (nothing lost or
/// doubled: the lock holds writers off across the switch).
void prepare_sources(const std::vector<Oid>& relids, const std::string& cdc_mode);

/// A slot that is missing, was invalidated, or lags past pg_trickle.citus_slot_max_lag_bytes:
/// provision() recreates it (in a transaction that has not written yet) and has the source's
/// readers recompute.
class SlotLost : public Error {
  public:
    explicit SlotLost(const std::string& why)
        : Error(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, why,
                "Changes it held may be lost: the slot is recreated by the scheduler's next poll "
                "(or pgtrickle.provision_worker_slots()) and the source's stream tables are "
                "then fully refreshed.",
                "Keep the scheduler running, or call pgtrickle.provision_worker_slots().") {}
};

/// A node that cannot capture a source's changes: it joined (or came back) failing the checks
/// create makes (wal_level, Citus change data capture, pg_trickle version). Its readers fail
/// naming it, never go silently stale; the poller checks it again every tick.
class NodeNotCapturable : public Error {
  public:
    NodeNotCapturable(const std::string& node, const std::string& source, const std::string& why)
        : Error(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                "node " + node + " cannot capture changes of source " + source, why,
                "Fix the node (pgtrickle preflight shows what); the scheduler's next poll (or "
                "pgtrickle.provision_worker_slots()) then creates its slot, and the source's "
                "stream tables are fully refreshed once.") {}
};

/// A node whose slot the WAL poller could not drain at its last try: a scheduled refresh
/// that would have to read it is not attempted (it would wait up to
/// pg_trickle.remote_command_timeout and fail); it is retried with backoff.
class NodeUnreachable : public Error {
  public:
    NodeUnreachable(const std::string& node, const std::string& why)
        : Error(ERRCODE_CONNECTION_FAILURE,
                "node " + node + " did not answer the last poll of its slot", why,
                "The refresh is retried once the node answers; pgtrickle.citus_status shows "
                "the slot's failures.") {}
};

/// A WAL-captured source became a Citus table (or stopped being one) and the poller has not
/// moved its slots yet: a refresh now would miss the changes made where they happen now.
/// Transient: the scheduler retries it (with backoff, not toward suspension).
class SlotsNotProvisioned : public Error {
  public:
    SlotsNotProvisioned(const std::string& message, const std::string& detail,
                        const std::string& hint)
        : Error(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, message, detail, hint) {}
};

/// One drained slot.
struct Drained {
    std::string source;  ///< stable name
    std::string node;    ///< host:port
    int64_t changes = 0;
    std::string frontier;
    bool more = false;  ///< the read stopped at max_changes: more changes may be waiting
};

/// Drain the slots of `relid` into its buffer, in the current transaction: every change
/// committed on each node before this call. `skip_locked`: slots another session is draining
/// are skipped (the scheduler's poll) instead of waited for. `only_node` ("host:port"):
/// that node's slot only. `max_changes` (0: no limit) bounds one slot read. `exact`: also
/// every transaction committed without waiting for its WAL flush (synchronous_commit = off)
/// is read, by waiting for the node's WAL flush; with the source locked (lock_sources) the
/// buffer then describes the source's current rows exactly.
std::vector<Drained> drain(Oid relid, bool skip_locked = false,
                           const std::optional<std::string>& only_node = std::nullopt,
                           int max_changes = 0, bool exact = false);

/// TRUNCATE of `relids` ran in this transaction on this node: Citus CDC does not report it,
/// so the WAL-captured ones among them get a recompute marker in their buffer here.
void note_truncate(const std::vector<Oid>& relids);

/// Lock `relids` in SHARE mode (Citus takes the lock on every node): no write to them can
/// commit until this transaction ends.
void lock_sources(const std::vector<Oid>& relids);

/// Drop the slots, publication and pgt_worker_slots rows of source `key` (its last reader
/// is gone). A node that cannot be reached keeps its slot: a WARNING names it
/// (`pgtrickle slots drop` removes it later).
void drop_source(const std::string& key, const std::string& qualified_name);

/// One action of provision() / drop_orphans().
struct SlotAction {
    std::string source;  ///< stable name ("" for an orphan)
    std::string host;
    int port = 0;
    std::string slot;
    std::string action;  ///< created | present | recreated | dropped
};

/// Make the slots of `relid` (every WAL source when nullopt) match the nodes that now
/// capture it: create missing ones, recreate lost ones, drop those of nodes that left.
/// Where changes may have been missed, readers are marked for a full refresh.
std::vector<SlotAction> provision(std::optional<Oid> relid);

/// Drop slots named pgtrickle_* on the capture nodes that no pgt_worker_slots row names
/// (left by a rolled-back create or a node that was unreachable at drop time), except those
/// of a source whose create or provisioning is still running (it holds the source's
/// provisioning lock until it records them). `skip_unreachable`: a node that cannot be
/// reached is passed over (the poller's sweep), else its failure is raised.
std::vector<SlotAction> drop_orphans(bool skip_unreachable = false);

}  // namespace pgt::capture::wal
