// libpq connections from a backend to another node (extension/remote/connection.h), tested
// with the test server connecting to itself over 127.0.0.1 through the test-only probe
// pgtrickle_remote_probe (tests/probes/remote_probe.cpp): results in text and binary format,
// the node's errors re-raised with their SQLSTATE, DETAIL and HINT, connection failures,
// cancellation by this backend's statement_timeout, pg_trickle.log_remote_commands, and
// faults injected at every guarded call.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <pqxx/errorhandler>
#include <thread>

#include "pg_fixture.h"

namespace pgt::test {
namespace {

/// Collects the notices a connection receives (WARNING, LOG with client_min_messages).
class Notices : public pqxx::errorhandler {
  public:
    explicit Notices(pqxx::connection_base& c) : pqxx::errorhandler(c) {}
    bool operator()(const char msg[]) noexcept override {
        try {
            seen.emplace_back(msg);
        } catch (...) {
        }
        return true;
    }
    std::vector<std::string> containing(const std::string& text) const {
        std::vector<std::string> out;
        for (const auto& m : seen) {
            if (m.find(text) != std::string::npos) {
                out.push_back(m);
            }
        }
        return out;
    }
    std::vector<std::string> seen;
};

class Remote : public PgTest {
  protected:
    void SetUp() override {
        PgTest::SetUp();
        port_ = Server::instance().port;
        node_ = "127.0.0.1:" + port_;
        create_probe(
            "CREATE FUNCTION remote_probe(host text, port int, sql text, bin bool) RETURNS text "
            "LANGUAGE C STRICT AS 'pg_trickle', 'pgtrickle_remote_probe'");
        // The error a probe raises, as SQLSTATE|message|detail|hint (or 'ok: <value>').
        exec(R"sql(
            CREATE FUNCTION probe_error(host text, port int, sql text) RETURNS text
            LANGUAGE plpgsql AS $f$
            DECLARE s text; m text; d text; h text; v text;
            BEGIN
                v := remote_probe(host, port, sql, false);
                RETURN 'ok: ' || coalesce(v, 'NULL');
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT,
                    d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
                RETURN s || '|' || m || '|' || d || '|' || h;
            END $f$)sql");
    }

    /// SQL calling the probe on the test server itself.
    std::string probe(const std::string& sql, bool binary = false) const {
        return "SELECT remote_probe('127.0.0.1', " + port_ + ", " + quote(sql) + ", " +
               (binary ? "true" : "false") + ")";
    }
    std::string probe_error(const std::string& host, const std::string& port,
                            const std::string& sql) {
        return scalar("SELECT probe_error(" + quote(host) + ", " + port + ", " + quote(sql) + ")");
    }
    /// Backends of this test's database connected by pg_trickle (its application_name).
    std::string remote_backends() {
        return scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_trickle' "
            "AND datname = current_database()");
    }
    static std::string quote(const std::string& s) {
        std::string out = "'";
        for (char c : s) {
            out += c;
            if (c == '\'') {
                out += '\'';
            }
        }
        return out + "'";
    }

