#include "refresh/lock.h"

#include <string>

#include "boundary/spi.h"

namespace pgt {
namespace {
/// Advisory lock class of stream-table refreshes ('pgtr').
constexpr int kRefreshLockClass = 0x70677472;
/// Advisory lock class of change-buffer clean-up ('pgtc').
constexpr int kCleanupLockClass = 0x70677463;
}  // namespace

bool AdvisoryRefreshLock::acquire(int64_t pgt_id, bool wait) {
    static const std::string args =
        "(" + std::to_string(kRefreshLockClass) + ", ($1::bigint % 2147483647)::int)";
    const std::string id = std::to_string(pgt_id);
    if (wait) {
        spi::exec_cached("SELECT pg_catalog.pg_advisory_xact_lock" + args, {id});
        return true;
    }
    return spi::exec_cached("SELECT pg_catalog.pg_try_advisory_xact_lock" + args, {id}).scalar() ==
           "t";
}

void hold_buffer_for_new_reader(const std::string& source_key) {
    static const std::string sql = "SELECT pg_catalog.pg_advisory_xact_lock_shared(" +
                                   std::to_string(kCleanupLockClass) + ", pg_catalog.hashtext($1))";
    spi::exec_cached(sql, {source_key});
}

bool try_lock_buffer_for_cleanup(const std::string& source_key) {
    static const std::string sql = "SELECT pg_catalog.pg_try_advisory_xact_lock(" +
                                   std::to_string(kCleanupLockClass) + ", pg_catalog.hashtext($1))";
    return spi::exec_cached(sql, {source_key}).scalar() == "t";
}

}  // namespace pgt
