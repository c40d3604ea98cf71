#include "pg_fixture.h"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <regex>
#include <thread>

namespace pgt::test {

std::string shell(const std::string& cmd) {
    return run_capture(cmd + " 2>&1");
}

namespace {

void stop_server() {
    Server& s = Server::instance();
    if (s.dir.empty()) {
        return;
    }
    std::system(("bash " PGTRICKLE_SOURCE_DIR "/tests/support/pgtmp.sh stop '" + s.dir +
                 "' >/dev/null 2>&1")
                    .c_str());
    s.dir.clear();
}

void on_signal(int sig) {
    stop_server();
    std::signal(sig, SIG_DFL);
    std::raise(sig);
}

// Fills `s` from pgtmp.sh's shell assignments (PGTMP_DIR=...; ... PGPORT=...).
bool parse_server(const std::string& out, Server& s) {
    std::smatch m;
    if (std::regex_search(out, m, std::regex("PGTMP_DIR=([^;]+);"))) {
        s.dir = m[1];
    }
    if (std::regex_search(out, m, std::regex("PGPORT=([0-9]+)"))) {
        s.port = m[1];
    }
    return !s.dir.empty() && !s.port.empty();
}

class ServerEnvironment : public ::testing::Environment {
  public:
    void SetUp() override {
        Server& s = Server::instance();
        // Under ctest the server is a fixture shared by every test process
        // (tests/support/test-server.sh): use it, and leave stopping it to the fixture.
        if (const char* file = std::getenv("PGTRICKLE_TEST_SERVER_FILE"); file && *file) {
            std::ifstream in(file);
            const std::string text((std::istreambuf_iterator<char>(in)),
                                   std::istreambuf_iterator<char>());
            Server shared;
            if (!in || !parse_server(text, shared)) {
                throw std::runtime_error(std::string("PGTRICKLE_TEST_SERVER_FILE=") + file +
                                         " names no running server (did the fixture "
                                         "integration.server.start fail?)");
            }
            s.port = shared.port;  // s.dir stays empty: this process does not stop it
            return;
        }
        // Run by hand: a server of our own, always stopped.
        const std::string out =
            run_capture("bash " PGTRICKLE_SOURCE_DIR "/tests/support/pgtmp.sh start");
        if (!parse_server(out, s)) {
            throw std::runtime_error("could not start a test server: " + out);
        }
        std::atexit(stop_server);
        std::signal(SIGINT, on_signal);
        std::signal(SIGTERM, on_signal);
        std::signal(SIGABRT, on_signal);
        std::signal(SIGSEGV, on_signal);
    }
    void TearDown() override { stop_server(); }
};

std::string test_db_name() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(info->test_suite_name()) + "_" + info->name();
    for (auto& c : name) {
        c = std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::tolower(c)) : '_';
    }
    if (name.size() > 60) {
        name = name.substr(0, 60);
    }
    return name;
}

}  // namespace

Server& Server::instance() {
    static Server s;
    return s;
}

std::string Server::dsn(const std::string& db) const {
    return "host=127.0.0.1 port=" + port + " user=postgres dbname=" + db;
}

void PgTest::SetUp() {
    db_ = test_db_name();
    {
        pqxx::connection admin(Server::instance().dsn("postgres"));
        pqxx::nontransaction tx(admin);
        tx.exec("DROP DATABASE IF EXISTS " + tx.quote_name(db_) + " WITH (FORCE)");
        tx.exec("CREATE DATABASE " + tx.quote_name(db_));
    }
    conn_ = connect();
    exec("CREATE EXTENSION pg_trickle");
}

