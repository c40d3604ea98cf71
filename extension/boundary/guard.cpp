#include "boundary/guard.h"

#include <cstdlib>
#include <cstring>
#include <memory>

#include "settings.h"

namespace pgt {

std::string describe(const std::exception& e) {
    const auto* error = dynamic_cast<const Error*>(&e);
    if (error == nullptr || error->context().empty()) {
        return e.what();
    }
    std::string context = error->context();
    for (size_t nl = context.find('\n'); nl != std::string::npos; nl = context.find('\n', nl)) {
        context.replace(nl, 1, "; ");
    }
    return std::string(e.what()) + " (" + context + ")";
}

}  // namespace pgt

namespace pgt::detail {

void throw_pg_error(MemoryContext ctx) {
    // Back in the caller's memory context (the error left us in ErrorContext): copy the
    // error out, clear PostgreSQL's error state, and carry the copy as an exception.
    MemoryContextSwitchTo(ctx);
    ErrorData* edata = CopyErrorData();
    FlushErrorState();
    throw PgError(edata);
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
    char* context = nullptr;
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
            if (!owned->context.empty()) {
                context = pstrdup(owned->context.c_str());
            }
        } else {
            message = pstrdup("pg_trickle internal error");
        }
    }
    ereport(ERROR, (errcode(code), errmsg_internal("%s", message),
                    detail ? errdetail_internal("%s", detail) : 0, hint ? errhint("%s", hint) : 0,
                    context ? errcontext_msg("%s", context) : 0));
    pg_unreachable();
}

namespace {
/// pg_calls entered since pg_trickle.fault_injection was last set in this process.
long g_fault_calls = 0;
}  // namespace

void reset_fault_injection() {
    g_fault_calls = 0;
}

Fault fault_point() {
    const char* spec = settings::fault_injection;
    if (spec == nullptr || spec[0] == '\0') {
        return Fault::none;
    }
    // "pg_call:N" raises a PostgreSQL error at the N-th pg_call, "cpp_call:N" throws a C++
    // exception there instead (both counted from when the setting was last assigned).
    const bool pg = std::strncmp(spec, "pg_call:", 8) == 0;
    const bool cpp = std::strncmp(spec, "cpp_call:", 9) == 0;
    if (!pg && !cpp) {
        return Fault::none;
    }
    const long at = std::strtol(spec + (pg ? 8 : 9), nullptr, 10);
    if (++g_fault_calls != at) {
        return Fault::none;
    }
    return pg ? Fault::pg_error : Fault::cpp_exception;
}

void raise_injected_error() {
    ereport(ERROR, (errcode(MAKE_SQLSTATE('P', 'T', 'F', '0', '1')),
                    errmsg("pg_trickle fault injection at pg_call %ld", g_fault_calls)));
}

}  // namespace pgt::detail
