// The lock that keeps two refreshes of one stream table apart (a manual refresh and the
// scheduler, or two sessions). Behind an interface: one node uses a transaction-level
// advisory lock; a Citus cluster adds a lease in pgtrickle.pgt_st_locks (lease.cpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "remote/connection.h"

namespace pgt {

class RefreshLock {
  public:
    virtual ~RefreshLock() = default;
    /// Take the lock of stream table `pgt_id` until the transaction ends. With `wait` it
    /// blocks until it is free; without, it returns false at once when it is held.
    virtual bool acquire(int64_t pgt_id, bool wait) = 0;
    /// Between the stages of a long refresh: keep holding it (a lease is pushed forward).
    /// Throws when it was lost meanwhile.
    virtual void renew() {}
};

/// Single node: pg_advisory_xact_lock(class 'pgtr', pgt_id mod 2^31-1).
class AdvisoryRefreshLock final : public RefreshLock {
  public:
    bool acquire(int64_t pgt_id, bool wait) override;
};

/// A Citus cluster: the advisory lock first (a second session of this node queues there),
/// then the lease row of the stream table in pgtrickle.pgt_st_locks, committed at once
/// through a loopback connection to the coordinator as the extension's owner: visible to
/// every session while the refresh runs (citus_status), and kept by a holder that dies until
/// it expires, never taken over before. Released when the transaction ends (a release that
/// fails leaves it to expire). Without `wait`, a lease held by another holder is "busy";
/// with it, the lease is claimed again with jittered backoff until it is free or has
/// expired (interruptible; lock_timeout bounds the wait). A stream table whose catalog row
/// this transaction wrote (created or altered in it) is refreshed under the advisory lock
/// only: no other session can see that version of it.
class LeaseRefreshLock final : public RefreshLock {
  public:
    bool acquire(int64_t pgt_id, bool wait) override;
    /// Pushes the lease's expiry forward once a third of it has passed since it was taken
    /// or last renewed; throws (40001) when another holder has it now.
    void renew() override;

  private:
    struct Claim {
        bool acquired = false;
        std::string holder, expires_at;  ///< the holder now, when it did not come back
        int64_t expires_in_ms = 0;
    };
    Claim claim_lease();

    AdvisoryRefreshLock advisory_;
    int64_t pgt_id_ = 0;
    remote::Node node_;
    std::string user_, holder_;
    std::chrono::steady_clock::time_point acquired_;
};

/// The lease's duration: max(pg_trickle.citus_st_lock_lease_ms,
/// pg_ripple.merge_fence_timeout_ms when that is set).
int64_t refresh_lease_ms();

/// Buffer clean-up against readers that are not committed yet. A stream table being
/// created or redefined holds the shared lock of each source's buffer until it commits
/// (its frontier is invisible to other sessions until then); a clean-up that cannot take
/// the exclusive lock at once skips that buffer this time (clean-up is opportunistic).
void hold_buffer_for_new_reader(const std::string& source_key);
bool try_lock_buffer_for_cleanup(const std::string& source_key);

}  // namespace pgt