void PgTest::TearDown() {
    conn_.reset();
    if (!HasFailure()) {
        pqxx::connection admin(Server::instance().dsn("postgres"));
        // The scheduler's poller may recreate a slot of this database that the test dropped
        // (it finds it missing) until the database is gone: drop such slots from here and
        // try again.
        for (int attempt = 0;; ++attempt) {
            try {
                pqxx::nontransaction tx(admin);
                tx.exec("DROP DATABASE IF EXISTS " + tx.quote_name(db_) + " WITH (FORCE)");
                return;
            } catch (const pqxx::sql_error& e) {
                if (attempt >= 20 ||
                    std::string(e.what()).find("replication slot") == std::string::npos) {
                    throw;
                }
            }
            pqxx::nontransaction tx(admin);
            tx.exec(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE "
                "database = " +
                tx.quote(db_) + " AND active_pid IS NOT NULL");
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            tx.exec(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE "
                "database = " +
                tx.quote(db_) + " AND NOT active");
        }
    }
}

std::unique_ptr<pqxx::connection> PgTest::connect() const {
    return std::make_unique<pqxx::connection>(Server::instance().dsn(db_));
}

void PgTest::exec(const std::string& sql) {
    pqxx::nontransaction tx(*conn_);
    tx.exec(sql);
}

void PgTest::create_probe(const std::string& create_function) {
    try {
        exec(create_function);
    } catch (const pqxx::sql_error& e) {
        if (std::string(e.what()).find("could not find function") == std::string::npos) {
            throw;
        }
        throw std::runtime_error(std::string("the installed pg_trickle.so has no test probes (") +
                                 e.what() +
                                 "): configure with -DPGTRICKLE_TEST_PROBES=ON, build and install "
                                 "(tests/run-all.sh does)");
    }
}

std::string PgTest::error_of(const std::string& sql) {
    try {
        exec(sql);
    } catch (const pqxx::sql_error& e) {
        return e.sqlstate() + " " + e.what();
    } catch (const pqxx::transaction_rollback& e) {
        // Deadlocks and serialization failures: not sql_errors in libpqxx 6.
        return std::string("40000 ") + e.what();
    }
    return "";
}

std::string PgTest::scalar(const std::string& sql) {
    pqxx::nontransaction tx(*conn_);
    auto r = tx.exec(sql);
    if (r.empty() || r[0][0].is_null()) {
        return "";
    }
    return r[0][0].c_str();
}

std::vector<std::string> PgTest::rows(const std::string& sql) {
    pqxx::nontransaction tx(*conn_);
    std::vector<std::string> out;
    for (const auto& row : tx.exec(sql)) {
        std::string line;
        for (const auto& f : row) {
            line += (line.empty() ? "" : "|") + std::string(f.is_null() ? "NULL" : f.c_str());
        }
        out.push_back(line);
    }
    std::sort(out.begin(), out.end());
    return out;
}

long long PgTest::multiset_diff(const std::string& a, const std::string& b) {
    return std::stoll(scalar("SELECT count(*) FROM (((" + a + ") EXCEPT ALL (" + b +
                             ")) UNION ALL ((" + b + ") EXCEPT ALL (" + a + "))) AS d"));
}

void PgTest::drop_leftover_slots() {
    // A slot being read (by the scheduler's poller) cannot be dropped: end its reader first.
    for (int attempt = 0; attempt < 50; ++attempt) {
        try {
            exec(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE "
                "database = current_database() AND active_pid IS NOT NULL");
            exec(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE "
                "database = current_database() AND NOT active");
            if (scalar("SELECT count(*) FROM pg_replication_slots WHERE database = "
                       "current_database()") == "0") {
                return;
            }
        } catch (...) {
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
}

std::string PgTest::visible_columns(const std::string& st) {
    return scalar(
        "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute WHERE "
        "attrelid = '" +
        st +
        "'::regclass AND attnum > 0 AND NOT attisdropped AND attname NOT LIKE '\\_\\_pgt\\_%'");
}

void PgTest::expect_matches_query(const std::string& st, const std::string& query) {
    const long long diff = multiset_diff("SELECT " + visible_columns(st) + " FROM " + st, query);
    EXPECT_EQ(diff, 0) << "stream table " << st << " differs from its query in " << diff
                       << " rows\nquery: " << query;
}

}  // namespace pgt::test

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    ::testing::AddGlobalTestEnvironment(new pgt::test::ServerEnvironment());
    return RUN_ALL_TESTS();
}
