#include "catalog/generation.h"

#include <iterator>

#include "boundary/guard.h"

extern "C" {
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
}

namespace pgt::catalog {

bool extension_installed() {
    return pg_call([]() noexcept { return OidIsValid(get_extension_oid("pg_trickle", true)); });
}

bool lock_extension() {
    return pg_call([]() noexcept {
        const Oid ext = get_extension_oid("pg_trickle", true);
        if (!OidIsValid(ext)) {
            return false;
        }
        // DROP EXTENSION locks the extension AccessExclusive before deleting it; after our
        // lock is granted, look again (the lock processed pending invalidations).
        LockDatabaseObject(ExtensionRelationId, ext, 0, AccessShareLock);
        return OidIsValid(get_extension_oid("pg_trickle", true));
    });
}

bool has_stable_names() {
    bool has = false;
    pg_call([&]() noexcept {
        const Oid nsp = get_namespace_oid("pgtrickle", true);
        const Oid rel =
            OidIsValid(nsp) ? get_relname_relid("pgt_change_tracking", nsp) : InvalidOid;
        has = OidIsValid(rel) && get_attnum(rel, "source_stable_name") != InvalidAttrNumber;
    });
    return has;
}

bool has_refresh_settings() {
    return pg_call([]() noexcept {
        const Oid nsp = get_namespace_oid("pgtrickle", true);
        const Oid rel = OidIsValid(nsp) ? get_relname_relid("pgt_stream_tables", nsp) : InvalidOid;
        return OidIsValid(rel) && get_attnum(rel, "refresh_settings") != InvalidAttrNumber;
    });
}

bool has_wal_capture() {
    return pg_call([]() noexcept {
        const Oid nsp = get_namespace_oid("pgtrickle", true);
        const Oid rel = OidIsValid(nsp) ? get_relname_relid("pgt_worker_slots", nsp) : InvalidOid;
        return OidIsValid(rel) && get_attnum(rel, "failing_since") != InvalidAttrNumber;
    });
}

bool has_full_refresh_reason() {
    return pg_call([]() noexcept {
        const Oid nsp = get_namespace_oid("pgtrickle", true);
        const Oid rel = OidIsValid(nsp) ? get_relname_relid("pgt_stream_tables", nsp) : InvalidOid;
        return OidIsValid(rel) && get_attnum(rel, "full_refresh_reason") != InvalidAttrNumber;
    });
}

bool has_st_placement() {
    return pg_call([]() noexcept {
        const Oid nsp = get_namespace_oid("pgtrickle", true);
        const Oid rel = OidIsValid(nsp) ? get_relname_relid("pgt_stream_tables", nsp) : InvalidOid;
        return OidIsValid(rel) &&
               get_attnum(rel, "output_distribution_column") != InvalidAttrNumber;
    });
}

bool has_row_image_id() {
    return pg_call([]() noexcept {
        const Oid nsp = get_namespace_oid("pgtrickle", true);
        const Oid any = ANYOID;
        return OidIsValid(nsp) &&
               SearchSysCacheExists3(PROCNAMEARGSNSP, CStringGetDatum("row_image_id"),
                                     PointerGetDatum(buildoidvector(&any, 1)),
                                     ObjectIdGetDatum(nsp));
    });
}

namespace detail {

std::string full_refresh_reason_set(const std::string& reason_sql) {
    if (!has_full_refresh_reason()) {
        return "";
    }
    // SET items read the row's old values: the first pending reason is kept.
    return ", full_refresh_reason = CASE WHEN needs_full_refresh THEN full_refresh_reason ELSE " +
           reason_sql + " END";
}

std::string source_key_sql(const std::string& alias) {
    if (has_stable_names()) {
        return "COALESCE(" + alias + ".source_stable_name, " + alias +
               ".source_relid::pg_catalog.oid::pg_catalog.text)";
    }
    return alias + ".source_relid::pg_catalog.oid::pg_catalog.text";
}

}  // namespace detail

// search_path: the names inside functions the query calls resolve as they did for its
// creator, in manual and scheduled refreshes alike (the apply runs as the stream table's
// owner; without a recorded path it gets pg_catalog, pg_temp, never a caller's).
const char* const kResultSettings[] = {"TimeZone",           "DateStyle",    "IntervalStyle",
                                       "extra_float_digits", "bytea_output", "lc_monetary",
                                       "search_path"};
const int kResultSettingCount = static_cast<int>(std::size(kResultSettings));

std::string system_identifier() {
    return std::to_string(static_cast<int64_t>(GetSystemIdentifier()));
}

}  // namespace pgt::catalog
