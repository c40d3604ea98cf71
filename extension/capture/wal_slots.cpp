// Creating a slot is not transactional. A slot created by a transaction that then fails
// (a create_stream_table whose initial population fails, a deadlock victim, a cancel)
// would keep WAL forever, or, recreated in place of a lost one, stand for a recorded slot
// whose frontier it does not match: it is dropped when its (sub)transaction aborts.
#include "capture/wal_internal.h"

#include "boundary/guard.h"

extern "C" {
#include "access/xact.h"
}

namespace pgt::capture::wal {
namespace {

/// The longest an abort callback waits for a node to drop a slot.
constexpr int kAbortCommandTimeoutMs = 5000;

struct CreatedSlot {
    remote::Node node;
    std::string user, slot;
    SubTransactionId subxact;
};

std::vector<CreatedSlot>& created_slots() {
    static auto* slots = new std::vector<CreatedSlot>();  // never destroyed: used at exit
    return *slots;
}

/// Drop (as far as an idle connection to its node allows, never raising) the slots created
/// in subtransaction `from` or later ones; all of them when `from` is invalid.
void drop_created_slots(SubTransactionId from) noexcept {
    auto& slots = created_slots();
    for (auto it = slots.begin(); it != slots.end();) {
        if (from != InvalidSubTransactionId && it->subxact < from) {
            ++it;
            continue;
        }
        // Bounded and never raising (this runs while the transaction aborts). A node that
        // does not answer in time keeps the slot: an orphan the poller's sweep drops later.
        if (remote::Connection* c = remote::idle_cached_connection(it->node, it->user)) {
            (void)c->try_exec_during_abort(
                "SELECT pg_catalog.pg_drop_replication_slot(slot_name) FROM "
                "pg_catalog.pg_replication_slots WHERE slot_name OPERATOR(pg_catalog.=) $1 "
                "AND NOT active",
                {it->slot}, kAbortCommandTimeoutMs);
        }
        it = slots.erase(it);
    }
}

void on_xact_event(XactEvent event, void* /*arg*/) noexcept {
    if (event == XACT_EVENT_ABORT) {
        drop_created_slots(InvalidSubTransactionId);
    } else if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PREPARE) {
        created_slots().clear();
    }
}

void on_subxact_event(SubXactEvent event, SubTransactionId sub, SubTransactionId parent,
                      void* /*arg*/) noexcept {
    if (event == SUBXACT_EVENT_ABORT_SUB) {
        drop_created_slots(sub);
    } else if (event == SUBXACT_EVENT_COMMIT_SUB) {
        for (auto& s : created_slots()) {
            if (s.subxact >= sub) {
                s.subxact = parent;
            }
        }
    }
}

}  // namespace

std::string create_slot(remote::Connection& c, const std::string& slot) {
    static bool registered = false;
    if (!registered) {
        pg_call([]() noexcept {
            RegisterXactCallback(on_xact_event, nullptr);
            RegisterSubXactCallback(on_subxact_event, nullptr);
        });
        registered = true;
    }
    if (slot_exists(c, slot)) {
        c.exec("SELECT pg_catalog.pg_drop_replication_slot($1)", {slot});
    }
    std::string lsn =
        c.exec(
             "SELECT lsn::pg_catalog.text FROM pg_catalog.pg_create_logical_replication_slot($1, "
             "'pgoutput')",
             {slot})
            .text(0, 0);
    created_slots().push_back({c.node(), connecting_user(), slot,
                               pg_call([]() noexcept { return GetCurrentSubTransactionId(); })});
    return lsn;
}

}  // namespace pgt::capture::wal
