// pgtrickle.row_id(VARIADIC "any") -> bigint: the hidden row identity of stream-table rows.
//
// Each argument is hashed with its type's 64-bit extended hash function (the one hash
// joins use, so values equal under the type's equality hash alike: 1.0 and 1.00 numeric),
// or its text output when the type has none; the per-argument hashes and NULL markers are
// combined with XXH64. Hot path (called per row): plain PostgreSQL C, no C++ objects.
#define XXH_INLINE_ALL
#include <xxhash.h>

extern "C" {
#include "postgres.h"
#include "catalog/pg_collation.h"
#include "fmgr.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"
}

namespace {

struct ArgHash {
    Oid type;
    bool extended;  // hash with the extended hash proc, else text output
    bool collatable;
    FmgrInfo proc;
};

struct RowIdCache {
    int nargs;
    ArgHash args[FLEXIBLE_ARRAY_MEMBER];
};

RowIdCache* row_id_cache(FunctionCallInfo fcinfo) {
    auto* cache = static_cast<RowIdCache*>(fcinfo->flinfo->fn_extra);
    if (cache != nullptr && cache->nargs == PG_NARGS()) {
        return cache;
    }
    const int n = PG_NARGS();
    cache = static_cast<RowIdCache*>(MemoryContextAllocZero(
        fcinfo->flinfo->fn_mcxt, offsetof(RowIdCache, args) + sizeof(ArgHash) * n));
    cache->nargs = n;
    for (int i = 0; i < n; ++i) {
        ArgHash* a = &cache->args[i];
        a->type = get_fn_expr_argtype(fcinfo->flinfo, i);
        if (!OidIsValid(a->type)) {
            elog(ERROR, "pgtrickle.row_id: could not determine the type of argument %d", i + 1);
        }
        TypeCacheEntry* tc = lookup_type_cache(a->type, TYPECACHE_HASH_EXTENDED_PROC_FINFO);
        a->collatable = type_is_collatable(a->type);
        if (OidIsValid(tc->hash_extended_proc)) {
            a->extended = true;
            fmgr_info_cxt(tc->hash_extended_proc, &a->proc, fcinfo->flinfo->fn_mcxt);
        } else {
            Oid out;
            bool varlena;
            getTypeOutputInfo(a->type, &out, &varlena);
            a->extended = false;
            fmgr_info_cxt(out, &a->proc, fcinfo->flinfo->fn_mcxt);
        }
    }
    fcinfo->flinfo->fn_extra = cache;
    return cache;
}

}  // namespace

extern "C" {
PGDLLEXPORT PG_FUNCTION_INFO_V1(pgtrickle_row_id);

PGDLLEXPORT Datum pgtrickle_row_id(PG_FUNCTION_ARGS) {
    if (get_fn_expr_variadic(fcinfo->flinfo)) {
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("pgtrickle.row_id does not accept a VARIADIC array"),
                        errhint("Pass the values as separate arguments.")));
    }
    RowIdCache* cache = row_id_cache(fcinfo);
    Oid collation = PG_GET_COLLATION();
    if (!OidIsValid(collation)) {
        collation = DEFAULT_COLLATION_OID;
    }
    XXH64_state_t state;
    XXH64_reset(&state, 0);
    for (int i = 0; i < cache->nargs; ++i) {
        const unsigned char marker = PG_ARGISNULL(i) ? 0 : 1;
        XXH64_update(&state, &marker, 1);
        if (PG_ARGISNULL(i)) {
            continue;
        }
        const ArgHash* a = &cache->args[i];
        uint64 h;
        if (a->extended) {
            h = DatumGetUInt64(FunctionCall2Coll(const_cast<FmgrInfo*>(&a->proc),
                                                 a->collatable ? collation : InvalidOid,
                                                 PG_GETARG_DATUM(i), UInt64GetDatum(0)));
        } else {
            char* s = OutputFunctionCall(const_cast<FmgrInfo*>(&a->proc), PG_GETARG_DATUM(i));
            h = XXH64(s, strlen(s), 0);
            pfree(s);
        }
        XXH64_update(&state, &h, sizeof h);
    }
    PG_RETURN_INT64(static_cast<int64>(XXH64_digest(&state)));
}
}
