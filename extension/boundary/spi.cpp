#include "boundary/spi.h"

#include <exception>
#include <unordered_map>

#include "boundary/guard.h"
#include "boundary/pg.h"

extern "C" {
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "executor/spi.h"
#include "utils/builtins.h"
}

namespace pgt::spi {

Session::Session() {
    pg_call([&]() noexcept {
        if (SPI_connect() != SPI_OK_CONNECT) {
            elog(ERROR, "SPI_connect failed");
        }
    });
    open_ = true;
}

Session::~Session() {
    // On a normal scope exit (early return) disconnect; while an exception unwinds, the
    // transaction abort that follows cleans SPI up.
    if (open_ && std::uncaught_exceptions() == 0) {
        SPI_finish();
    }
}

void Session::finish() {
    if (!open_) {
        return;
    }
    open_ = false;
    pg_call([&]() noexcept { SPI_finish(); });
}

namespace {

struct Args {
    int n = 0;
    Oid* types = nullptr;
    Datum* values = nullptr;
    char* nulls = nullptr;
};

/// Parameters as text datums in palloc'd memory, so the PostgreSQL sections below touch no
/// C++ objects that could throw.
Args make_args(const std::vector<Value>& params) {
    Args a;
    a.n = static_cast<int>(params.size());
    if (a.n == 0) {
        return a;
    }
    a.types = static_cast<Oid*>(palloc(sizeof(Oid) * a.n));
    a.values = static_cast<Datum*>(palloc(sizeof(Datum) * a.n));
    a.nulls = static_cast<char*>(palloc(a.n + 1));
    for (int i = 0; i < a.n; ++i) {
        a.types[i] = TEXTOID;
        a.nulls[i] = params[i] ? ' ' : 'n';
        a.values[i] =
            params[i]
                ? PointerGetDatum(cstring_to_text_with_len(params[i]->data(), params[i]->size()))
                : 0;
    }
    return a;
}

Result collect(SPITupleTable* tuptable, uint64 processed) {
    Result result;
    result.processed = processed;
    if (tuptable == nullptr || tuptable->tupdesc == nullptr) {
        return result;
    }
    const int ncols = tuptable->tupdesc->natts;
    result.rows.reserve(processed);
    for (uint64 r = 0; r < processed; ++r) {
        Row row;
        row.reserve(ncols);
        for (int c = 1; c <= ncols; ++c) {
            char* v = nullptr;
            pg_call([&]() noexcept { v = SPI_getvalue(tuptable->vals[r], tuptable->tupdesc, c); });
            row.push_back(v ? Value(std::string(v)) : std::nullopt);
        }
        result.rows.push_back(std::move(row));
    }
    return result;
}

Result execute_plan(SPIPlanPtr plan, const Args& a, Snapshot snapshot, const char* query) {
    int rc = 0;
    SPITupleTable* tuptable = nullptr;
    uint64 processed = 0;
    pg_call([&]() noexcept {
        if (snapshot != InvalidSnapshot) {
            rc = SPI_execute_snapshot(plan, a.values, a.nulls, snapshot, InvalidSnapshot, false,
                                      true, 0);
        } else {
            rc = SPI_execute_plan(plan, a.values, a.nulls, false, 0);
        }
        if (rc < 0) {
            elog(ERROR, "SPI failed (%s) for: %s", SPI_result_code_string(rc), query);
        }
        tuptable = SPI_tuptable;
        processed = SPI_processed;
    });
    return collect(tuptable, processed);
}

SPIPlanPtr prepare(const std::string& sql, const Args& a, bool keep) {
    SPIPlanPtr plan = nullptr;
    pg_call([&]() noexcept {
        plan = SPI_prepare(sql.c_str(), a.n, a.types);
        if (plan == nullptr) {
            elog(ERROR, "SPI_prepare failed (%s): %s", SPI_result_code_string(SPI_result),
                 sql.c_str());
        }
        if (keep && SPI_keepplan(plan) != 0) {
            elog(ERROR, "SPI_keepplan failed");
        }
    });
    return plan;
}

/// pg_trickle's SQL runs with search_path pinned, or explicitly as the caller's own SQL
/// (pg::PathScope): a statement outside both is a bug that could let a caller's planted
/// operator or function run inside it.
void require_path_scope(const std::string& sql) {
    if (pg::current_path_scope() == pg::PathScope::none) {
        throw Error(ERRCODE_INTERNAL_ERROR,
                    "pg_trickle internal error: SQL run outside a search_path scope",
                    sql.substr(0, 200));
    }
}

}  // namespace

Result exec(const std::string& sql, const std::vector<Value>& params, Snapshot snapshot) {
    require_path_scope(sql);
    const Args a = make_args(params);
    if (snapshot != InvalidSnapshot) {
        SPIPlanPtr plan = prepare(sql, a, false);
        Result r = execute_plan(plan, a, snapshot, sql.c_str());
        pg_call([&]() noexcept { SPI_freeplan(plan); });
        return r;
    }
    int rc = 0;
    SPITupleTable* tuptable = nullptr;
    uint64 processed = 0;
    const char* query = sql.c_str();
    pg_call([&]() noexcept {
        rc = SPI_execute_with_args(query, a.n, a.types, a.values, a.nulls, false, 0);
        if (rc < 0) {
            elog(ERROR, "SPI failed (%s) for: %s", SPI_result_code_string(rc), query);
        }
        tuptable = SPI_tuptable;
        processed = SPI_processed;
    });
    return collect(tuptable, processed);
}

uint64_t run_with_arrays(const std::string& sql, const std::vector<TextArray>& params) {
    require_path_scope(sql);
    const int n = static_cast<int>(params.size());
    int rc = 0;
    uint64 processed = 0;
    const char* query = sql.c_str();
    pg_call([&]() noexcept {
        Oid* types = static_cast<Oid*>(palloc(sizeof(Oid) * (n + 1)));
        Datum* values = static_cast<Datum*>(palloc(sizeof(Datum) * (n + 1)));
        for (int p = 0; p < n; ++p) {
            const TextArray& elements = params[static_cast<size_t>(p)];
            const int count = static_cast<int>(elements.size());
            Datum* datums = static_cast<Datum*>(palloc(sizeof(Datum) * (count + 1)));
            bool* nulls = static_cast<bool*>(palloc(sizeof(bool) * (count + 1)));
            for (int i = 0; i < count; ++i) {
                const Value& v = elements[static_cast<size_t>(i)];
                nulls[i] = !v.has_value();
                datums[i] = v ? PointerGetDatum(cstring_to_text_with_len(
                                    v->data(), static_cast<int>(v->size())))
                              : 0;
            }
            int dims[1] = {count};
            int lbs[1] = {1};
            types[p] = TEXTARRAYOID;
            values[p] = PointerGetDatum(
                construct_md_array(datums, nulls, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
        }
        rc = SPI_execute_with_args(query, n, types, values, nullptr, false, 0);
        if (rc < 0) {
            elog(ERROR, "SPI failed (%s) for: %s", SPI_result_code_string(rc), query);
        }
        processed = SPI_processed;
    });
    return processed;
}

Result exec_cached(const std::string& sql, const std::vector<Value>& params, Snapshot snapshot) {
    // Backend-lifetime cache; kept plans live in CacheMemoryContext.
    static auto* plans = new std::unordered_map<std::string, SPIPlanPtr>();
    require_path_scope(sql);
    const Args a = make_args(params);
    auto it = plans->find(sql);
    if (it == plans->end()) {
        it = plans->emplace(sql, prepare(sql, a, true)).first;
    }
    return execute_plan(it->second, a, snapshot, sql.c_str());
}

void run(const std::string& sql, const std::vector<Value>& params, Snapshot snapshot) {
    (void)exec(sql, params, snapshot);
}

}  // namespace pgt::spi