    std::string port_, node_;
};

TEST_F(Remote, query_returns_its_value_on_a_reused_connection_as_this_user_and_database) {
    EXPECT_EQ(scalar(probe("SELECT 40 + 2")), "42");
    EXPECT_EQ(scalar(probe("SELECT NULL::int")), "");
    EXPECT_EQ(scalar(probe("SELECT current_database() || '/' || current_user || '/' || "
                           "current_setting('application_name')")),
              db_ + "/postgres/pg_trickle");
    // The backend keeps one connection per node and user: the same remote backend answers.
    const std::string pid = scalar(probe("SELECT pg_backend_pid()"));
    EXPECT_EQ(scalar(probe("SELECT pg_backend_pid()")), pid);
    EXPECT_NE(pid, scalar("SELECT pg_backend_pid()"));
    EXPECT_EQ(remote_backends(), "1");
}

TEST_F(Remote, binary_results_come_back_as_raw_bytes) {
    EXPECT_EQ(scalar(probe(R"(SELECT '\x0102'::bytea)", true)), "0102");
    EXPECT_EQ(scalar(probe(R"(SELECT '\x0102'::bytea)", false)), "\\x0102");
    EXPECT_EQ(scalar(probe("SELECT 258::int4", true)), "00000102");
    EXPECT_EQ(scalar(probe("SELECT ''::bytea", true)), "");
}

TEST_F(Remote, node_error_keeps_sqlstate_message_detail_hint_and_names_the_node) {
    const std::string pid = scalar(probe("SELECT pg_backend_pid()"));
    EXPECT_EQ(probe_error("127.0.0.1", port_,
                          "DO $$ BEGIN RAISE EXCEPTION 'boom' USING ERRCODE = '22012', "
                          "DETAIL = 'd', HINT = 'h'; END $$"),
              "22012|boom (node " + node_ + ")|d|h");
    EXPECT_EQ(probe_error("127.0.0.1", port_, "SELECT * FROM no_such_table"),
              "42P01|relation \"no_such_table\" does not exist (node " + node_ + ")||");
    // An error of the node leaves the connection as it was.
    EXPECT_EQ(scalar(probe("SELECT pg_backend_pid()")), pid);
    // Raised to the client unchanged (not only inside PL/pgSQL).
    const std::string err = error_of(probe("SELECT 1/0"));
    EXPECT_EQ(err.rfind("22012 ", 0), 0U) << err;
    EXPECT_NE(err.find("division by zero (node " + node_ + ")"), std::string::npos) << err;
}

TEST_F(Remote, closed_port_fails_fast_with_08001_naming_the_node) {
    const auto start = std::chrono::steady_clock::now();
    const std::string err = probe_error("127.0.0.1", "1", "SELECT 1");
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(err.rfind("08001|could not connect to node: ", 0), 0U) << err;
    EXPECT_NE(err.find("Connection refused"), std::string::npos) << err;
    EXPECT_NE(err.find(" (node 127.0.0.1:1)|"), std::string::npos) << err;
    EXPECT_LT(took, std::chrono::seconds(3));
    // A failed connection is not cached: the next command connects afresh.
    EXPECT_EQ(probe_error("127.0.0.1", "1", "SELECT 1").rfind("08001|", 0), 0U);
    EXPECT_EQ(scalar(probe("SELECT 1")), "1");
}

TEST_F(Remote, statement_timeout_cancels_the_remote_command_and_the_session_stays_usable) {
    auto c = connect();
    Notices notices(*c);
    pqxx::nontransaction tx(*c);
    const std::string first = tx.exec(probe("SELECT pg_backend_pid()"))[0][0].c_str();
    tx.exec("SET statement_timeout = '500ms'");
    const auto start = std::chrono::steady_clock::now();
    std::string err;
    try {
        tx.exec(probe("SELECT pg_sleep(30)"));
    } catch (const pqxx::sql_error& e) {
        err = e.sqlstate() + " " + e.what();
    }
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(err.rfind("57014 ", 0), 0U) << err;
    EXPECT_NE(err.find("statement timeout"), std::string::npos) << err;
    EXPECT_LT(took, std::chrono::seconds(5));
    tx.exec("RESET statement_timeout");
    // The remote command was cancelled and its connection closed: its backend goes away.
    std::string left;
    for (int i = 0; i < 50; ++i) {
        left = scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = " + first);
        if (left == "0") {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_EQ(left, "0") << "the remote backend of the cancelled command is still there";
    EXPECT_EQ(scalar("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' "
                     "AND state = 'active'"),
              "0");
    // The session works, reconnects to the node, and nothing leaked (no WARNING).
    EXPECT_EQ(std::string(tx.exec("SELECT 1")[0][0].c_str()), "1");
    const std::string second = tx.exec(probe("SELECT pg_backend_pid()"))[0][0].c_str();
    EXPECT_NE(second, first);
    EXPECT_TRUE(notices.containing("WARNING").empty()) << notices.containing("WARNING")[0];
}

/// A TCP socket on 127.0.0.1 that listens but never accepts: connections to it are
/// established by the kernel and then never answered.
class SilentListener {
  public:
    SilentListener() {
        fd_ = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof addr;
        if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
            listen(fd_, 8) != 0 ||
            getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
            throw std::runtime_error("could not open a listening socket");
        }
        port = std::to_string(ntohs(addr.sin_port));
    }
    ~SilentListener() { ::close(fd_); }
    SilentListener(const SilentListener&) = delete;
    SilentListener& operator=(const SilentListener&) = delete;
    std::string port;

  private:
    int fd_ = -1;
};

TEST_F(Remote, statement_timeout_interrupts_a_connect_to_a_node_that_never_answers) {
    SilentListener silent;
    auto c = connect();
    Notices notices(*c);
    pqxx::nontransaction tx(*c);
    tx.exec("SET statement_timeout = '500ms'");
    const auto start = std::chrono::steady_clock::now();
    std::string err;
    try {
        tx.exec("SELECT remote_probe('127.0.0.1', " + silent.port + ", 'SELECT 1', false)");
    } catch (const pqxx::sql_error& e) {
        err = e.sqlstate() + " " + e.what();
    }
    EXPECT_EQ(err.rfind("57014 ", 0), 0U) << err;
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
    tx.exec("RESET statement_timeout");
    EXPECT_EQ(std::string(tx.exec(probe("SELECT 'after'"))[0][0].c_str()), "after");
    EXPECT_TRUE(notices.containing("WARNING").empty()) << notices.containing("WARNING")[0];
}

TEST_F(Remote, log_remote_commands_logs_each_command_with_the_node) {
    auto c = connect();
    Notices notices(*c);
    pqxx::nontransaction tx(*c);
    tx.exec("SET client_min_messages = log");
    tx.exec(probe("SELECT 'quiet'"));
    EXPECT_TRUE(notices.containing("issuing").empty()) << notices.containing("issuing")[0];
    tx.exec("SET pg_trickle.log_remote_commands = on");
    tx.exec(probe("SELECT 'loud'"));
    const auto logged = notices.containing("pg_trickle: issuing SELECT 'loud' on node " + node_);
    ASSERT_EQ(logged.size(), 1U) << (notices.seen.empty() ? "no notices" : notices.seen[0]);
    EXPECT_EQ(logged[0].rfind("LOG:", 0), 0U) << logged[0];
}

TEST_F(Remote, faults_at_every_guarded_call_surface_and_leave_no_warning) {
    for (const char* kind : {"pg_call:", "cpp_call:"}) {
        auto c = connect();
        Notices notices(*c);
        {
            pqxx::nontransaction tx(*c);
            tx.exec("SET pg_trickle.log_remote_commands = on");
        }
        int n = 1;
        for (; n < 200; ++n) {
            std::string err;
            try {
                pqxx::work tx(*c);
                tx.exec("SET LOCAL pg_trickle.fault_injection = '" + std::string(kind) +
                        std::to_string(n) + "'");
                tx.exec(probe("SELECT 1"));
                tx.commit();
            } catch (const pqxx::sql_error& e) {
                err = e.sqlstate() + " " + e.what();
            }
            if (err.empty()) {
                break;
            }
            if (std::string(kind) == "pg_call:") {
                ASSERT_EQ(err.rfind("PTF01 ", 0), 0U) << "call " << n << ": " << err;
            } else {
                ASSERT_EQ(err.rfind("XX000 ", 0), 0U) << "call " << n << ": " << err;
                ASSERT_NE(err.find("fault injection"), std::string::npos) << err;
            }
            ASSERT_TRUE(notices.containing("WARNING").empty())
                << kind << n << ": " << notices.containing("WARNING")[0];
            pqxx::nontransaction ping(*c);
            ASSERT_EQ(ping.exec("SELECT 1")[0][0].as<int>(), 1);
        }
        EXPECT_GT(n, 5) << kind;
        EXPECT_LT(n, 200) << kind << ": the probe never succeeded";
        // Every failed attempt closed its connection: one connection at most is left (closed
        // ones leave pg_stat_activity when their backends have exited).
        int open = 0;
        for (int i = 0; i < 50; ++i) {
            open = std::stoi(remote_backends());
            if (open <= 1) {
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        EXPECT_LE(open, 1) << kind;
    }
}

}  // namespace
}  // namespace pgt::test
