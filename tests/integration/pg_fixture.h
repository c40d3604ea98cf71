// Integration-test support: one throwaway PostgreSQL server (tests/support/pgtmp.sh), one
// fresh database per test. Under ctest every test is its own process and the server is a
// ctest fixture shared by all of them (PGTRICKLE_TEST_SERVER_FILE names its connection
// file, written by tests/support/test-server.sh); run by hand, the binary starts its own
// server and always stops it.
#pragma once

#include <gtest/gtest.h>

#include <pqxx/pqxx>
#include <string>

#include "run_capture.h"  // tests/support

namespace pgt::test {

using test_support::run_capture;
/// run_capture with stderr captured too (`cmd 2>&1`).
std::string shell(const std::string& cmd);

/// The server of this test run.
struct Server {
    std::string dir;  ///< data dir when this process started the server, else empty
    std::string port;
    /// libpq connection string for `db`.
    std::string dsn(const std::string& db) const;
    static Server& instance();
};

/// A test with its own database, pg_trickle installed.
class PgTest : public ::testing::Test {
  protected:
    void SetUp() override;
    void TearDown() override;

    /// A new connection to this test's database (for concurrent sessions).
    std::unique_ptr<pqxx::connection> connect() const;
    /// Run statements (autocommit).
    void exec(const std::string& sql);
    /// Run a CREATE FUNCTION ... AS 'pg_trickle', 'SYMBOL' of a test probe (tests/probes/);
    /// when the installed pg_trickle.so lacks it, fail saying how to build one that has it.
    void create_probe(const std::string& create_function);
    /// Run `sql`; its error as "SQLSTATE message", or "" when it succeeded.
    std::string error_of(const std::string& sql);
    /// First column of the first row, as text ("" for NULL).
    std::string scalar(const std::string& sql);
    /// Rows of a query, columns joined by '|', rows sorted (deterministic comparisons).
    std::vector<std::string> rows(const std::string& sql);
    /// The number of rows in the symmetric multiset difference of two queries (0: equal).
    long long multiset_diff(const std::string& a, const std::string& b);
    /// Drop the inactive replication slots of this test's database (slots outlive a failed
    /// test's database); errors are ignored.
    void drop_leftover_slots();
    /// The visible columns of stream table `st` (not pg_trickle's __pgt_*), quoted, in
    /// order, comma-separated.
    std::string visible_columns(const std::string& st);
    /// Assert that stream table `st` (its visible columns) equals re-running its query.
    void expect_matches_query(const std::string& st, const std::string& query);

    std::string db_;
    std::unique_ptr<pqxx::connection> conn_;
};

}  // namespace pgt::test
