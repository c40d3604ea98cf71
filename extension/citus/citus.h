// What Citus says about this database: whether it is loaded, where a table's rows live, and
// which nodes hold them (see ../docs/citus.md and CITUS_FACTS.md). Every function is cheap
// and returns "not Citus" answers without touching Citus catalogs when the citus extension
// is not installed in this database.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "remote/connection.h"

extern "C" {
#include "postgres.h"
}

namespace pgt::citus {

/// The citus extension is installed in the current database.
bool loaded();

/// Where a table's rows live.
struct Placement {
    enum class Kind { local, reference, distributed };
    Kind kind = Kind::local;
    std::string distribution_column;  ///< distributed tables only
    /// "local", "reference" or "distributed" (pgt_dependencies.source_placement).
    const char* name() const;
};

/// The placement of `relid` (local when Citus is not loaded, or the table is not a Citus
/// table, or a Citus local table).
Placement placement_of(Oid relid);

/// Active primary nodes (pg_dist_node: isactive, noderole 'primary'), coordinator included
/// when it is registered (groupid 0).
struct NodeInfo {
    remote::Node node;
    int32_t groupid = 0;
    bool should_have_shards = false;
    bool coordinator() const { return groupid == 0; }
};
std::vector<NodeInfo> active_primaries();

/// The nodes whose logical decoding reports changes of a source with this placement:
/// for a distributed table, every active primary that can hold its shards (workers, and
/// the coordinator when it holds placements of the table or may get shards); for a
/// reference table, the coordinator only (its local placement is written by every
/// change, and Citus CDC reports reference-table changes only there).
std::vector<remote::Node> capture_nodes(Oid relid, const Placement& placement);

/// This server's group in the cluster (pg_dist_local_group: 0 on the coordinator). Citus
/// must be loaded.
int32_t local_group();

/// The nodes other than the coordinator that hold placements of `relid` (its shards, or a
/// reference table's copies): every one of them takes part in a write to it.
std::vector<remote::Node> placement_nodes(Oid relid);

/// The coordinator as a node this backend can connect to (its pg_dist_node row when
/// registered, else this server's own port on the loopback address).
remote::Node coordinator();

/// This server as a node this backend can connect to without Citus: its first Unix socket
/// directory (else the loopback address) and its port. Captures local tables through WAL.
remote::Node this_server();

/// This backend's Citus global process id (citus_backend_gpid()), which names the
/// connections Citus opens to workers for this transaction ("citus_internal gpid=N").
std::string backend_gpid();

}  // namespace pgt::citus
