// The lock that keeps two refreshes of one stream table apart (a manual refresh and the
// scheduler, or two sessions). Behind an interface: one node uses a transaction-level
// advisory lock; a Citus cluster will use a lease in pgtrickle.pgt_st_locks.
#pragma once

#include <cstdint>
#include <string>

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

/// Buffer clean-up against readers that are not committed yet. A stream table being
/// created or redefined holds the shared lock of each source's buffer until it commits
/// (its frontier is invisible to other sessions until then); a clean-up that cannot take
/// the exclusive lock at once skips that buffer this time (clean-up is opportunistic).
void hold_buffer_for_new_reader(const std::string& source_key);
bool try_lock_buffer_for_cleanup(const std::string& source_key);

}  // namespace pgt
