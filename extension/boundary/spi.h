// SPI from C++: every call goes through pg_call, results come back as C++ values (text).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

extern "C" {
#include "postgres.h"
#include "utils/snapshot.h"
}

namespace pgt::spi {

using Value = std::optional<std::string>;
using Row = std::vector<Value>;

struct Result {
    std::vector<Row> rows;
    uint64_t processed = 0;
    /// First column of the first row, or nullopt.
    Value scalar() const { return rows.empty() || rows[0].empty() ? std::nullopt : rows[0][0]; }
};

/// An SPI connection for the current C++ scope: finished when the scope ends normally; when
/// an exception leaves the scope the transaction abort that follows cleans SPI up.
class Session {
  public:
    Session();
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;
    void finish();

  private:
    bool open_ = false;
};

/// Run `sql` with text parameters ($1..$n, typed as text: cast in SQL). When `snapshot` is
/// given the statement runs under it (all statements of a refresh share one snapshot).
Result exec(const std::string& sql, const std::vector<Value>& params = {},
            Snapshot snapshot = InvalidSnapshot);

/// Like exec, for a statement run often with the same text: its plan is prepared once per
/// backend and kept (PostgreSQL's plan cache revalidates it after DDL).
Result exec_cached(const std::string& sql, const std::vector<Value>& params = {},
                   Snapshot snapshot = InvalidSnapshot);

/// Run a utility or DML statement, no result expected.
void run(const std::string& sql, const std::vector<Value>& params = {},
         Snapshot snapshot = InvalidSnapshot);

/// One text[] parameter: its elements (nullopt = NULL).
using TextArray = std::vector<Value>;

/// Run a DML statement whose parameters are text[] values ($1..$n, typed text[]), passed as
/// arrays: no array literal is written or parsed (bulk loads through unnest). Returns the
/// rows processed.
uint64_t run_with_arrays(const std::string& sql, const std::vector<TextArray>& params);

}  // namespace pgt::spi
