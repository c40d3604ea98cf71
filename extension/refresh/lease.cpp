// Refresh leases on a Citus cluster (docs/architecture.md "Refresh leases on a Citus
// cluster"): the advisory lock first (the fast path: a second session on this node queues
// there), then a row of pgtrickle.pgt_st_locks committed at once through a loopback
// connection, so that every session sees it while the refresh runs and a holder that died
// keeps it until it expires. Released when the refresh's transaction ends.
#include <algorithm>
#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "boundary/guard.h"
#include "boundary/pg.h"
#include "boundary/spi.h"
#include "citus/citus.h"
#include "core/retry.h"
#include "refresh/lock.h"
#include "remote/connection.h"
#include "settings.h"

extern "C" {
#include "access/transam.h"
#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/errcodes.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
}

namespace pgt {
namespace {

/// A lease this backend holds until its transaction (or the subtransaction that took it)
/// ends.
struct Held {
    int64_t pgt_id = 0;
    std::string holder;
    remote::Node node;
    std::string user;
    SubTransactionId subxact = InvalidSubTransactionId;
};

std::vector<Held>& held() {
    static std::vector<Held> h;
    return h;
}

/// Give back the leases taken at or below subtransaction `from` (every one: Invalid).
/// Never ereports: a release that cannot be made (the loopback connection broke, or is
/// busy) leaves the lease to expire. May throw std::bad_alloc (caught by the callbacks).
void release(SubTransactionId from) {
    auto& h = held();
    for (auto it = h.begin(); it != h.end();) {
        if (from != InvalidSubTransactionId && it->subxact < from) {
            ++it;
            continue;
        }
        if (remote::Connection* c = remote::idle_cached_connection(it->node, it->user)) {
            (void)c->try_exec_during_abort(
                "DELETE FROM pgtrickle.pgt_st_locks WHERE pgt_id OPERATOR(pg_catalog.=) "
                "$1::pg_catalog.int8 AND locked_by OPERATOR(pg_catalog.=) $2",
                {std::to_string(it->pgt_id), it->holder}, 2000);
        }
        it = h.erase(it);
    }
}

void on_xact(XactEvent event, void* /*arg*/) noexcept {
    if (held().empty()) {
        return;
    }
    if (event == XACT_EVENT_PREPARE) {
        // The prepared transaction keeps the advisory lock and its refresh is not applied
        // yet: its leases stay until they expire, as a holder's that died would.
        held().clear();
        return;
    }
    if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
        event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT) {
        try {
            release(InvalidSubTransactionId);
        } catch (...) {
            held().clear();  // std::bad_alloc building a parameter: the lease expires
        }
    }
}

/// A savepoint rolled back releases the advisory lock taken in it: its lease goes too. A
/// committed one hands its leases to its parent.
void on_subxact(SubXactEvent event, SubTransactionId sub, SubTransactionId parent,
                void* /*arg*/) noexcept {
    if (held().empty()) {
        return;
    }
    if (event == SUBXACT_EVENT_ABORT_SUB) {
        try {
            release(sub);
        } catch (...) {
            held().clear();
        }
    } else if (event == SUBXACT_EVENT_COMMIT_SUB) {
        for (auto& h : held()) {
            if (h.subxact >= sub) {
                h.subxact = parent;
            }
        }
    }
}

void register_callback() {
    static bool registered = false;
    if (!registered) {
        pg_call([]() noexcept {
            RegisterXactCallback(on_xact, nullptr);
            RegisterSubXactCallback(on_subxact, nullptr);
        });
        registered = true;
    }
}

/// `<node>:<pid>:<backend start, µs since 2000>`: a recycled pid is another holder.
std::string this_holder(const remote::Node& node) {
    return node.label() + ":" + std::to_string(MyProcPid) + ":" +
           std::to_string(static_cast<long long>(MyStartTimestamp));
}

/// The stream table's catalog row was written by this transaction (created or altered in
/// it): other sessions do not see that version, and a loopback connection that referenced
/// it would wait for this very transaction.
bool catalog_row_is_ours(int64_t pgt_id) {
    const auto xmin = spi::exec_cached(
                          "SELECT xmin::pg_catalog.text FROM pgtrickle.pgt_stream_tables WHERE "
                          "pgt_id OPERATOR(pg_catalog.=) $1::pg_catalog.int8",
                          {std::to_string(pgt_id)})
                          .scalar();
    if (!xmin) {
        return true;  // not visible at all: nothing to lease (the refresh reports it)
    }
    const auto xid = static_cast<TransactionId>(std::stoul(*xmin));
    return pg_call([xid]() noexcept { return TransactionIdIsCurrentTransactionId(xid); });
}

/// Sleep `ms` (at most), interruptibly: query cancel, statement_timeout, termination.
void nap(int64_t ms) {
    pg_call([ms]() noexcept {
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
                        static_cast<long>(std::max<int64_t>(1, ms)), PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    });
}

}  // namespace

