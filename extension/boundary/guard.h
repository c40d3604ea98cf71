// The C++ / PostgreSQL boundary (see STYLE.md, docs/architecture.md "The boundary").
//
// PostgreSQL reports errors with ereport(ERROR), a longjmp that skips C++ destructors; C++
// reports errors with exceptions, which PostgreSQL cannot catch. Two guards keep them apart:
//  - PGT_FUNCTION(name) declares an SQL-callable function (and PGT_ENTRY any other symbol
//    PostgreSQL calls): an extern "C" shim runs the C++ body inside a catch-all that turns
//    any exception into ereport(ERROR) with an errcode, after every C++ object of the body
//    is gone. A PostgreSQL error carried as PgError is re-raised unchanged.
//  - pg_call(fn) is the reverse guard: it runs one PostgreSQL call (fn must be noexcept and
//    return a trivially copyable value: a pointer, a Datum, a number) under its own error
//    frame, saved and restored by RAII together with the memory context, and turns an
//    ereport into a PgError exception. It never runs C++ computations.
// A PostgreSQL error caught in C++ is only ever rethrown (it reaches the boundary and is
// re-raised), or handled inside pg::subtransaction, which rolls its work back first.
#pragma once

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "nodes/nodes.h"
#include "utils/elog.h"
#include "utils/memutils.h"
}

#include <csetjmp>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace pgt {

/// An error with a SQLSTATE, raised as ereport(ERROR) when it reaches the boundary.
/// `context` becomes the error's CONTEXT (lines separated by '\n'; PostgreSQL's own context
/// callbacks add their lines after it), e.g. "while executing command on host:port".
class Error : public std::runtime_error {
  public:
    Error(int sqlstate, const std::string& message, std::string detail = {}, std::string hint = {},
          std::string context = {})
        : std::runtime_error(message),
          sqlstate_(sqlstate),
          detail_(std::move(detail)),
          hint_(std::move(hint)),
          context_(std::move(context)) {}
    int sqlstate() const { return sqlstate_; }
    const std::string& detail() const { return detail_; }
    const std::string& hint() const { return hint_; }
    const std::string& context() const { return context_; }

  private:
    int sqlstate_;
    std::string detail_, hint_, context_;
};

/// One line for a log or a catalog column (last_error): the message, and for an Error with
/// a CONTEXT its lines in parentheses, joined by "; " (a node's error thus names the node:
/// "division by zero (while executing command on 10.0.0.7:5432)"). Other exceptions: what().
std::string describe(const std::exception& e);

/// A PostgreSQL error caught by pg_call, carried as a C++ exception. Re-raised unchanged
/// (SQLSTATE, detail, hint, context) at the boundary.
class PgError : public std::exception {
  public:
    explicit PgError(ErrorData* edata) : edata_(edata) {}
    ErrorData* data() const { return edata_; }
    int sqlstate() const { return edata_ ? edata_->sqlerrcode : ERRCODE_INTERNAL_ERROR; }
    const char* what() const noexcept override {
        return edata_ && edata_->message ? edata_->message : "error";
    }

  private:
    ErrorData* edata_;  // palloc'd in the memory context of the failed pg_call's caller
};

namespace detail {

/// What the boundary reports for a C++ exception: copied out of the exception so that the
/// exception object is gone before ereport() longjmps.
struct Failure {
    int sqlstate;
    std::string message, detail, hint, context;
};
[[noreturn]] void raise_failure(Failure* failure);
[[noreturn]] void rethrow_pg_error(ErrorData* edata);
[[noreturn]] void throw_pg_error(MemoryContext ctx);

/// Test hook (pg_trickle.fault_injection, docs/settings.md): which fault, if any, the
/// pg_call being entered injects. Nothing when the setting is empty (one pointer test).
enum class Fault { none, pg_error, cpp_exception };
Fault fault_point();
/// Raise the injected PostgreSQL error (SQLSTATE PTF01) inside the pg_call's error frame.
void raise_injected_error();
/// Restart the count of pg_calls (when pg_trickle.fault_injection is assigned).
void reset_fault_injection();

/// The error frame of one pg_call: PostgreSQL's exception stack, error context stack and
/// memory context, restored when the frame ends however it ends.
class ErrorFrame {
  public:
    ErrorFrame() noexcept
        : exception_stack_(PG_exception_stack),
          context_stack_(error_context_stack),
          memory_context_(CurrentMemoryContext) {}
    ~ErrorFrame() { restore(); }
    ErrorFrame(const ErrorFrame&) = delete;
    ErrorFrame& operator=(const ErrorFrame&) = delete;
    void restore() noexcept {
        PG_exception_stack = exception_stack_;
        error_context_stack = context_stack_;
    }
    MemoryContext memory_context() const { return memory_context_; }

