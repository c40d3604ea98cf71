// libpq connections from a backend to another node (extension/remote/connection.h), tested
// with the test server connecting to itself over 127.0.0.1 through the test-only probes
// (tests/probes/remote_probe.cpp): results in text and binary format, the node's errors
// re-raised with their SQLSTATE, DETAIL, HINT and CONTEXT plus the node's line, the node's
// notices passed on, connection failures, the deadlines of commands and connects (against a
// second throwaway server frozen with SIGSTOP, and a listener that never answers),
// cancellation by this backend's statement_timeout, streamed results in bounded memory,
// commands run while a transaction aborts, the remote session's search_path,
// pg_trickle.log_remote_commands, and faults injected at every guarded call.
#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <dirent.h>
#include <fstream>
#include <mutex>
#include <pqxx/errorhandler>
#include <regex>
#include <sstream>
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

using Clock = std::chrono::steady_clock;

long long ms_since(Clock::time_point start) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

bool starts_with(const std::string& s, const std::string& prefix) {
    return s.rfind(prefix, 0) == 0;
}

/// The peak resident set size of process `pid` in kB (VmHWM of /proc/<pid>/status).
long vm_hwm_kb(const std::string& pid) {
    std::ifstream in("/proc/" + pid + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (starts_with(line, "VmHWM:")) {
            return std::stol(line.substr(6));
        }
    }
    throw std::runtime_error("no VmHWM in /proc/" + pid + "/status");
}

/// The processes whose parent is `parent` (from /proc/<pid>/stat).
std::vector<pid_t> children_of(pid_t parent) {
    std::vector<pid_t> out;
    DIR* proc = opendir("/proc");
    if (proc == nullptr) {
        return out;
    }
    while (dirent* e = readdir(proc)) {
        const std::string name = e->d_name;
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) {
            continue;
        }
        std::ifstream in("/proc/" + name + "/stat");
        std::string stat;
        std::getline(in, stat);
        // pid (comm) state ppid ...: comm may contain spaces, so read after the last ')'.
        const auto close = stat.rfind(')');
        if (close == std::string::npos) {
            continue;
        }
        std::istringstream rest(stat.substr(close + 1));
        std::string state;
        pid_t ppid = 0;
        rest >> state >> ppid;
        if (ppid == parent) {
            out.push_back(static_cast<pid_t>(std::stol(name)));
        }
    }
    closedir(proc);
    return out;
}

