// The WAL poller: one background worker per database that has WAL-captured sources (Citus
// tables, cdc_mode 'wal'), started by that database's scheduler. It keeps each source's
// slots in line with the cluster's nodes, drains every slot into its buffer, and sweeps
// orphaned slots. It is a process of its own so that a node that does not answer (frozen,
// black-holed: every remote wait is bounded by pg_trickle.remote_command_timeout, but that is
// still a wait) never holds up the scheduler, whose refreshes of stream tables that do not
// read that node go on; scheduled differential refreshes read the buffers it fills.
//
// Each node is drained in its own transactions (a failing node holds back only its own
// changes, and its slot's confirmed position keeps moving with its own drains); a node whose
// poll failed is retried after a backoff that doubles up to 30 s (jittered), so that one
// slow node does not delay the others' drains tick after tick.
#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "boundary/guard.h"
#include "boundary/pg.h"
#include "boundary/spi.h"
#include "capture/wal.h"
#include "catalog/generation.h"
#include "catalog/sources.h"
#include "citus/citus.h"
#include "remote/connection.h"
#include "scheduler/scheduler.h"
#include "scheduler/worker.h"
#include "settings.h"

extern "C" {
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
}

namespace pgt::scheduler {
namespace {

/// Changes of one poll transaction at most; a bigger backlog takes several transactions.
constexpr int kPollBatch = 50000;
/// Transactions per slot and tick at most (then the other slots get their turn).
constexpr int kRoundsPerTick = 20;
/// How often orphaned slots are looked for.
constexpr int64_t kSweepEveryMs = 60000;
/// The longest a failing node is left alone.
constexpr int64_t kMaxBackoffMs = 30000;

/// in_catalog_transaction (worker.h), as the extension's owner with an SPI session open.
template <typename F>
bool in_pinned_transaction(F&& work) {
    return in_catalog_transaction([&] {
        const pg::AsExtensionOwner as_extension_owner;
        spi::Session spi;
        work();
        spi.finish();
    });
}

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

/// Nodes whose last poll failed, and when to try them again.
struct Backoff {
    int failures = 0;
    int64_t retry_at_ms = 0;
};
std::map<std::string, Backoff>& backoffs() {
    static auto* map = new std::map<std::string, Backoff>();  // process lifetime
    return *map;
}

bool backing_off(const std::string& node) {
    const auto it = backoffs().find(node);
    return it != backoffs().end() && now_ms() < it->second.retry_at_ms;
}

void note_failure(const std::string& node) {
    static std::mt19937 rng(static_cast<unsigned>(MyProcPid));
    Backoff& b = backoffs()[node];
    b.failures = std::min(b.failures + 1, 16);
    const int64_t base = std::min<int64_t>(kMaxBackoffMs, 500LL << std::min(b.failures, 7));
    // +-20%: many coordinators' pollers do not retry a node in step.
    std::uniform_int_distribution<int64_t> jitter(-base / 5, base / 5);
    b.retry_at_ms = now_ms() + base + jitter(rng);
}

/// A slot read of the poller that failed: counted on its pgt_worker_slots row (failing
/// since when, the error); a WARNING every pg_trickle.citus_worker_retry_ticks failures.
void record_poll_failure(const std::string& key, const std::string& node,
                         const std::string& message) {
    (void)in_pinned_transaction([&] {
        const int failures = catalog::record_poll_failure(key, node, message);
        if (settings::citus_worker_retry_ticks > 0 && failures > 0 &&
            failures % settings::citus_worker_retry_ticks == 0) {
            pg_call([&]() noexcept {
                ereport(WARNING,
                        (errmsg("pg_trickle: %d consecutive failed polls of node %s", failures,
                                node.c_str()),
                         errdetail("%s", message.c_str()),
                         errhint("Stream tables reading source %s are not refreshed past this "
                                 "node's changes until it answers; see pgtrickle.citus_status.",
                                 key.c_str())));
            });
        }
    });
}

/// Bring each WAL-captured source's slots in line with the nodes that capture it now.
void provision_drifted(const std::vector<Oid>& drifted) {
    // One source per transaction (provisioning writes, and a slot created later on this
    // server would wait for that transaction); a failure holds back only that source.
    static auto* failures = new std::map<Oid, int>();
    for (Oid relid : drifted) {
        CHECK_FOR_INTERRUPTS();
        try {
            (void)in_pinned_transaction([&] {
                for (const auto& a : capture::wal::provision(relid)) {
                    if (a.action != "present") {
                        pg_call([&]() noexcept {
                            ereport(LOG,
                                    (errmsg("pg_trickle: slot %s on node %s:%d %s", a.slot.c_str(),
                                            a.host.c_str(), a.port, a.action.c_str())));
                        });
                    }
                }
            });
            failures->erase(relid);
        } catch (const std::exception& e) {
            remote::forget_all_connections();
            const int n = ++(*failures)[relid];
            if (n == 1 || (settings::citus_worker_retry_ticks > 0 &&
                           n % settings::citus_worker_retry_ticks == 0)) {
                const std::string why = describe(e);
                pg_call([&]() noexcept {
                    ereport(WARNING, (errmsg("pg_trickle: provisioning the slots of source %u "
                                             "failed (%d times in a row): %s",
                                             relid, n, why.c_str()),
                                      errhint("The poller retries every tick; "
                                              "pgtrickle.citus_status shows the slots.")));
                });
            }
        }
    }
}

struct SlotRef {
    Oid relid;
    std::string key, node;
};

/// Drain one slot (several transactions for a big backlog). A lost slot is recreated in a
/// transaction of its own and its readers recompute; another failure is counted on the slot
/// and the node is left alone for a while.
void drain_one(const SlotRef& slot) {
    std::string error;
    try {
        for (int round = 0; round < kRoundsPerTick; ++round) {
            bool more = false;
            (void)in_pinned_transaction([&] {
                for (const auto& d :
                     capture::wal::drain(slot.relid, /*skip_locked=*/true, slot.node, kPollBatch)) {
                    more = more || d.more;
                }
            });
            if (!more) {
                break;
            }
        }
        backoffs().erase(slot.node);
        return;
    } catch (const capture::wal::SlotLost& e) {
        error = describe(e);
    } catch (const std::exception& e) {
        remote::forget_all_connections();
        note_failure(slot.node);
        record_poll_failure(slot.key, slot.node, describe(e));
        return;
    }
    pg_call(
        [&]() noexcept { ereport(LOG, (errmsg("pg_trickle: %s; recreating it", error.c_str()))); });
    try {
        (void)in_pinned_transaction([&] { (void)capture::wal::provision(slot.relid); });
    } catch (const std::exception& e) {
        remote::forget_all_connections();
        note_failure(slot.node);
        record_poll_failure(slot.key, slot.node, describe(e));
    }
}

/// Orphaned slots (a create rolled back while its node was unreachable, a drop while a node
/// was away) are dropped once their node answers: faults heal by themselves.
void sweep_orphans() {
    static int64_t last_ms = 0;
    if (now_ms() - last_ms < kSweepEveryMs) {
        return;
    }
    last_ms = now_ms();
    try {
        (void)in_pinned_transaction([&] {
            for (const auto& a : capture::wal::drop_orphans(/*skip_unreachable=*/true)) {
                pg_call([&]() noexcept {
                    ereport(LOG, (errmsg("pg_trickle: dropped orphaned slot %s on node %s:%d",
                                         a.slot.c_str(), a.host.c_str(), a.port)));
                });
            }
        });
    } catch (const std::exception& e) {
        remote::forget_all_connections();
        const std::string why = describe(e);
        pg_call([&]() noexcept {
            ereport(LOG, (errmsg("pg_trickle: orphaned slots not swept: %s", why.c_str())));
        });
    }
}

/// One pass. Returns false when there is nothing (left) to poll: no pg_trickle, no
/// WAL-captured source.
bool poll_once() {
    std::vector<SlotRef> slots;
    std::vector<Oid> drifted;
    bool any = false;
    const bool installed = in_pinned_transaction([&] {
        // Topology: nodes that joined or left since the slots were provisioned, nodes not
        // capturable at their last look, a local source without its slot, or with a 0.31.0
        // slot (pgtrickle_<oid>) still there (an installation upgraded from 0.31.0).
        for (const auto& state : catalog::wal_source_states()) {
            any = true;
            const Oid relid = state.source.relid;
            std::vector<std::string> want, have;
            const std::optional<citus::Placement> now =
                citus::loaded() ? std::optional<citus::Placement>(citus::placement_of(relid))
                                : std::nullopt;
            if (now && state.source.placement != now->name()) {
                drifted.push_back(relid);  // distributed or undistributed since (provision)
                continue;
            }
            if (state.source.placement == "local") {
                want.push_back(citus::this_server().label());
            } else if (now) {
                for (const auto& n : citus::capture_nodes(relid, *now)) {
                    want.push_back(n.label());
                }
            } else {
                continue;
            }
            for (const auto& slot : catalog::worker_slots(state.source.key)) {
                if (slot.frontier) {
                    have.push_back(slot.node());
                }
            }
            std::sort(want.begin(), want.end());
            std::sort(have.begin(), have.end());
            if (want != have || state.legacy_slot_present) {
                drifted.push_back(relid);
            }
        }
        for (const auto& s : catalog::all_worker_slots()) {
            if (s.slot.frontier && !backing_off(s.slot.node())) {
                slots.push_back({s.relid, s.slot.source_key, s.slot.node()});
            }
        }
    });
    if (!installed || !any) {
        return false;
    }
    provision_drifted(drifted);
    for (const auto& slot : slots) {
        CHECK_FOR_INTERRUPTS();
        drain_one(slot);
    }
    sweep_orphans();
    return true;
}

}  // namespace
}  // namespace pgt::scheduler

