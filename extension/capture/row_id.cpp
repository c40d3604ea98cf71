// pgtrickle.row_id(VARIADIC "any") -> bigint: the hidden row identity of stream-table rows.
//
// Each argument is hashed with its type's 64-bit extended hash function (the one hash
// joins use, so values equal under the type's equality hash alike: 1.0 and 1.00 numeric),
// or its text output when the type has none; the per-argument hashes and NULL markers are
// combined with XXH64. A collatable argument is hashed under its own collation, as GROUP BY
// compares it ('alice' and 'ALICE' of a case-insensitive column hash alike beside a "C"
// column): pgtrickle_row_id_own_collation, bound by the 0.35.0 catalog. Older catalogs bind
// pgtrickle_row_id, which hashes every argument under the call's collation (the database
// default when the arguments' collations differ); their stored ids stay valid.
//
// pgtrickle.row_image_id(VARIADIC "any") -> bigint: the same over the values' binary images
// (what record_image_eq, `*=`, compares), so values that are equal but spelled differently
// ('alice' and 'ALICE' under a case-insensitive collation, 1.0 and 1.00, -0 and 0, bpchar
// 'a' and 'a  ') hash apart. Consolidations of deltas group by it (docs/architecture.md).
//
// Hot path (called per row): plain PostgreSQL C, no C++ objects.
#define XXH_INLINE_ALL
#include <xxhash.h>

extern "C" {
#include "postgres.h"
#include "catalog/pg_collation.h"
#include "fmgr.h"
#include "access/tupmacs.h"
#include "nodes/nodeFuncs.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"
}