/// A second throwaway server (tests/support/pgtmp.sh, without pg_trickle) with a database
/// named like the test's (connections are made to the current database's name). freeze()
/// stops its postmaster and backends with SIGSTOP, as a node that hangs (or a VM that is
/// paused) does: TCP connections are accepted by the kernel and never answered. A watchdog
/// resumes it after a while whatever happens, and it is always resumed and stopped when the
/// object goes, also when the test fails.
class OtherServer {
  public:
    explicit OtherServer(const std::string& db) {
        const std::string out =
            run_capture("bash " PGTRICKLE_SOURCE_DIR "/tests/support/pgtmp.sh start --no-preload");
        std::smatch m;
        if (std::regex_search(out, m, std::regex("PGTMP_DIR=([^;]+);"))) {
            dir_ = m[1];
        }
        if (std::regex_search(out, m, std::regex("PGPORT=([0-9]+)"))) {
            port = m[1];
        }
        try {
            if (dir_.empty() || port.empty()) {
                throw std::runtime_error("could not start a second server: " + out);
            }
            pqxx::connection admin("host=127.0.0.1 port=" + port +
                                   " user=postgres dbname=postgres");
            pqxx::nontransaction tx(admin);
            tx.exec("CREATE DATABASE " + tx.quote_name(db));
        } catch (...) {
            stop();
            throw;
        }
    }
    ~OtherServer() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            watchdog_off_ = true;
        }
        wake_.notify_all();
        if (watchdog_.joinable()) {
            watchdog_.join();
        }
        resume();
        stop();
    }
    OtherServer(const OtherServer&) = delete;
    OtherServer& operator=(const OtherServer&) = delete;

    /// SIGSTOP the postmaster, then its children; resumed by resume() or after `at_most`.
    void freeze(std::chrono::seconds at_most) {
        std::ifstream pidfile(dir_ + "/data/postmaster.pid");
        long postmaster = 0;
        pidfile >> postmaster;
        ASSERT_GT(postmaster, 0) << "no postmaster.pid in " << dir_;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            frozen_.push_back(static_cast<pid_t>(postmaster));
            ::kill(static_cast<pid_t>(postmaster), SIGSTOP);
            for (pid_t child : children_of(static_cast<pid_t>(postmaster))) {
                frozen_.push_back(child);
                ::kill(child, SIGSTOP);
            }
        }
        if (!watchdog_.joinable()) {
            watchdog_ = std::thread([this, at_most] {
                std::unique_lock<std::mutex> lock(mutex_);
                if (!wake_.wait_for(lock, at_most, [this] { return watchdog_off_; })) {
                    resume_locked();
                }
            });
        }
    }
    void resume() {
        std::lock_guard<std::mutex> lock(mutex_);
        resume_locked();
    }
    std::string port;

  private:
    void resume_locked() {
        for (pid_t pid : frozen_) {
            ::kill(pid, SIGCONT);
        }
        frozen_.clear();
    }
    void stop() {
        if (!dir_.empty()) {
            std::system(("bash " PGTRICKLE_SOURCE_DIR "/tests/support/pgtmp.sh stop '" + dir_ +
                         "' >/dev/null 2>&1")
                            .c_str());
            dir_.clear();
        }
    }
    std::string dir_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool watchdog_off_ = false;
    std::vector<pid_t> frozen_;
    std::thread watchdog_;
};

/// A notice (or error) as libpq hands it over, field by field.
struct Message {
    std::string severity, sqlstate, message, detail, hint, context;
};

void keep_notice(void* arg, const PGresult* res) {
    const auto field = [res](int which) {
        const char* s = PQresultErrorField(res, which);
        return std::string(s ? s : "");
    };
    static_cast<std::vector<Message>*>(arg)->push_back(
        {field(PG_DIAG_SEVERITY_NONLOCALIZED), field(PG_DIAG_SQLSTATE),
         field(PG_DIAG_MESSAGE_PRIMARY), field(PG_DIAG_MESSAGE_DETAIL), field(PG_DIAG_MESSAGE_HINT),
         field(PG_DIAG_CONTEXT)});
}