  private:
    sigjmp_buf* exception_stack_;
    ErrorContextCallback* context_stack_;
    MemoryContext memory_context_;
};

}  // namespace detail

/// Run one PostgreSQL call that may ereport; its error becomes a PgError exception. `fn`
/// must be noexcept (PostgreSQL code only) and return void or a trivially copyable value.
template <typename F>
auto pg_call(F&& fn) -> std::invoke_result_t<F&> {
    using Result = std::invoke_result_t<F&>;
    static_assert(std::is_nothrow_invocable_v<F&>,
                  "pg_call runs PostgreSQL code only: pass a noexcept lambda");
    static_assert(std::is_void_v<Result> || std::is_trivially_copyable_v<Result>,
                  "pg_call returns plain values (pointers, Datums, numbers)");
    const detail::Fault fault = detail::fault_point();
    if (fault == detail::Fault::cpp_exception) {
        throw std::runtime_error("fault injection: C++ exception at a pg_call");
    }
    detail::ErrorFrame frame;
    sigjmp_buf local;
    if (sigsetjmp(local, 0) == 0) {
        PG_exception_stack = &local;
        if (fault == detail::Fault::pg_error) {
            detail::raise_injected_error();
        }
        if constexpr (std::is_void_v<Result>) {
            fn();
            frame.restore();
            return;
        } else {
            Result result = fn();
            frame.restore();
            return result;
        }
    }
    frame.restore();
    detail::throw_pg_error(frame.memory_context());
}

/// Run a C++ body at the boundary; exceptions become ereport(ERROR).
template <typename F>
Datum guard_cpp(F&& body) noexcept {
    // Only trivially destructible state may live here: the ereport that follows longjmps.
    ErrorData* pg_error = nullptr;
    detail::Failure* failure = nullptr;
    try {
        return body();
    } catch (const PgError& e) {
        pg_error = e.data();
    } catch (const Error& e) {
        failure = new (std::nothrow)
            detail::Failure{e.sqlstate(), e.what(), e.detail(), e.hint(), e.context()};
    } catch (const std::exception& e) {
        failure = new (std::nothrow)
            detail::Failure{ERRCODE_INTERNAL_ERROR,
                            std::string("pg_trickle internal error: ") + e.what(),
                            {},
                            {},
                            {}};
    } catch (...) {
        failure = new (std::nothrow) detail::Failure{
            ERRCODE_INTERNAL_ERROR, "pg_trickle internal error: unknown exception", {}, {}, {}};
    }
    if (pg_error) {
        delete failure;
        detail::rethrow_pg_error(pg_error);
    }
    detail::raise_failure(failure);
}

/// copyObject for C++ (PostgreSQL's macro relies on C typeof).
template <typename T>
T* pg_copy(const T* node) {
    return static_cast<T*>(pg_call([&]() noexcept { return copyObjectImpl(node); }));
}

}  // namespace pgt

/// Declare an SQL-callable function `name` whose C++ body follows, e.g.
///   PGT_FUNCTION(pgtrickle_row_id) { ... return Int64GetDatum(h); }
#define PGT_FUNCTION(name)                                                     \
    static Datum name##_body(PG_FUNCTION_ARGS);                                \
    extern "C" {                                                               \
    PGDLLEXPORT PG_FUNCTION_INFO_V1(name);                                     \
    PGDLLEXPORT Datum name(PG_FUNCTION_ARGS) {                                 \
        return pgt::guard_cpp([&]() -> Datum { return name##_body(fcinfo); }); \
    }                                                                          \
    }                                                                          \
    static Datum name##_body(PG_FUNCTION_ARGS)

/// Declare another symbol PostgreSQL calls (a background worker's main, a hook) as
/// `extern "C" void name(Datum)`, its C++ body guarded like PGT_FUNCTION's.
#define PGT_WORKER_MAIN(name)                 \
    static void name##_body(Datum arg);       \
    extern "C" {                              \
    PGDLLEXPORT void name(Datum arg);         \
    void name(Datum arg) {                    \
        (void)pgt::guard_cpp([&]() -> Datum { \
            name##_body(arg);                 \
            return 0;                         \
        });                                   \
    }                                         \
    }                                         \
    static void name##_body(Datum arg)