int64_t refresh_lease_ms() {
    int64_t ms = settings::citus_st_lock_lease_ms;
    // pg_ripple fences its merges for this long: a lease must outlast the fence (seed 002).
    const char* fence = pg_call(
        []() noexcept { return GetConfigOption("pg_ripple.merge_fence_timeout_ms", true, false); });
    if (fence != nullptr && *fence != '\0') {
        int value = 0;
        const char* hint = nullptr;
        const std::string text(fence);
        const bool ok = pg_call([&text, &value, &hint]() noexcept {
            return parse_int(text.c_str(), &value, GUC_UNIT_MS, &hint);
        });
        if (ok) {
            ms = std::max<int64_t>(ms, value);
        }
    }
    return ms;
}

bool LeaseRefreshLock::acquire(int64_t pgt_id, bool wait) {
    if (!advisory_.acquire(pgt_id, wait)) {
        return false;
    }
    if (catalog_row_is_ours(pgt_id)) {
        return true;
    }
    register_callback();
    // This server's own catalog, where the stream table is (the coordinator's, or a
    // worker's own stream tables), reached as local WAL capture reaches it.
    node_ = citus::this_server();
    user_ = pg::role_name(pg::extension_owner());
    holder_ = this_holder(node_);
    pgt_id_ = pgt_id;
    const SubTransactionId sub = pg_call([]() noexcept { return GetCurrentSubTransactionId(); });
    const auto start = std::chrono::steady_clock::now();
    std::mt19937_64 rng(static_cast<uint64_t>(MyProcPid) ^
                        static_cast<uint64_t>(start.time_since_epoch().count()));
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    const retry::Policy backoff{1000000, 50, 1000, 0};
    for (int attempt = 1;; ++attempt) {
        // Listed before it is claimed: a claim committed by the loopback just before a
        // cancel reached this backend is still released (deleting a row that is not there
        // is harmless).
        held().push_back({pgt_id, holder_, node_, user_, sub});
        const Claim claim = claim_lease();
        if (claim.acquired) {
            acquired_ = std::chrono::steady_clock::now();
            return true;
        }
        held().pop_back();
        if (!wait) {
            return false;
        }
        const int64_t waited_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                      std::chrono::steady_clock::now() - start)
                                      .count();
        if (LockTimeout > 0 && waited_ms >= LockTimeout) {
            throw Error(
                ERRCODE_LOCK_NOT_AVAILABLE,
                "could not obtain the refresh lease of stream table " + std::to_string(pgt_id),
                "It is held by " + claim.holder + " until " + claim.expires_at +
                    " (pgtrickle.pgt_st_locks).",
                "A lease whose holder died is taken over when it expires "
                "(pg_trickle.citus_st_lock_lease_ms); raise lock_timeout to wait that "
                "long.");
        }
        // Not before the lease can have expired, and not much later.
        const int64_t delay =
            std::min(retry::delay_ms(backoff, attempt, unit(rng)),
                     std::max<int64_t>(claim.expires_in_ms, 0) + retry::delay_ms(backoff, 1, 0));
        nap(delay);
    }
}