/// The fields of the error a probe raised (sqlstate empty: it succeeded, `value` says what).
struct ProbeFailure {
    std::string sqlstate, message, detail, hint, context, value;
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
        create_probe(
            "CREATE FUNCTION remote_probe_rows(host text, port int, sql text, fail_at bigint, "
            "failure text) RETURNS bigint "
            "LANGUAGE C STRICT AS 'pg_trickle', 'pgtrickle_remote_probe_rows'");
        create_probe(
            "CREATE FUNCTION remote_probe_at_abort(host text, port int, sql text, timeout_ms int) "
            "RETURNS void LANGUAGE C STRICT AS 'pg_trickle', 'pgtrickle_remote_probe_at_abort'");
        create_probe(
            "CREATE FUNCTION remote_probe_abort_outcome() RETURNS text "
            "LANGUAGE C AS 'pg_trickle', 'pgtrickle_remote_probe_abort_outcome'");
        create_probe(
            "CREATE FUNCTION remote_probe_cancels_in_flight() RETURNS int "
            "LANGUAGE C AS 'pg_trickle', 'pgtrickle_remote_probe_cancels_in_flight'");
        // The error a probe raises, as SQLSTATE|message|detail|hint|context (or 'ok|<value>').
        exec(R"sql(
            CREATE FUNCTION probe_error(host text, port int, sql text) RETURNS text
            LANGUAGE plpgsql AS $f$
            DECLARE s text; m text; d text; h text; c text; v text;
            BEGIN
                v := remote_probe(host, port, sql, false);
                RETURN 'ok|' || coalesce(v, 'NULL');
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT,
                    d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT, c = PG_EXCEPTION_CONTEXT;
                RETURN s || '|' || m || '|' || d || '|' || h || '|' || c;
            END $f$)sql");
    }

    /// SQL calling the probe on the test server itself.
    std::string probe(const std::string& sql, bool binary = false) const {
        return probe_on(port_, sql, binary);
    }
    /// SQL calling the probe on the server at 127.0.0.1:`port`.
    static std::string probe_on(const std::string& port, const std::string& sql,
                                bool binary = false) {
        return "SELECT remote_probe('127.0.0.1', " + port + ", " + quote(sql) + ", " +
               (binary ? "true" : "false") + ")";
    }
    /// SQL streaming `sql`'s rows from the test server itself; the callback fails at row
    /// `fail_at` (0: never) with a C++ exception ("cpp") or a PostgreSQL error ("pg").
    std::string probe_rows(const std::string& sql, long long fail_at = 0,
                           const std::string& failure = "cpp") const {
        return "SELECT remote_probe_rows('127.0.0.1', " + port_ + ", " + quote(sql) + ", " +
               std::to_string(fail_at) + ", " + quote(failure) + ")";
    }
    std::string probe_error(const std::string& host, const std::string& port,
                            const std::string& sql) {
        return scalar("SELECT probe_error(" + quote(host) + ", " + port + ", " + quote(sql) + ")");
    }
    ProbeFailure probe_failure(const std::string& port, const std::string& sql) {
        const std::string text = probe_error("127.0.0.1", port, sql);
        ProbeFailure f;
        std::vector<std::string> parts;
        size_t from = 0;
        for (int i = 0; i < 4; ++i) {
            const size_t bar = text.find('|', from);
            if (bar == std::string::npos) {
                break;
            }
            parts.push_back(text.substr(from, bar - from));
            from = bar + 1;
        }
        parts.push_back(text.substr(from));
        if (parts.size() == 2 && parts[0] == "ok") {
            f.value = parts[1];
            return f;
        }
        EXPECT_EQ(parts.size(), 5U) << text;
        parts.resize(5);
        f.sqlstate = parts[0];
        f.message = parts[1];
        f.detail = parts[2];
        f.hint = parts[3];
        f.context = parts[4];
        return f;
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

TEST_F(Remote, node_error_keeps_its_fields_and_names_the_node_in_context_as_citus_does) {
    const std::string pid = scalar(probe("SELECT pg_backend_pid()"));
    const std::string on_node = "while executing command on " + node_;
    ProbeFailure f = probe_failure(port_,
                                   "DO $$ BEGIN RAISE EXCEPTION 'boom' USING ERRCODE = '22012', "
                                   "DETAIL = 'd', HINT = 'h'; END $$");
    EXPECT_EQ(f.sqlstate, "22012");
    EXPECT_EQ(f.message, "boom");  // the node's message, unchanged
    EXPECT_EQ(f.detail, "d");
    EXPECT_EQ(f.hint, "h");
    // The node's own CONTEXT, then the node, then where it was raised here.
    EXPECT_TRUE(starts_with(f.context, "PL/pgSQL function inline_code_block line 1 at RAISE\n" +
                                           on_node + "\nPL/pgSQL function probe_error("))
        << f.context;
    f = probe_failure(port_, "SELECT * FROM no_such_table");
    EXPECT_EQ(f.sqlstate, "42P01");
    EXPECT_EQ(f.message, "relation \"no_such_table\" does not exist");
    EXPECT_EQ(f.detail, "");
    EXPECT_EQ(f.hint, "");
    EXPECT_TRUE(starts_with(f.context, on_node + "\nPL/pgSQL function probe_error(")) << f.context;
    // An error of the node leaves the connection as it was.
    EXPECT_EQ(scalar(probe("SELECT pg_backend_pid()")), pid);
    // Raised to the client unchanged (not only inside PL/pgSQL), the node in CONTEXT.
    const std::string err = error_of(probe("SELECT 1/0"));
    EXPECT_EQ(err.rfind("22012 ERROR:  division by zero\nCONTEXT:  " + on_node + "\n", 0), 0U)
        << err;
}

TEST_F(Remote, closed_port_fails_fast_with_08001_naming_the_node) {
    const auto start = Clock::now();
    const ProbeFailure f = probe_failure("1", "SELECT 1");
    const auto took = Clock::now() - start;
    EXPECT_EQ(f.sqlstate, "08001");
    EXPECT_TRUE(starts_with(f.message, "could not connect to node: ")) << f.message;
    EXPECT_NE(f.message.find("Connection refused"), std::string::npos) << f.message;
    EXPECT_TRUE(starts_with(f.context, "while executing command on 127.0.0.1:1\n")) << f.context;
    EXPECT_LT(took, std::chrono::seconds(3));
    // A failed connection is not cached: the next command connects afresh.
    EXPECT_EQ(probe_failure("1", "SELECT 1").sqlstate, "08001");
    EXPECT_EQ(scalar(probe("SELECT 1")), "1");
}

TEST_F(Remote, node_notices_and_warnings_reach_the_client_with_the_node_in_context) {
    PGconn* pc = PQconnectdb(Server::instance().dsn(db_).c_str());
    ASSERT_EQ(PQstatus(pc), CONNECTION_OK) << PQerrorMessage(pc);
    std::vector<Message> seen;
    PQsetNoticeReceiver(pc, keep_notice, &seen);
    PGresult* r = PQexec(pc, probe("DO $$ BEGIN RAISE NOTICE 'hello %', 1; "
                                   "RAISE WARNING 'careful' USING DETAIL = 'dd', HINT = 'hh', "
                                   "ERRCODE = '01P42'; END $$")
                                 .c_str());
    EXPECT_EQ(PQresultStatus(r), PGRES_TUPLES_OK) << PQresultErrorMessage(r);
    PQclear(r);
    // Below client_min_messages on the node: never sent, so never passed on.
    r = PQexec(pc, probe("DO $$ BEGIN RAISE DEBUG 'quiet'; END $$").c_str());
    PQclear(r);
    PQfinish(pc);
    const std::string on_node = "while executing command on " + node_;
    ASSERT_EQ(seen.size(), 2U) << (seen.empty() ? "no notices" : seen[0].message);
    EXPECT_EQ(seen[0].severity, "NOTICE");
    EXPECT_EQ(seen[0].sqlstate, "00000");
    EXPECT_EQ(seen[0].message, "hello 1");
    EXPECT_EQ(seen[0].context, "PL/pgSQL function inline_code_block line 1 at RAISE\n" + on_node);
    EXPECT_EQ(seen[1].severity, "WARNING");
    EXPECT_EQ(seen[1].sqlstate, "01P42");
    EXPECT_EQ(seen[1].message, "careful");
    EXPECT_EQ(seen[1].detail, "dd");
    EXPECT_EQ(seen[1].hint, "hh");
    EXPECT_EQ(seen[1].context, "PL/pgSQL function inline_code_block line 1 at RAISE\n" + on_node);
}

TEST_F(Remote, remote_sessions_resolve_names_through_pg_catalog_not_the_nodes_defaults) {
    // A database default that would put a look-alike of pg_catalog.lower first.
    exec("CREATE SCHEMA shadow");
    exec("CREATE FUNCTION shadow.lower(text) RETURNS text LANGUAGE sql AS $$ SELECT 'shadowed' $$");
    exec("ALTER DATABASE " + db_ + " SET search_path = shadow, pg_catalog");
    EXPECT_EQ(scalar(probe("SHOW search_path")), "pg_catalog, pg_temp");
    EXPECT_EQ(scalar(probe("SELECT lower('ABC')")), "abc");
}

TEST_F(Remote, a_command_to_a_frozen_node_fails_within_remote_command_timeout_then_works_again) {
    OtherServer other(db_);
    exec("SET statement_timeout = '60s'");  // a hang fails the test instead of blocking it
    exec("SET pg_trickle.remote_command_timeout = '1s'");
    exec("SET pg_trickle.remote_connect_timeout = '1s'");
    const std::string first = scalar(probe_on(other.port, "SELECT pg_backend_pid()"));
    other.freeze(std::chrono::seconds(30));
    auto start = Clock::now();
    ProbeFailure f = probe_failure(other.port, "SELECT 1");
    const long long took = ms_since(start);
    const std::string on_node = "while executing command on 127.0.0.1:" + other.port;
    EXPECT_EQ(f.sqlstate, "08006") << f.message;
    EXPECT_EQ(f.message, "remote command timed out after 1000 ms");
    EXPECT_NE(f.detail.find("pg_trickle.remote_command_timeout"), std::string::npos) << f.detail;
    EXPECT_TRUE(starts_with(f.context, on_node + "\n")) << f.context;
    EXPECT_GE(took, 1000);
    EXPECT_LT(took, 1000 + 2500) << "the deadline was 1 s";
    // The connection was dropped: the next command connects anew, which the frozen node
    // does not answer either (remote_connect_timeout).
    start = Clock::now();
    f = probe_failure(other.port, "SELECT 1");
    const long long connect_took = ms_since(start);
    EXPECT_EQ(f.sqlstate, "08001") << f.message;
    EXPECT_EQ(f.message, "could not connect to node: timeout expired after 1000 ms");
    EXPECT_TRUE(starts_with(f.context, on_node + "\n")) << f.context;
    EXPECT_LT(connect_took, 1000 + 2500);
    std::cout << "frozen node: command failed after " << took << " ms, connect after "
              << connect_took << " ms (both limits 1000 ms)" << std::endl;
    other.resume();
    // The node answers again: a new connection.
    const std::string second = scalar(probe_on(other.port, "SELECT pg_backend_pid()"));
    EXPECT_NE(second, first);
    // The cancel requests sent to the frozen node are delivered now, their threads gone,
    // and the first connection's backend has gone away.
    std::string in_flight, left;
    for (int i = 0; i < 100; ++i) {
        in_flight = scalar("SELECT remote_probe_cancels_in_flight()");
        left = scalar(
            probe_on(other.port, "SELECT count(*) FROM pg_stat_activity WHERE pid = " + first));
        if (in_flight == "0" && left == "0") {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_EQ(in_flight, "0");
    EXPECT_EQ(left, "0");
}

TEST_F(Remote, statement_timeout_interrupts_a_command_to_a_frozen_node_promptly) {
    OtherServer other(db_);
    auto c = connect();
    Notices notices(*c);
    pqxx::nontransaction tx(*c);
    const std::string first =
        tx.exec(probe_on(other.port, "SELECT pg_backend_pid()"))[0][0].c_str();
    other.freeze(std::chrono::seconds(20));
    // Below pg_trickle.remote_command_timeout (60 s): the backend's own timeout interrupts
    // the wait, and sending the cancel request to the frozen node must not block it.
    tx.exec("SET statement_timeout = '1s'");
    const auto start = Clock::now();
    std::string err;
    try {
        tx.exec(probe_on(other.port, "SELECT 1"));
    } catch (const pqxx::sql_error& e) {
        err = e.sqlstate() + " " + e.what();
    }
    const long long took = ms_since(start);
    EXPECT_EQ(err.rfind("57014 ", 0), 0U) << err;
    EXPECT_LT(took, 1000 + 2500) << "statement_timeout was 1 s";
    std::cout << "frozen node: statement_timeout (1000 ms) interrupted the command after " << took
              << " ms" << std::endl;
    tx.exec("RESET statement_timeout");
    EXPECT_EQ(std::string(tx.exec("SELECT 1")[0][0].c_str()), "1");
    other.resume();
    EXPECT_NE(std::string(tx.exec(probe_on(other.port, "SELECT pg_backend_pid()"))[0][0].c_str()),
              first);
    EXPECT_TRUE(notices.containing("WARNING").empty()) << notices.containing("WARNING")[0];
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

TEST_F(Remote, connect_to_a_listener_that_never_answers_fails_within_remote_connect_timeout) {
    SilentListener silent;
    exec("SET statement_timeout = '60s'");
    exec("SET pg_trickle.remote_connect_timeout = '1500ms'");
    const auto start = Clock::now();
    const ProbeFailure f = probe_failure(silent.port, "SELECT 1");
    const long long took = ms_since(start);
    EXPECT_EQ(f.sqlstate, "08001") << f.message;
    EXPECT_EQ(f.message, "could not connect to node: timeout expired after 1500 ms");
    EXPECT_NE(f.hint.find("pg_trickle.remote_connect_timeout"), std::string::npos) << f.hint;
    EXPECT_TRUE(starts_with(f.context, "while executing command on 127.0.0.1:" + silent.port))
        << f.context;
    EXPECT_GE(took, 1500);
    EXPECT_LT(took, 1500 + 2500);
    std::cout << "silent listener: connect failed after " << took << " ms (limit 1500 ms)"
              << std::endl;
    EXPECT_EQ(scalar(probe("SELECT 'after'")), "after");
}

TEST_F(Remote, exec_rows_streams_two_million_rows_in_bounded_memory_unlike_exec) {
    auto c = connect();
    pqxx::nontransaction tx(*c);
    const std::string pid = tx.exec("SELECT pg_backend_pid()")[0][0].c_str();
    const std::string big = "SELECT g FROM generate_series(1, 2000000) g";
    // Warm up both paths (connection, catalog caches).
    EXPECT_EQ(
        std::string(tx.exec(probe_rows("SELECT g FROM generate_series(1, 1000) g"))[0][0].c_str()),
        "1000");
    EXPECT_EQ(std::string(tx.exec(probe("SELECT 1"))[0][0].c_str()), "1");
    const long before = vm_hwm_kb(pid);
    EXPECT_EQ(std::string(tx.exec(probe_rows(big))[0][0].c_str()), "2000000");
    const long streamed = vm_hwm_kb(pid);
    EXPECT_EQ(std::string(tx.exec(probe(big))[0][0].c_str()), "1");
    const long whole = vm_hwm_kb(pid);
    std::cout << "backend peak RSS (VmHWM): " << before << " kB, after streaming 2M rows "
              << streamed << " kB (+" << streamed - before << "), after exec of the same " << whole
              << " kB (+" << whole - streamed << ")" << std::endl;
    EXPECT_LT(streamed - before, 8 * 1024) << "streaming grew the backend by more than 8 MB";
    // The measurement sees a whole result in memory: exec holds all 2M rows at once.
    EXPECT_GT(whole - streamed, 40 * 1024);
}

TEST_F(Remote, an_exception_in_the_row_callback_cancels_the_command_and_propagates_unchanged) {
    const std::string endless = "SELECT generate_series(1, 1000000000)";
    for (const std::string failure : {"pg", "cpp"}) {
        const std::string first = scalar(probe("SELECT pg_backend_pid()"));
        const auto start = Clock::now();
        const std::string err = error_of(probe_rows(endless, 1000, failure));
        EXPECT_LT(ms_since(start), 5000) << failure;
        if (failure == "pg") {
            EXPECT_EQ(err.rfind("22012 ERROR:  probe callback failed: division by zero\n", 0), 0U)
                << err;
        } else {
            EXPECT_EQ(err.rfind("PTP01 ERROR:  probe callback failed at row 1000\n", 0), 0U) << err;
        }
        // The callback's error, not the node's: no node line.
        EXPECT_EQ(err.find("while executing command"), std::string::npos) << err;
        // The remote command was cancelled and its connection closed.
        std::string left;
        for (int i = 0; i < 50; ++i) {
            left = scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = " + first);
            if (left == "0") {
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        EXPECT_EQ(left, "0") << failure << ": the remote backend is still there";
        EXPECT_EQ(scalar("SELECT count(*) FROM pg_stat_activity WHERE query = " + quote(endless)),
                  "0");
        // The session is usable and reconnects.
        EXPECT_EQ(scalar("SELECT 1"), "1");
        EXPECT_NE(scalar(probe("SELECT pg_backend_pid()")), first);
    }
}

TEST_F(Remote, exec_rows_raises_a_node_error_after_the_rows_before_it) {
    const std::string pid = scalar(probe("SELECT pg_backend_pid()"));
    const std::string err =
        error_of(probe_rows("SELECT 1 / (1500 - g) FROM generate_series(1, 2000) g"));
    EXPECT_EQ(err.rfind("22012 ERROR:  division by zero\nCONTEXT:  while executing command on " +
                            node_ + "\n",
                        0),
              0U)
        << err;
    // An error of the node leaves the connection usable.
    EXPECT_EQ(scalar(probe_rows("SELECT 1")), "1");
    EXPECT_EQ(scalar(probe("SELECT pg_backend_pid()")), pid);
}

/// Run `sql` in a transaction of its own on `c` (autocommit); the first cell.
std::string query(pqxx::connection& c, const std::string& sql) {
    pqxx::nontransaction tx(c);
    const auto r = tx.exec(sql);
    return r.empty() || r[0][0].is_null() ? std::string() : std::string(r[0][0].c_str());
}

/// Register `sql` for 127.0.0.1:`port` with remote_probe_at_abort in a transaction on `c`
/// that is rolled back; how the command went.
std::string abort_with(pqxx::connection& c, const std::string& port, const std::string& sql,
                       int timeout_ms) {
    {
        pqxx::work tx(c);
        tx.exec("SELECT remote_probe_at_abort('127.0.0.1', " + port + ", " + tx.quote(sql) + ", " +
                std::to_string(timeout_ms) + ")");
        tx.abort();
    }
    return query(c, "SELECT remote_probe_abort_outcome()");
}

TEST_F(Remote, command_during_abort_runs_on_an_idle_connection_and_never_raises) {
    auto c = connect();
    const std::string pid = query(*c, probe("SELECT pg_backend_pid()"));
    // (Qualified: the remote session's search_path is pg_catalog, pg_temp.)
    const std::string made =
        abort_with(*c, port_, "CREATE TABLE public.made_while_aborting ()", 5000);
    EXPECT_TRUE(starts_with(made, "true ")) << made;
    EXPECT_EQ(scalar("SELECT to_regclass('made_while_aborting') IS NOT NULL"), "t");
    // The node's error: false, and the connection stays as it was.
    EXPECT_TRUE(starts_with(abort_with(*c, port_, "SELECT 1/0", 5000), "false "));
    EXPECT_EQ(query(*c, probe("SELECT pg_backend_pid()")), pid);
    // No idle connection to that node: nothing is done (never connects).
    EXPECT_EQ(abort_with(*c, "1", "SELECT 1", 5000), "no idle connection");
}

TEST_F(Remote, command_during_abort_gives_up_on_a_frozen_node_within_its_timeout) {
    OtherServer other(db_);
    auto c = connect();
    const std::string first = query(*c, probe_on(other.port, "SELECT pg_backend_pid()"));
    other.freeze(std::chrono::seconds(20));
    const auto start = Clock::now();
    const std::string outcome = abort_with(*c, other.port, "SELECT 1", 1000);
    const long long took = ms_since(start);
    EXPECT_TRUE(starts_with(outcome, "false ")) << outcome;
    EXPECT_LT(took, 1000 + 2500) << outcome;
    std::cout << "frozen node: the command during abort gave up after " << outcome.substr(6)
              << " ms (limit 1000 ms); the ROLLBACK and the outcome query took " << took << " ms"
              << std::endl;
    other.resume();
    // The connection was closed: the next command connects anew.
    EXPECT_NE(query(*c, probe_on(other.port, "SELECT pg_backend_pid()")), first);
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
