// Integration-test support: one throwaway PostgreSQL server per test binary (started with
// tests/support/pgtmp.sh, always stopped), one fresh database per test.
#pragma once

#include <gtest/gtest.h>

#include <pqxx/pqxx>
#include <string>

namespace pgt::test {

/// The server of this test run.
struct Server {
    std::string dir;
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
    /// First column of the first row, as text ("" for NULL).
    std::string scalar(const std::string& sql);
    /// Rows of a query, columns joined by '|', rows sorted (deterministic comparisons).
    std::vector<std::string> rows(const std::string& sql);
    /// The number of rows in the symmetric multiset difference of two queries (0: equal).
    long long multiset_diff(const std::string& a, const std::string& b);
    /// Assert that stream table `st` (its visible columns) equals re-running its query.
    void expect_matches_query(const std::string& st, const std::string& query);

    std::string db_;
    std::unique_ptr<pqxx::connection> conn_;
};

}  // namespace pgt::test
