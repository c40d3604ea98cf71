// The C++/PostgreSQL boundary: PostgreSQL errors raised under the extension reach the
// caller unchanged (never swallowed, never turned into another error), C++ exceptions
// become errors with an errcode, and neither leaves leaked resources or a broken session.
// Faults are injected at every guarded call (pg_trickle.fault_injection).
#include <pqxx/errorhandler>

#include "pg_fixture.h"

namespace pgt::test {
namespace {

/// Collects the WARNINGs a connection receives (leaked snapshots, relations, SPI...).
class Warnings : public pqxx::errorhandler {
  public:
    explicit Warnings(pqxx::connection_base& c) : pqxx::errorhandler(c) {}
    bool operator()(const char msg[]) noexcept override {
        try {
            if (std::string(msg).find("WARNING") != std::string::npos) {
                seen.emplace_back(msg);
            }
        } catch (...) {
        }
        return true;
    }
    std::vector<std::string> seen;
};

class Boundary : public PgTest {
  protected:
    void SetUp() override {
        PgTest::SetUp();
        exec("CREATE TABLE src (id int PRIMARY KEY, g int, v int)");
        exec("INSERT INTO src SELECT i, i % 4, i FROM generate_series(1, 40) i");
    }

    struct Outcome {
        bool failed = false;
        std::string sqlstate, message;
    };

    /// Run `sql` in a transaction on `c` with the fault set; roll back on failure.
    static Outcome attempt(pqxx::connection& c, const std::string& fault, const std::string& sql) {
        Outcome o;
        try {
            pqxx::work tx(c);
            tx.exec("SET LOCAL pg_trickle.fault_injection = '" + fault + "'");
            tx.exec(sql);
            tx.commit();
        } catch (const pqxx::sql_error& e) {
            o.failed = true;
            o.sqlstate = e.sqlstate();
            o.message = e.what();
        }
        return o;
    }

    /// Inject a fault at guarded call 1, 2, ... of `sql` until it runs to the end: each
    /// fault must surface as its own error, change nothing (`state` unchanged) and leave
    /// the session working with no warnings.
    void inject_everywhere(const std::string& sql, const std::string& state, const char* kind,
                           const char* sqlstate, const std::string& message) {
        auto c = connect();
        Warnings warnings(*c);
        const std::string before = state.empty() ? "" : scalar(state);
        int n = 1;
        for (; n < 5000; ++n) {
            const Outcome o = attempt(*c, std::string(kind) + std::to_string(n), sql);
            if (!o.failed) {
                break;
            }
            ASSERT_EQ(o.sqlstate, sqlstate) << "call " << n << ": " << o.message;
            ASSERT_NE(o.message.find(message), std::string::npos)
                << "call " << n << ": " << o.message;
            ASSERT_TRUE(warnings.seen.empty()) << "call " << n << ": " << warnings.seen[0];
            if (!state.empty()) {
                ASSERT_EQ(scalar(state), before) << "call " << n;
            }
            pqxx::nontransaction ping(*c);
            ASSERT_EQ(ping.exec("SELECT 1")[0][0].as<int>(), 1);
        }
        EXPECT_GT(n, 3) << "the statement makes guarded calls";
        std::cout << "  " << kind << " faults injected: " << n - 1 << "\n";
        EXPECT_TRUE(warnings.seen.empty()) << warnings.seen[0];
    }
};

TEST_F(Boundary, explain_works_for_a_role_that_cannot_read_the_catalog_and_leaks_nothing) {
    // Explain reads pg_trickle's catalog as the extension's owner; before, a PostgreSQL
    // error there (permission denied) was swallowed into "not differentiable" with
    // snapshot reference leaks.
    exec("CREATE ROLE pgt_reader LOGIN");
    exec("GRANT SELECT ON src TO pgt_reader");
    exec("GRANT USAGE ON SCHEMA pgtrickle TO pgt_reader");
    auto c = connect();
    Warnings warnings(*c);
    std::string mode, message;
    try {
        pqxx::work tx(*c);
        tx.exec("SET ROLE pgt_reader");
        mode = tx.exec(
                     "SELECT pgtrickle.explain_stream_table('SELECT g, count(*) FROM src GROUP "
                     "BY g')->>'mode'")[0][0]
                   .c_str();
    } catch (const pqxx::sql_error& e) {
        message = e.what();
    }
    exec("DROP OWNED BY pgt_reader");
    exec("DROP ROLE pgt_reader");
    EXPECT_EQ(mode, "differential") << message;
    EXPECT_TRUE(warnings.seen.empty()) << warnings.seen[0];
}

TEST_F(Boundary, postgres_error_at_every_guarded_call_of_create_reaches_the_caller) {
    inject_everywhere(
        "CALL pgtrickle.create_stream_table(name => 'agg', query => 'SELECT g, count(*) AS n, "
        "sum(v) AS s FROM src GROUP BY g')",
        "SELECT count(*) FROM pgtrickle.pgt_stream_tables", "pg_call:", "PTF01",
        "pg_trickle fault injection");
    expect_matches_query("agg", "SELECT g, count(*) AS n, sum(v) AS s FROM src GROUP BY g");
}

TEST_F(Boundary, postgres_error_at_every_guarded_call_of_a_differential_refresh) {
    exec(
        "CALL pgtrickle.create_stream_table(name => 'agg', query => 'SELECT g, count(*) AS n "
        "FROM src GROUP BY g', refresh_mode => 'differential')");
    exec("INSERT INTO src VALUES (100, 1, 1)");
    inject_everywhere("CALL pgtrickle.refresh_stream_table('agg')",
                      "SELECT string_agg(g || ':' || n, ',' ORDER BY g) FROM agg",
                      "pg_call:", "PTF01", "pg_trickle fault injection");
    expect_matches_query("agg", "SELECT g, count(*) AS n FROM src GROUP BY g");
}

TEST_F(Boundary, cpp_exception_at_every_guarded_call_becomes_an_internal_error) {
    exec(
        "CALL pgtrickle.create_stream_table(name => 'agg', query => 'SELECT g, count(*) AS n "
        "FROM src GROUP BY g', refresh_mode => 'differential')");
    exec("DELETE FROM src WHERE id < 5");
    inject_everywhere("CALL pgtrickle.refresh_stream_table('agg')",
                      "SELECT string_agg(g || ':' || n, ',' ORDER BY g) FROM agg",
                      "cpp_call:", "XX000", "fault injection: C++ exception");
    inject_everywhere(
        "SELECT pgtrickle.explain_stream_table('SELECT g, max(v) FROM src GROUP BY "
        "g')",
        "", "cpp_call:", "XX000", "fault injection: C++ exception");
    inject_everywhere(
        "SELECT pgtrickle.explain_stream_table('SELECT g, max(v) FROM src GROUP BY g')", "",
        "pg_call:", "PTF01", "pg_trickle fault injection");
    inject_everywhere("CALL pgtrickle.drop_stream_table('agg')",
                      "SELECT count(*) FROM pgtrickle.pgt_stream_tables", "cpp_call:", "XX000",
                      "fault injection: C++ exception");
}

}  // namespace
}  // namespace pgt::test
