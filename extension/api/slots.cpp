// SQL functions over the slots of WAL-captured (Citus) sources: poll_worker_slots,
// provision_worker_slots, drop_orphan_worker_slots (sql/pg_trickle--*.sql, docs/citus.md).
#include <optional>
#include <string>
#include <vector>

#include "boundary/guard.h"
#include "boundary/pg.h"
#include "boundary/spi.h"
#include "capture/wal.h"
#include "catalog/sources.h"

extern "C" {
#include "utils/errcodes.h"
}

namespace {

using Rows = std::vector<std::vector<std::optional<std::string>>>;

std::optional<Oid> source_arg(FunctionCallInfo fcinfo) {
    if (PG_ARGISNULL(0)) {
        return std::nullopt;
    }
    return PG_GETARG_OID(0);
}

}  // namespace

using namespace pgt;

// pgtrickle.poll_worker_slots(source regclass DEFAULT NULL)
PGT_FUNCTION(pgtrickle_poll_worker_slots) {
    spi::Session spi;
    const pg::AsExtensionOwner as_extension_owner;
    const auto source = source_arg(fcinfo);
    const std::vector<Oid> sources = source ? std::vector<Oid>{*source} : catalog::wal_sources();
    Rows rows;
    for (Oid relid : sources) {
        for (const auto& d : capture::wal::drain(relid)) {
            rows.push_back({d.source, d.node, std::to_string(d.changes), d.frontier});
        }
    }
    spi.finish();
    pg::return_rows(fcinfo, rows);
    return (Datum)0;
}

// pgtrickle.provision_worker_slots(source regclass DEFAULT NULL)
PGT_FUNCTION(pgtrickle_provision_worker_slots) {
    spi::Session spi;
    const pg::AsExtensionOwner as_extension_owner;
    Rows rows;
    for (const auto& a : capture::wal::provision(source_arg(fcinfo))) {
        rows.push_back({a.source, a.host, std::to_string(a.port), a.slot, a.action});
    }
    spi.finish();
    pg::return_rows(fcinfo, rows);
    return (Datum)0;
}

// pgtrickle.drop_orphan_worker_slots()
PGT_FUNCTION(pgtrickle_drop_orphan_worker_slots) {
    spi::Session spi;
    const pg::AsExtensionOwner as_extension_owner;
    Rows rows;
    for (const auto& a : capture::wal::drop_orphans()) {
        rows.push_back({a.host, std::to_string(a.port), a.slot});
    }
    spi.finish();
    pg::return_rows(fcinfo, rows);
    return (Datum)0;
}
