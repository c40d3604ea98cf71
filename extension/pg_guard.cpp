#include "pg_guard.h"

#include <memory>

namespace pgt::detail {

void throw_pending(ErrorData* edata) {
    if (edata != nullptr)
        throw PgError(edata);
}

void rethrow_pg_error(ErrorData* edata) {
    ReThrowError(edata);
}

void rethrow_as_pg_error(const std::exception* e, bool unknown) {
    // Copy everything into palloc'd memory before the longjmp, then free C++ objects.
    int code = ERRCODE_INTERNAL_ERROR;
    char* message = nullptr;
    char* detail = nullptr;
    char* hint = nullptr;
    {
        std::unique_ptr<const std::exception> owned(e);
        if (const auto* own = dynamic_cast<const Error*>(e)) {
            code = own->sqlstate();
            message = pstrdup(own->what());
            if (!own->detail().empty())
                detail = pstrdup(own->detail().c_str());
            if (!own->hint().empty())
                hint = pstrdup(own->hint().c_str());
        } else if (e != nullptr) {
            message = psprintf("pg_trickle internal error: %s", e->what());
        } else {
            message = pstrdup(unknown ? "pg_trickle internal error: unknown exception"
                                      : "pg_trickle internal error");
        }
    }
    ereport(ERROR, (errcode(code), errmsg_internal("%s", message),
                    detail ? errdetail_internal("%s", detail) : 0, hint ? errhint("%s", hint) : 0));
    pg_unreachable();
}

}  // namespace pgt::detail