LeaseRefreshLock::Claim LeaseRefreshLock::claim_lease() {
    remote::Connection& c = remote::cached_connection(node_, user_);
    const std::string id = std::to_string(pgt_id_);
    // Free, expired, or ours already (a second refresh of it in this transaction): taken.
    const remote::Result r = c.exec(
        "INSERT INTO pgtrickle.pgt_st_locks AS l (pgt_id, locked_by, acquired_at, expires_at) "
        "VALUES ($1::pg_catalog.int8, $2, pg_catalog.now(), pg_catalog.now() "
        "OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => $3::pg_catalog.float8 "
        "OPERATOR(pg_catalog./) 1000)) ON CONFLICT (pgt_id) DO UPDATE SET locked_by = "
        "EXCLUDED.locked_by, acquired_at = EXCLUDED.acquired_at, expires_at = "
        "EXCLUDED.expires_at WHERE l.expires_at OPERATOR(pg_catalog.<=) pg_catalog.now() OR "
        "l.locked_by OPERATOR(pg_catalog.=) EXCLUDED.locked_by RETURNING 1",
        {id, holder_, std::to_string(refresh_lease_ms())});
    Claim out;
    out.acquired = r.rows() > 0;
    if (out.acquired) {
        return out;
    }
    // Who has it, as of now (the claim's snapshot may predate the row it conflicted with).
    const remote::Result h = c.exec(
        "SELECT locked_by, expires_at::pg_catalog.text, (pg_catalog.date_part('epoch', "
        "expires_at OPERATOR(pg_catalog.-) pg_catalog.now()) OPERATOR(pg_catalog.*) "
        "1000)::pg_catalog.int8 FROM pgtrickle.pgt_st_locks WHERE pgt_id OPERATOR(pg_catalog.=) "
        "$1::pg_catalog.int8",
        {id});
    if (h.rows() > 0) {
        out.holder = h.text(0, 0);
        out.expires_at = h.text(0, 1);
        out.expires_in_ms = h.is_null(0, 2) ? 0 : std::stoll(h.text(0, 2));
    } else {
        out.holder = "nobody (released meanwhile)";
        out.expires_at = "now";
    }
    return out;
}

void LeaseRefreshLock::renew() {
    if (holder_.empty()) {
        return;
    }
    const auto since = std::chrono::steady_clock::now() - acquired_;
    if (since < std::chrono::milliseconds(refresh_lease_ms() / 3)) {
        return;
    }
    remote::Connection& c = remote::cached_connection(node_, user_);
    const remote::Result r = c.exec(
        "UPDATE pgtrickle.pgt_st_locks SET expires_at = pg_catalog.now() OPERATOR(pg_catalog.+) "
        "pg_catalog.make_interval(secs => $3::pg_catalog.float8 OPERATOR(pg_catalog./) 1000) "
        "WHERE pgt_id OPERATOR(pg_catalog.=) $1::pg_catalog.int8 AND locked_by "
        "OPERATOR(pg_catalog.=) $2 RETURNING 1",
        {std::to_string(pgt_id_), holder_, std::to_string(refresh_lease_ms())});
    if (r.rows() == 0) {
        throw Error(ERRCODE_T_R_SERIALIZATION_FAILURE,
                    "the refresh lease of stream table " + std::to_string(pgt_id_) +
                        " expired and was taken over while this refresh ran",
                    "The refresh took longer than its lease (" +
                        std::to_string(refresh_lease_ms()) + " ms) and is rolled back.",
                    "Raise pg_trickle.citus_st_lock_lease_ms above the longest refresh; the "
                    "refresh is retried.");
    }
    acquired_ = std::chrono::steady_clock::now();
}

}  // namespace pgt
