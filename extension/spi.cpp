#include "spi.h"

#include <exception>

#include "pg_guard.h"

extern "C" {
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
}

namespace pgt::spi {

Session::Session() {
    pg_call([&] {
        if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    });
    open_ = true;
}

Session::~Session() {
    // On a normal scope exit (early return) disconnect; while an exception unwinds, the
    // transaction abort that follows cleans SPI up.
    if (open_ && std::uncaught_exceptions() == 0) SPI_finish();
}

void Session::finish() {
    if (!open_) return;
    open_ = false;
    pg_call([&] { SPI_finish(); });
}

Result exec(const std::string& sql, const std::vector<Value>& params, Snapshot snapshot) {
    Result result;
    const int nargs = static_cast<int>(params.size());
    // Copy parameters into palloc'd memory so the PostgreSQL section touches no C++ objects
    // that could throw.
    Oid* types = nargs ? static_cast<Oid*>(palloc(sizeof(Oid) * nargs)) : nullptr;
    Datum* values = nargs ? static_cast<Datum*>(palloc(sizeof(Datum) * nargs)) : nullptr;
    char* nulls = nargs ? static_cast<char*>(palloc(nargs + 1)) : nullptr;
    for (int i = 0; i < nargs; ++i) {
        types[i] = TEXTOID;
        nulls[i] = params[i] ? ' ' : 'n';
        values[i] = params[i] ? PointerGetDatum(cstring_to_text_with_len(params[i]->data(), params[i]->size())) : 0;
    }
    const char* query = sql.c_str();
    int rc = 0;
    SPITupleTable* tuptable = nullptr;
    uint64 processed = 0;
    pg_call([&] {
        if (snapshot != InvalidSnapshot) {
            SPIPlanPtr plan = SPI_prepare(query, nargs, types);
            if (plan == nullptr) elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
            rc = SPI_execute_snapshot(plan, values, nulls, snapshot, InvalidSnapshot, false, true, 0);
            SPI_freeplan(plan);
        } else {
            rc = SPI_execute_with_args(query, nargs, types, values, nulls, false, 0);
        }
        if (rc < 0) elog(ERROR, "SPI failed (%s) for: %s", SPI_result_code_string(rc), query);
        tuptable = SPI_tuptable;
        processed = SPI_processed;
    });
    result.processed = processed;
    if (tuptable != nullptr && tuptable->tupdesc != nullptr) {
        const int ncols = tuptable->tupdesc->natts;
        result.rows.reserve(processed);
        for (uint64 r = 0; r < processed; ++r) {
            Row row;
            row.reserve(ncols);
            for (int c = 1; c <= ncols; ++c) {
                char* v = nullptr;
                pg_call([&] { v = SPI_getvalue(tuptable->vals[r], tuptable->tupdesc, c); });
                row.push_back(v ? Value(std::string(v)) : std::nullopt);
            }
            result.rows.push_back(std::move(row));
        }
    }
    return result;
}

void run(const std::string& sql, const std::vector<Value>& params, Snapshot snapshot) {
    (void)exec(sql, params, snapshot);
}

}  // namespace pgt::spi
