// Helpers of WAL capture that its files share (wal_internal.h), and wants_wal.
#include "capture/wal_internal.h"

#include "boundary/guard.h"
#include "boundary/pg.h"
#include "boundary/spi.h"
#include "catalog/generation.h"
#include "core/sql_ident.h"

extern "C" {
#include "utils/errcodes.h"
}

namespace pgt::capture::wal {

using sql::quote_ident;

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

// Remote connections are made as the extension's owner, who owns the slots and the
// publications (like the change buffers), whoever triggered the drain.
std::string connecting_user() {
    return pg::role_name(pg::extension_owner());
}

remote::Connection& connect(const remote::Node& node) {
    return remote::cached_connection(node, connecting_user());
}

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

// That this transaction has not written on the node matters: creating a slot waits for every
// transaction running on the node, ours included: it would wait forever.
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

// It must exist on every node before a slot starts decoding (pgoutput looks it up at each
// change): so it is created and committed on its own.
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

std::string current_insert_lsn(remote::Connection& c) {
    return c.exec("SELECT pg_catalog.pg_current_wal_insert_lsn()::pg_catalog.text").text(0, 0);
}

void record_slot(const std::string& key, const remote::Node& node, const CaptureObjectNames& n,
                 const std::string& lsn) {
    catalog::record_worker_slot(key, node.host, node.port, n.slot, lsn);
}

pgoutput::Lsn lsn_of(const std::string& text) {
    auto l = pgoutput::parse_lsn(text);
    if (!l) {
        throw Error(ERRCODE_DATA_CORRUPTED, "invalid LSN \"" + text + "\"");
    }
    return *l;
}

void lock_provisioning(const std::string& key) {
    spi::exec(
        "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('pg_trickle slots ' "
        "OPERATOR(pg_catalog.||) $1))",
        {key});
}

bool try_lock_provisioning(const std::string& key) {
    return spi::exec(
               "SELECT pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('pg_trickle "
               "slots ' OPERATOR(pg_catalog.||) $1))",
               {key})
               .scalar() == "t";
}

bool provisioning_elsewhere(const std::string& key) {
    // A session-level lock conflicts with other transactions' transaction-level ones and is
    // given back in the same statement.
    return spi::exec(
               "SELECT CASE WHEN pg_catalog.pg_try_advisory_lock(k) THEN NOT "
               "pg_catalog.pg_advisory_unlock(k) ELSE true END FROM (SELECT "
               "pg_catalog.hashtext('pg_trickle slots ' OPERATOR(pg_catalog.||) $1)::"
               "pg_catalog.int8 AS k) AS key",
               {key})
               .scalar() == "t";
}

std::vector<remote::Node> nodes_for(Oid relid, const citus::Placement& placement) {
    if (placement.kind == citus::Placement::Kind::local) {
        return {citus::this_server()};
    }
    return citus::capture_nodes(relid, placement);
}

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

bool wants_wal(Oid relid) {
    return citus::placement_of(relid).kind != citus::Placement::Kind::local;
}

}  // namespace pgt::capture::wal
