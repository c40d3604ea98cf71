#include "refresh/lock.h"

#include <string>

#include "boundary/spi.h"

namespace pgt {
namespace {
/// Advisory lock class of stream-table refreshes ('pgtr').
constexpr int kRefreshLockClass = 0x70677472;
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

}  // namespace pgt