namespace {

struct ArgHash {
    Oid type;
    bool extended;  // hash with the extended hash proc, else text output
    bool collatable;
    Oid collation;  // the argument's own collation, if used and known
    FmgrInfo proc;
};

struct RowIdCache {
    int nargs;
    ArgHash args[FLEXIBLE_ARRAY_MEMBER];
};

RowIdCache* row_id_cache(FunctionCallInfo fcinfo, bool own_collations) {
    auto* cache = static_cast<RowIdCache*>(fcinfo->flinfo->fn_extra);
    if (cache != nullptr && cache->nargs == PG_NARGS()) {
        return cache;
    }
    const int n = PG_NARGS();
    cache = static_cast<RowIdCache*>(MemoryContextAllocZero(
        fcinfo->flinfo->fn_mcxt, offsetof(RowIdCache, args) + sizeof(ArgHash) * n));
    cache->nargs = n;
    Node* call = fcinfo->flinfo->fn_expr;
    List* call_args =
        call != nullptr && IsA(call, FuncExpr) ? reinterpret_cast<FuncExpr*>(call)->args : NIL;
    for (int i = 0; i < n; ++i) {
        ArgHash* a = &cache->args[i];
        a->type = get_fn_expr_argtype(fcinfo->flinfo, i);
        if (!OidIsValid(a->type)) {
            elog(ERROR, "pgtrickle.row_id: could not determine the type of argument %d", i + 1);
        }
        TypeCacheEntry* tc = lookup_type_cache(a->type, TYPECACHE_HASH_EXTENDED_PROC_FINFO);
        a->collatable = type_is_collatable(a->type);
        a->collation = own_collations && i < list_length(call_args)
                           ? exprCollation(static_cast<Node*>(list_nth(call_args, i)))
                           : InvalidOid;
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

/// pgtrickle.row_id, with every collatable argument hashed under its own collation
/// (`own_collations`) or under the call's.
Datum row_id(FunctionCallInfo fcinfo, bool own_collations) {
    if (get_fn_expr_variadic(fcinfo->flinfo)) {
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("pgtrickle.row_id does not accept a VARIADIC array"),
                        errhint("Pass the values as separate arguments.")));
    }
    RowIdCache* cache = row_id_cache(fcinfo, own_collations);
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
                                                 !a->collatable             ? InvalidOid
                                                 : OidIsValid(a->collation) ? a->collation
                                                                            : collation,
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

struct ArgImage {
    int16 typlen;
    bool typbyval;
};

struct RowImageCache {
    int nargs;
    ArgImage args[FLEXIBLE_ARRAY_MEMBER];
};

RowImageCache* row_image_cache(FunctionCallInfo fcinfo) {
    auto* cache = static_cast<RowImageCache*>(fcinfo->flinfo->fn_extra);
    if (cache != nullptr && cache->nargs == PG_NARGS()) {
        return cache;
    }
    const int n = PG_NARGS();
    cache = static_cast<RowImageCache*>(MemoryContextAllocZero(
        fcinfo->flinfo->fn_mcxt, offsetof(RowImageCache, args) + sizeof(ArgImage) * n));
    cache->nargs = n;
    for (int i = 0; i < n; ++i) {
        const Oid type = get_fn_expr_argtype(fcinfo->flinfo, i);
        if (!OidIsValid(type)) {
            elog(ERROR, "pgtrickle.row_image_id: could not determine the type of argument %d",
                 i + 1);
        }
        get_typlenbyval(type, &cache->args[i].typlen, &cache->args[i].typbyval);
    }
    fcinfo->flinfo->fn_extra = cache;
    return cache;
}

/// Adds the image of one non-NULL value: a by-value datum's `typlen` bytes, a fixed-length
/// value's bytes, a varlena's detoasted data whatever its header form (short or 4-byte,
/// compressed, external, expanded) with its length, a cstring's bytes with its length.
void update_with_image(XXH64_state_t* state, Datum value, const ArgImage* a) {
    if (a->typbyval) {
        alignas(Datum) char bytes[sizeof(Datum)];
        store_att_byval(bytes, value, a->typlen);
        XXH64_update(state, bytes, static_cast<size_t>(a->typlen));
    } else if (a->typlen > 0) {
        XXH64_update(state, DatumGetPointer(value), static_cast<size_t>(a->typlen));
    } else if (a->typlen == -1) {
        struct varlena* original = reinterpret_cast<struct varlena*>(DatumGetPointer(value));
        struct varlena* v = pg_detoast_datum_packed(original);
        const uint64 len = VARSIZE_ANY_EXHDR(v);
        XXH64_update(state, &len, sizeof len);
        XXH64_update(state, VARDATA_ANY(v), len);
        if (v != original) {
            pfree(v);
        }
    } else {
        const char* s = DatumGetCString(value);
        const uint64 len = strlen(s);
        XXH64_update(state, &len, sizeof len);
        XXH64_update(state, s, len);
    }
}

}  // namespace

extern "C" {
PGDLLEXPORT PG_FUNCTION_INFO_V1(pgtrickle_row_id);
PGDLLEXPORT PG_FUNCTION_INFO_V1(pgtrickle_row_id_own_collation);
PGDLLEXPORT PG_FUNCTION_INFO_V1(pgtrickle_row_image_id);

PGDLLEXPORT Datum pgtrickle_row_id(PG_FUNCTION_ARGS) {
    return row_id(fcinfo, false);
}

PGDLLEXPORT Datum pgtrickle_row_id_own_collation(PG_FUNCTION_ARGS) {
    return row_id(fcinfo, true);
}

PGDLLEXPORT Datum pgtrickle_row_image_id(PG_FUNCTION_ARGS) {
    if (get_fn_expr_variadic(fcinfo->flinfo)) {
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("pgtrickle.row_image_id does not accept a VARIADIC array"),
                        errhint("Pass the values as separate arguments.")));
    }
    const RowImageCache* cache = row_image_cache(fcinfo);
    XXH64_state_t state;
    XXH64_reset(&state, 0);
    for (int i = 0; i < cache->nargs; ++i) {
        const unsigned char marker = PG_ARGISNULL(i) ? 0 : 1;
        XXH64_update(&state, &marker, 1);
        if (!PG_ARGISNULL(i)) {
            update_with_image(&state, PG_GETARG_DATUM(i), &cache->args[i]);
        }
    }
    PG_RETURN_INT64(static_cast<int64>(XXH64_digest(&state)));
}
}
