#include "boundary/guard.h"

#include <memory>

namespace pgt::detail {

void throw_pending(ErrorData* edata) {
    if (edata != nullptr) {
        throw PgError(edata);
    }
}

void rethrow_pg_error(ErrorData* edata) {
    ReThrowError(edata);
}

void raise_failure(Failure* failure) {
    // Copy into palloc'd memory, free the C++ object, then longjmp.
    int code = ERRCODE_INTERNAL_ERROR;
    char* message = nullptr;
    char* detail = nullptr;
    char* hint = nullptr;
    {
        std::unique_ptr<Failure> owned(failure);
        if (owned) {
            code = owned->sqlstate;
            message = pstrdup(owned->message.c_str());
            if (!owned->detail.empty()) {
                detail = pstrdup(owned->detail.c_str());
            }
            if (!owned->hint.empty()) {
                hint = pstrdup(owned->hint.c_str());
            }
        } else {
            message = pstrdup("pg_trickle internal error");
        }
    }
    ereport(ERROR, (errcode(code), errmsg_internal("%s", message),
                    detail ? errdetail_internal("%s", detail) : 0, hint ? errhint("%s", hint) : 0));
    pg_unreachable();
}

}  // namespace pgt::detail