using pgt::pg_call;
namespace pg = pgt::pg;

// The poller's entry point: guarded like the scheduler's (PGT_WORKER_MAIN); each pass runs
// its C++ work in a try/catch, and a failed unit of work is rolled back, never committed.
PGT_WORKER_MAIN(pgtrickle_poller_main) {
    const Oid dboid = DatumGetObjectId(arg);
    pgt::scheduler::enter_database(dboid, "pg_trickle poller");
    if (!pgt::scheduler::register_poller(dboid)) {
        proc_exit(0);  // another poller serves this database
    }
    MemoryContext loop_cxt =
        AllocSetContextCreate(TopMemoryContext, "pg_trickle poller loop", ALLOCSET_DEFAULT_SIZES);
    for (;;) {
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
        }
        if (pgt::settings::enabled) {
            MemoryContext old = MemoryContextSwitchTo(loop_cxt);
            bool go_on = true;
            try {
                go_on = pgt::scheduler::poll_once();
            } catch (const std::exception& e) {
                // Failures of one node or source are handled inside poll_once; what reaches
                // here is the catalog read itself: a lock conflict with DDL passes (LOG), the
                // rest is worth a WARNING.
                pgt::remote::forget_all_connections();
                ereport(pgt::scheduler::transient_failure(e) ? LOG : WARNING,
                        (errmsg("pg_trickle: WAL poll failed: %s", pgt::describe(e).c_str())));
            }
            MemoryContextSwitchTo(old);
            MemoryContextReset(loop_cxt);
            if (!go_on) {
                ereport(LOG, (errmsg("pg_trickle: no WAL-captured source in this database, "
                                     "poller exits")));
                proc_exit(0);
            }
        }
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
                        pgt::settings::scheduler_interval_ms, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
    }
}
