// The C++ / PostgreSQL boundary (see STYLE.md).
//
// PostgreSQL reports errors with ereport(ERROR), a longjmp that skips C++ destructors; C++
// reports errors with exceptions, which PostgreSQL cannot catch. Two guards keep them apart:
//  - PGT_FUNCTION(name) declares an SQL-callable function: an extern "C" shim that runs the
//    C++ body inside a catch-all and turns any exception into ereport(ERROR) with an errcode.
//  - pg_call(fn) runs PostgreSQL code that may raise from C++ code that holds RAII objects:
//    it catches the PostgreSQL error, restores the memory context and rethrows it as PgError.
//    fn itself must not throw C++ exceptions.
#pragma once

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "nodes/nodes.h"
#include "utils/elog.h"
}

#include <stdexcept>
#include <string>
#include <utility>

namespace pgt {

/// An error with a SQLSTATE, raised as ereport(ERROR) when it reaches the boundary.
class Error : public std::runtime_error {
  public:
    Error(int sqlstate, const std::string& message, std::string detail = {}, std::string hint = {})
        : std::runtime_error(message),
          sqlstate_(sqlstate),
          detail_(std::move(detail)),
          hint_(std::move(hint)) {}
    int sqlstate() const { return sqlstate_; }
    const std::string& detail() const { return detail_; }
    const std::string& hint() const { return hint_; }

  private:
    int sqlstate_;
    std::string detail_, hint_;
};

/// A PostgreSQL error caught by pg_call, carried as a C++ exception. Re-raised unchanged
/// (SQLSTATE, detail, hint, context) at the boundary.
class PgError : public std::exception {
  public:
    explicit PgError(ErrorData* edata) : edata_(edata) {}
    ErrorData* data() const { return edata_; }
    const char* what() const noexcept override {
        return edata_ && edata_->message ? edata_->message : "error";
    }

  private:
    ErrorData* edata_;  // palloc'd in the caller's memory context
};

namespace detail {
/// What the boundary reports for a C++ exception: copied out of the exception so that the
/// exception object is gone before ereport() longjmps.
struct Failure {
    int sqlstate;
    std::string message, detail, hint;
};
[[noreturn]] void raise_failure(Failure* failure);
[[noreturn]] void rethrow_pg_error(ErrorData* edata);
void throw_pending(ErrorData* edata);
}  // namespace detail

/// Run PostgreSQL code that may ereport; its error becomes a PgError exception.
template <typename F>
void pg_call(F&& fn) {
    MemoryContext ctx = CurrentMemoryContext;
    ErrorData* volatile edata = nullptr;
    PG_TRY();
    { fn(); }
    PG_CATCH();
    {
        MemoryContextSwitchTo(ctx);
        edata = CopyErrorData();
        FlushErrorState();
    }
    PG_END_TRY();
    detail::throw_pending(edata);
}

/// Run a C++ body at the boundary; exceptions become ereport(ERROR).
template <typename F>
Datum guard_cpp(F&& body) {
    // Only trivially destructible state may live here: the ereport that follows longjmps.
    ErrorData* pg_error = nullptr;
    detail::Failure* failure = nullptr;
    try {
        return body();
    } catch (const PgError& e) {
        pg_error = e.data();
    } catch (const Error& e) {
        failure = new detail::Failure{e.sqlstate(), e.what(), e.detail(), e.hint()};
    } catch (const std::exception& e) {
        failure = new detail::Failure{
            ERRCODE_INTERNAL_ERROR, std::string("pg_trickle internal error: ") + e.what(), {}, {}};
    } catch (...) {
        failure = new detail::Failure{
            ERRCODE_INTERNAL_ERROR, "pg_trickle internal error: unknown exception", {}, {}};
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
    return static_cast<T*>(copyObjectImpl(node));
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
