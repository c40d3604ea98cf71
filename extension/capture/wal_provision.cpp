// Keeping slots in line with the nodes: provision (create missing slots, recreate lost ones,
// drop those of nodes that left; the poller calls it), drop_source and drop_orphans.
#include "capture/wal_internal.h"

#include <cstring>
#include <map>
#include <utility>

#include "boundary/guard.h"
#include "boundary/pg.h"
#include "boundary/spi.h"
#include "catalog/stream_tables.h"
#include "core/sql_ident.h"
#include "settings.h"

extern "C" {
#include "utils/errcodes.h"
}

namespace pgt::capture::wal {
namespace {

using sql::quote_ident;

/// Readers of source `key` compute from scratch at their next refresh: changes may have
/// been missed (a slot was lost or recreated, a node joined with shards).
void readers_recompute(const std::string& key, const std::string& reason) {
    catalog::mark_readers_for_full_refresh(key, reason);
    catalog::note_slot_problem(key, reason);
    pg_call([&]() noexcept {
        ereport(LOG, (errmsg("pg_trickle: readers of source %s recompute", key.c_str()),
                      errdetail("%s", reason.c_str())));
    });
}

}  // namespace

void drop_source(const std::string& key, const std::string& qualified_name_text) {
    // The poller may be draining these slots (a slot being read cannot be dropped) or about
    // to recreate one it finds missing: wait for it (the source's provisioning lock, then
    // the rows' locks, which its drains hold) before dropping anything.
    lock_provisioning(key);
    for (const auto& s : catalog::lock_worker_slots(key, std::nullopt, false)) {
        const remote::Node node = node_at(s.host, s.port);
        try {
            remote::Connection& c = connect(node);
            if (slot_exists(c, s.slot)) {
                c.exec("SELECT pg_catalog.pg_drop_replication_slot($1)", {s.slot});
            }
        } catch (const remote::RemoteError& e) {
            const std::string msg = std::string("could not drop replication slot ") + s.slot +
                                    " on node " + node.label() + ": " + e.what();
            pg_call([&]() noexcept {
                ereport(WARNING,
                        (errmsg("%s", msg.c_str()),
                         errhint("The slot keeps WAL on that node: run pgtrickle slots drop "
                                 "when the node is back.")));
            });
        }
    }
    catalog::delete_worker_slots(key);
    const std::string pub = capture_object_names(key).slot;
    if (spi::exec("SELECT 1 FROM pg_catalog.pg_publication WHERE pubname OPERATOR(pg_catalog.=) $1",
                  {pub})
            .scalar()) {
        spi::run("DROP PUBLICATION IF EXISTS " + quote_ident(pub));
    }
    (void)qualified_name_text;
}

std::vector<SlotAction> provision(std::optional<Oid> relid) {
    if (pg::isolation_uses_xact_snapshot()) {
        // The recorded slots are read after waiting for a concurrent provisioning: under a
        // transaction snapshot they would be read as they were before it committed.
        throw Error(ERRCODE_ACTIVE_SQL_TRANSACTION,
                    "slots are provisioned in READ COMMITTED transactions only", "",
                    "Call it outside an explicit REPEATABLE READ/SERIALIZABLE transaction.");
    }
    std::vector<SlotAction> out;
    struct Planned {
        SlotAction action;
        remote::Node node;
        std::string lsn;         ///< the new slot's start (created, recreated)
        std::string not_usable;  ///< why the node cannot capture the source (uncapturable)
    };
    std::string version, gpid;  // what a node is checked against, read once
    std::vector<Planned> planned;
    std::map<std::string, std::string> missed;  // key -> why its readers recompute
    std::map<std::string, std::string> moved;   // key -> its new placement, said first
    std::map<Oid, std::string> placed;          // source -> placement to record (phase 2)
    std::vector<Adoption> adopt;  // 0.31.0 slots whose changes are drained, not recomputed
    const std::vector<Oid> sources = relid ? std::vector<Oid>{*relid} : catalog::wal_sources();
    // Phase 1, before this transaction writes anything: look at every node, create slots.
    for (Oid src : sources) {
        const auto key = wal_key(src);
        if (!key) {
            throw Error(ERRCODE_INVALID_PARAMETER_VALUE,
                        "relation " + qualified_name(src) + " is not a WAL-captured source", "",
                        "Only sources of stream tables on distributed or reference tables have "
                        "slots.");
        }
        lock_provisioning(*key);
        if (!wal_key(src)) {
            continue;  // its last reader was dropped while we waited
        }
        const CaptureObjectNames n = capture_object_names(*key);
        const citus::Placement placement =
            citus::loaded() ? citus::placement_of(src) : citus::Placement{};
        // The table was made a Citus table since it was captured (create_distributed_table,
        // a pg_ripple VP promotion), or undistributed: its changes now happen on other
        // nodes. Its slots follow (below); what was written between the change and the new
        // slots is in no buffer, so its readers recompute once. They are not recreated.
        if (const auto recorded_source = catalog::source(src);
            recorded_source && recorded_source->placement != placement.name()) {
            // Recorded in phase 2: a write now would give this transaction an id that a
            // slot created on this server below would wait for.
            placed[src] = placement.name();
            moved[*key] = "source " + qualified_name(src) + " became a " +
                          (placement.kind == citus::Placement::Kind::local
                               ? std::string("local table")
                               : std::string("Citus ") + placement.name() + " table") +
                          " (was " + recorded_source->placement +
                          "): what was written before its new slots existed is in no buffer";
        }
        const auto nodes = nodes_for(src, placement);
        std::map<std::pair<std::string, int>, bool> recorded;
        std::map<std::pair<std::string, int>, catalog::WorkerSlot> rows;
        for (const auto& r : catalog::worker_slots(*key)) {
            recorded[{r.host, r.port}] = false;
            rows[{r.host, r.port}] = r;
        }
        // A 0.31.0 installation's slot (wal_takeover.cpp): only local sources had one, Citus
        // tables are not looked at.
        const bool local = placement.kind == citus::Placement::Kind::local;
        const remote::Node self_node = citus::this_server();
        const std::optional<LegacySlot> legacy = local ? legacy_slot(src, self_node) : std::nullopt;
        if (legacy && !recorded.empty()) {
            // Its changes were drained into the buffer by the committed transaction that
            // recorded the new slot (below): what it holds now, the new slot holds too.
            drop_legacy_slot_if_idle(*legacy, *key, out);
        } else if (recorded.empty()) {
            if (legacy && can_adopt(*legacy, nodes)) {
                // Its unread changes are drained into the buffer (phase 2), exactly up to
                // where the new slot takes over; it is dropped once that has committed.
                adopt.push_back({src, *key, legacy->name, ""});
            } else {
                // Captured through WAL with no slot at all: what was written before the new
                // slot is in no buffer, so readers recompute.
                missed[*key] = "the source had no slot recorded";
                if (legacy) {
                    drop_legacy_slot_if_idle(*legacy, *key, out);
                }
            }
        }
        // A slot about to be made (created, or recreated) decodes with the publication.
        bool publication_checked = false;
        const auto make_slot = [&](remote::Connection& c) {
            if (!publication_checked) {
                ensure_publication(local ? self_node : citus::coordinator(), n.slot,
                                   qualified_name(src));
                publication_checked = true;
            }
            return create_slot(c, n.slot);
        };
        for (const auto& node : nodes) {
            Planned p{{*key, node.host, node.port, n.slot, "present"}, node, "", ""};
            auto it = recorded.find({node.host, node.port});
            const catalog::WorkerSlot* row =
                it == recorded.end() ? nullptr : &rows.at({node.host, node.port});
            remote::Connection& c = connect(node);
            if (row == nullptr || !row->frontier) {
                // A node that joined, or was not capturable at its last look, is checked as
                // create checks before its slot is trusted; until it passes, its readers fail
                // naming it (drain) and status shows why.
                if (version.empty()) {
                    version = local_version();
                    gpid = citus::loaded() ? citus::backend_gpid() : "";
                }
                try {
                    check_node(node, version, gpid, !local);
                } catch (const remote::RemoteError& e) {
                    if (e.connection_failure()) {
                        throw;  // unreachable: retried by the next poll
                    }
                    p.not_usable = describe(e);
                } catch (const Error& e) {
                    p.not_usable =
                        std::string(e.what()) + (e.hint().empty() ? "" : ". " + e.hint());
                }
                if (!p.not_usable.empty()) {
                    if (it != recorded.end()) {
                        it->second = true;
                    }
                    p.action.action = "uncapturable";
                    planned.push_back(p);
                    continue;
                }
            }
            if (it != recorded.end()) {
                it->second = true;
                auto state = c.exec(
                    "SELECT wal_status, pg_catalog.pg_wal_lsn_diff("
                    "pg_catalog.pg_current_wal_flush_lsn(), confirmed_flush_lsn)::bigint::"
                    "pg_catalog.text, confirmed_flush_lsn::pg_catalog.text FROM "
                    "pg_catalog.pg_replication_slots WHERE slot_name OPERATOR(pg_catalog.=) $1",
                    {n.slot});
                std::string problem;
                if (!row->frontier) {
                    problem = "node " + node.label() + " could not capture the source until now";
                } else if (state.rows() == 0) {
                    problem = "slot " + n.slot + " was missing on node " + node.label();
                } else if (state.text(0, 0) == "lost") {
                    problem = "slot " + n.slot + " on node " + node.label() +
                              " was invalidated (its WAL was removed)";
                } else if (!state.is_null(0, 2) &&
                           lsn_of(state.text(0, 2)) > lsn_of(*row->frontier)) {
                    problem = "slot " + n.slot + " on node " + node.label() +
                              " was consumed up to " + state.text(0, 2) +
                              ", past the frontier pg_trickle committed (" + *row->frontier + ")";
                } else if (settings::citus_slot_max_lag_bytes > 0 && !state.is_null(0, 1) &&
                           std::stoll(state.text(0, 1)) >
                               static_cast<long long>(settings::citus_slot_max_lag_bytes)) {
                    problem = "slot " + n.slot + " on node " + node.label() + " lagged " +
                              state.text(0, 1) +
                              " bytes, more than pg_trickle.citus_slot_max_lag_bytes";
                }
                if (problem.empty()) {
                    planned.push_back(p);
                    continue;
                }
                p.action.action = "recreated";
                missed[*key] = problem;
            } else {
                p.action.action = "created";
                // A node that joined may hold shards already: what was written there before
                // its slot existed is not in the buffer.
                auto held =
                    !citus::loaded()
                        ? spi::Result{}
                        : spi::exec(
                              "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_shard s JOIN "
                              "pg_catalog.pg_dist_placement p ON p.shardid OPERATOR(pg_catalog.=) "
                              "s.shardid JOIN pg_catalog.pg_dist_node nd ON nd.groupid "
                              "OPERATOR(pg_catalog.=) p.groupid WHERE s.logicalrelid "
                              "OPERATOR(pg_catalog.=) $1::pg_catalog.oid AND nd.nodename "
                              "OPERATOR(pg_catalog.=) $2 AND nd.nodeport OPERATOR(pg_catalog.=) "
                              "$3::int)::pg_catalog.text",
                              {oid_text(src), node.host, std::to_string(node.port)});
                if (held.scalar() == "true") {
                    missed[*key] = "node " + node.label() + " joined holding shards of the source";
                }
            }
            p.lsn = make_slot(c);
            planned.push_back(p);
        }
        for (const auto& [addr, seen] : recorded) {
            if (seen) {
                continue;
            }
            const remote::Node node = node_at(addr.first, addr.second);
            Planned p{{*key, node.host, node.port, n.slot, "dropped"}, node, "", ""};
            try {
                remote::Connection& c = connect(node);
                if (slot_exists(c, n.slot)) {
                    c.exec("SELECT pg_catalog.pg_drop_replication_slot($1)", {n.slot});
                }
            } catch (const remote::RemoteError&) {
                // Gone with its node; an orphan if it comes back (drop_orphans).
                remote::forget_connection(node);
            }
            missed[*key] = "node " + node.label() + " left the cluster";
            planned.push_back(p);
        }
    }
    // Sources taking over a 0.31.0 slot, once every slot exists (a slot waits for the
    // writers that the lock below could hold up): every write to the source committed below
    // this position, which the old slot is read up to and the new slot starts after.
    for (auto& a : adopt) {
        begin_adoption(a);
    }
    // Phase 2: the catalog.
    for (const auto& a : adopt) {
        if (auto why = drain_legacy_slot(a)) {
            missed[a.key] = *why;
        }
        for (auto& p : planned) {
            if (p.action.source == a.key && !p.lsn.empty()) {
                p.lsn = a.frontier;
            }
        }
    }
    for (const auto& p : planned) {
        if (p.action.action == "dropped") {
            catalog::delete_worker_slot(p.action.source, p.node.host, p.node.port);
        } else if (p.action.action == "uncapturable") {
            catalog::record_uncapturable_node(p.action.source, p.node.host, p.node.port,
                                              p.action.slot, p.not_usable);
        } else if (!p.lsn.empty()) {
            record_slot(p.action.source, p.node, capture_object_names(p.action.source), p.lsn);
        }
        out.push_back(p.action);
    }
    for (const auto& [src, where] : placed) {
        catalog::set_placement(src, where);
    }
    for (const auto& [key, why] : moved) {
        missed[key] = why;  // the slots it dropped and made follow from it
    }
    for (const auto& [key, why] : missed) {
        readers_recompute(key, why + "; readers fully refreshed");
    }
    return out;
}

std::vector<SlotAction> drop_orphans(bool skip_unreachable) {
    std::vector<SlotAction> out;
    // A local source's slot on this server is recorded under this server's own address
    // (this_server: its socket directory), not its pg_dist_node name.
    const remote::Node self = citus::this_server();
    std::vector<std::pair<remote::Node, bool>> nodes;  // node, is this server
    const std::vector<citus::NodeInfo> primaries = citus::active_primaries();
    const int32_t group = primaries.empty() ? 0 : citus::local_group();
    nodes.reserve(primaries.size() + 1);
    for (const auto& info : primaries) {
        nodes.emplace_back(info.node, info.groupid == group);
    }
    if (nodes.empty()) {
        nodes.emplace_back(self, true);
    }
    for (const auto& [node, is_self] : nodes) {
        remote::Connection* conn = nullptr;
        try {
            conn = &connect(node);
        } catch (const remote::RemoteError& e) {
            if (!skip_unreachable || !e.connection_failure()) {
                throw;
            }
            continue;  // its orphans wait for the next sweep
        }
        remote::Connection& c = *conn;
        if (is_self) {
            drop_unclaimed_legacy_slots(c, node, out);  // 0.31.0's OID-named slots
        }
        auto slots = c.exec(
            "SELECT slot_name::pg_catalog.text FROM pg_catalog.pg_replication_slots WHERE "
            "slot_name "
            "OPERATOR(pg_catalog.~) '^pgtrickle_[0-9a-f]{16}$' AND NOT active AND database "
            "OPERATOR(pg_catalog.=) pg_catalog.current_database() ORDER BY 1");
        for (int i = 0; i < slots.rows(); ++i) {
            const std::string slot = slots.text(i, 0);
            // A create (or provisioning) of that source still running holds its provisioning
            // lock from before its slots exist until it commits and records them: never
            // drop a slot it is about to record.
            if (catalog::is_recorded_slot(slot, node.host, node.port) ||
                (is_self && catalog::is_recorded_slot(slot, self.host, self.port)) ||
                !try_lock_provisioning(slot.substr(std::strlen("pgtrickle_")))) {
                continue;
            }
            c.exec("SELECT pg_catalog.pg_drop_replication_slot($1)", {slot});
            out.push_back({"", node.host, node.port, slot, "dropped"});
        }
    }
    return out;
}

}  // namespace pgt::capture::wal
