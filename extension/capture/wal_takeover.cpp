// Taking over a 0.31.0 slot. A 0.31.0 installation captured a local source through a slot
// and a publication named after the table's OID (pgtrickle_<oid>), and recorded neither.
// provision() looks at it (phase 1), drains its unread changes into the source's buffer up to
// where the new slot starts (phase 2), or drops it when it cannot be taken over; the poller's
// sweep (drop_orphans) drops those no source waits for.
#include "capture/wal_internal.h"

#include <algorithm>

#include "boundary/guard.h"
#include "boundary/pg.h"
#include "boundary/spi.h"
#include "catalog/sources.h"
#include "core/sql_ident.h"
#include "settings.h"

namespace pgt::capture::wal {
namespace {

using sql::quote_ident;

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

}  // namespace

std::optional<LegacySlot> legacy_slot(Oid relid, const remote::Node& self) {
    LegacySlot old;
    old.node = self;
    old.name = "pgtrickle_" + oid_text(relid);
    const remote::Result state = connect(self).exec(
        "SELECT s.wal_status, s.active, EXISTS (SELECT 1 FROM pg_catalog.pg_publication p "
        "WHERE p.pubname OPERATOR(pg_catalog.=) s.slot_name), "
        "COALESCE(pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_flush_lsn(), "
        "s.confirmed_flush_lsn), 0) OPERATOR(pg_catalog.<=) $2::pg_catalog.numeric FROM "
        "pg_catalog.pg_replication_slots s WHERE s.slot_name OPERATOR(pg_catalog.=) $1 AND "
        "s.plugin OPERATOR(pg_catalog.=) 'pgoutput' AND s.database OPERATOR(pg_catalog.=) "
        "pg_catalog.current_database()",
        {old.name,
         std::to_string(std::min<long long>(
             kAdoptMaxLagBytes, static_cast<long long>(settings::citus_slot_max_lag_bytes)))});
    if (state.rows() == 0) {
        return std::nullopt;
    }
    old.lost = state.text(0, 0) == "lost";
    old.active = state.text(0, 1) == "t";
    old.has_publication = state.text(0, 2) == "t";
    old.lag_ok = state.text(0, 3) == "t";
    old.full_identity =
        spi::exec(
            "SELECT relreplident::pg_catalog.text FROM pg_catalog.pg_class WHERE oid "
            "OPERATOR(pg_catalog.=) $1::pg_catalog.oid",
            {oid_text(relid)})
            .scalar() == "f";
    return old;
}

bool can_adopt(const LegacySlot& old, const std::vector<remote::Node>& nodes) {
    // Taken over only when it can be read whole (whole old rows, its publication) and
    // quickly: writers wait for the source while it is read.
    return !old.lost && !old.active && old.has_publication && old.lag_ok && old.full_identity &&
           nodes.size() == 1 && nodes[0].host == old.node.host && nodes[0].port == old.node.port;
}

void drop_legacy_slot_if_idle(const LegacySlot& old, const std::string& key,
                              std::vector<SlotAction>& out) {
    if (!old.active) {
        drop_legacy_capture(connect(old.node), old.name);
        out.push_back({key, old.node.host, old.node.port, old.name, "dropped"});
    }
}

void begin_adoption(Adoption& a) {
    lock_sources({a.relid});
    a.frontier = current_insert_lsn(connect(citus::this_server()));
}

std::optional<std::string> drain_legacy_slot(const Adoption& a) {
    catalog::WorkerSlot old;
    old.source_key = a.key;
    old.host = citus::this_server().host;
    old.port = citus::this_server().port;
    old.slot = old.publication = a.old_slot;
    old.frontier = "0/0";  // read from the slot's own position
    std::optional<std::string> failure;
    // Any failure (a change it cannot decode, a lost slot) gives up its changes: rolled
    // back, the readers recompute, and the old slot is dropped by the next call.
    pg::subtransaction(
        [&] {
            BufferWriter writer(a.relid, a.key);
            // Under the source's SHARE lock, as 0.31.0 drained: stamped with this
            // transaction, which the readers' stored frontiers do not show yet.
            const Drained d = drain_slot(a.relid, old, writer, /*max_changes=*/0,
                                         /*exact=*/true, /*writer_xids=*/false);
            pg_call([&]() noexcept {
                ereport(LOG, (errmsg("pg_trickle: %lld changes of slot %s drained into the "
                                     "buffer of source %s",
                                     static_cast<long long>(d.changes), a.old_slot.c_str(),
                                     a.key.c_str())));
            });
        },
        [&](int, const std::string& why) {
            failure = "slot " + a.old_slot + " could not be taken over (" + why + ")";
        });
    return failure;
}

void drop_unclaimed_legacy_slots(remote::Connection& c, const remote::Node& node,
                                 std::vector<SlotAction>& out) {
    // Kept while their source waits to be taken over (provision drains them), dropped with
    // their publication otherwise.
    auto legacy = c.exec(
        "SELECT slot_name::pg_catalog.text, pg_catalog.substr(slot_name, 11) FROM "
        "pg_catalog.pg_replication_slots WHERE slot_name OPERATOR(pg_catalog.~) "
        "'^pgtrickle_[0-9]{1,10}$' AND NOT active AND database OPERATOR(pg_catalog.=) "
        "pg_catalog.current_database() ORDER BY 1");
    for (int i = 0; i < legacy.rows(); ++i) {
        const bool waiting = catalog::legacy_slot_in_use(legacy.text(i, 1), legacy.text(i, 0));
        if (!waiting) {
            drop_legacy_capture(c, legacy.text(i, 0));
            out.push_back({"", node.host, node.port, legacy.text(i, 0), "dropped"});
        }
    }
}

}  // namespace pgt::capture::wal
