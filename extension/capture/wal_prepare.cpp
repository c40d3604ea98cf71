// prepare_sources: WAL capture set up when a stream table is created or its query altered,
// before the transaction writes anything (a new slot waits for every running transaction on
// its node); and a local source's switch between trigger and WAL capture.
#include "capture/wal_internal.h"

#include "boundary/guard.h"
#include "boundary/pg.h"
#include "boundary/spi.h"
#include "capture/capture.h"
#include "catalog/generation.h"

extern "C" {
#include "utils/errcodes.h"
}

namespace pgt::capture::wal {

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

}  // namespace pgt::capture::wal
