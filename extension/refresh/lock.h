// The lock that keeps two refreshes of one stream table apart (a manual refresh and the
// scheduler, or two sessions). Behind an interface: one node uses a transaction-level
// advisory lock; a Citus cluster will use a lease in pgtrickle.pgt_st_locks.
#pragma once

#include <cstdint>

namespace pgt {

class RefreshLock {
  public:
    virtual ~RefreshLock() = default;
    /// Take the lock of stream table `pgt_id` until the transaction ends. With `wait` it
    /// blocks until it is free; without, it returns false at once when it is held.
    virtual bool acquire(int64_t pgt_id, bool wait) = 0;
};

/// Single node: pg_advisory_xact_lock(class 'pgtr', pgt_id mod 2^31-1).
class AdvisoryRefreshLock final : public RefreshLock {
  public:
    bool acquire(int64_t pgt_id, bool wait) override;
};

}  // namespace pgt
