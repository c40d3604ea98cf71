// Per-worker replication slots of distributed sources (Citus): reading
// pgtrickle.pgt_worker_slots with each slot's lag, and the extension's
// pgtrickle.provision_worker_slots() / pgtrickle.drop_orphan_worker_slots(). Used by
// `pgtrickle slots` and by `pgtrickle status`.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>

#include <pqxx/transaction_base>

#include "client/connection.h"
#include "core/json.h"

namespace pgt::client {

/// Thrown when slots cannot be managed in the connected database (no Citus, or an
/// extension version without the function); hint() says what to do. A configuration
/// problem (exit 3).
class SlotsUnavailable : public std::runtime_error {
  public:
    SlotsUnavailable(const std::string& message, std::string hint)
        : std::runtime_error(message), hint_(std::move(hint)) {}
    const std::string& hint() const { return hint_; }

  private:
    std::string hint_;
};

/// Which worker slots to read.
struct SlotFilter {
    std::optional<std::string> source_oid;  ///< only this source table (its OID, as text)
    std::optional<long long> pgt_id;        ///< only the sources this stream table reads
};

/// The rows of pgtrickle.pgt_worker_slots, one per source and worker, ordered by source,
/// worker host and port, as JSON objects with: source ("schema.table", or the stable name
/// when the table is gone), source_stable_name, worker ("host:port"), worker_name,
/// worker_port, slot_name, publication_name, worker_frontier, worker_lsn, lag_bytes
/// (worker_lsn - worker_frontier), last_polled_at, last_poll_age_seconds,
/// consecutive_failures, last_error, failing_since. worker_lsn and failing_since are null
/// on catalogs before 0.35.0 (and lag_bytes with them). An empty array when the catalog
/// has no pgt_worker_slots. Timestamps are as the transaction's TimeZone/DateStyle print.
json::Value read_worker_slots(pqxx::transaction_base& tx, const Node& node,
                              const SlotFilter& filter);

/// read_worker_slots in a transaction of its own, timestamps ISO in UTC, of every source or
/// of `source` named as the user's SQL would name it. Throws NotFound when that names no
/// table.
json::Value list_worker_slots(Node& node, const std::optional<std::string>& source);

/// Calls pgtrickle.provision_worker_slots(source) (every distributed source when
/// nullopt) and returns what it did, one object per slot: source, source_stable_name,
/// worker, worker_name, worker_port, slot_name, action (created, present, recreated or
/// dropped). Throws SlotsUnavailable without Citus or without the function, NotFound when
/// source names no table.
json::Value provision_worker_slots(Node& node, const std::optional<std::string>& source);

/// Calls pgtrickle.drop_orphan_worker_slots() and returns the slots it dropped: worker,
/// worker_name, worker_port, slot_name. Throws SlotsUnavailable as provision does.
json::Value drop_orphan_worker_slots(Node& node);

}  // namespace pgt::client
