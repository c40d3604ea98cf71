#include "client/sandbox.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <pqxx/connection>
#include <pqxx/nontransaction>

#include "core/json.h"
#include "core/sql_ident.h"

namespace pgt::client::sandbox {

namespace fs = std::filesystem;

namespace {

constexpr const char* marker_kind = "pgtrickle-sandbox";
constexpr const char* settings_file = "pgtrickle_sandbox.conf";
constexpr int start_attempts = 5;

bool is_root() {
    return geteuid() == 0;
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void write_file(const fs::path& p, const std::string& text) {
    std::ofstream out(p, std::ios::trunc);
    out << text;
    if (!out.flush()) {
        throw SandboxError("cannot write " + p.string(), "Check the directory's permissions.");
    }
}

// The first line printed by a command, or "" when it fails.
std::string command_output(const std::string& cmd) {
    FILE* f = popen(cmd.c_str(), "r");
    if (!f) {
        return "";
    }
    char buf[4096] = "";
    const bool got = std::fgets(buf, sizeof buf, f) != nullptr;
    const int rc = pclose(f);
    std::string line = got && rc == 0 ? buf : "";
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
        line.pop_back();
    }
    return line;
}

// PostgreSQL's server binaries: $PG_BINDIR, `pg_config --bindir`, or Debian's path.
std::string find_bindir() {
    std::vector<std::string> candidates;
    if (const char* env = std::getenv("PG_BINDIR"); env && *env) {
        candidates.emplace_back(env);
    }
    candidates.push_back(command_output("pg_config --bindir 2>/dev/null"));
    candidates.emplace_back("/usr/lib/postgresql/15/bin");
    for (const std::string& c : candidates) {
        if (!c.empty() && access((c + "/initdb").c_str(), X_OK) == 0 &&
            access((c + "/pg_ctl").c_str(), X_OK) == 0) {
            return c;
        }
    }
    throw SandboxError("PostgreSQL server binaries (initdb, pg_ctl) not found",
                       "Install postgresql-15, or set PG_BINDIR to the directory that has "
                       "initdb and pg_ctl.",
                       true);
}

// A free TCP port on 127.0.0.1, as the kernel picks it.
int free_port() {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = 0;
    if (fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
        port = ntohs(a.sin_port);
    }
    if (fd >= 0) {
        close(fd);
    }
    if (port == 0) {
        throw SandboxError("no free port on 127.0.0.1", "Give one with --port.");
    }
    return port;
}

// The last lines of a log file, for error messages.
std::string log_tail(const fs::path& p, std::size_t lines = 8) {
    const std::string text = read_file(p);
    std::size_t pos = text.size();
    for (std::size_t n = 0; n <= lines && pos > 0; ++n) {
        pos = text.rfind('\n', pos - 1);
        if (pos == std::string::npos) {
            pos = 0;
            break;
        }
    }
    std::string tail = text.substr(pos);
    while (!tail.empty() && (tail.front() == '\n')) {
        tail.erase(tail.begin());
    }
    while (!tail.empty() && tail.back() == '\n') {
        tail.pop_back();
    }
    return tail;
}

std::string citus_control_path() {
    const std::string sharedir = command_output("pg_config --sharedir 2>/dev/null");
    return sharedir.empty() ? "" : sharedir + "/extension/citus.control";
}

}  // namespace

std::string marker_text(const Marker& m) {
    json::Value v = json::Value::object();
    v.set("kind", marker_kind);
    v.set("format_version", 1);
    v.set("port", m.port);
    v.set("database", m.database);
    v.set("created_by", m.created_by);
    return json::dump(v, 2) + "\n";
}

std::optional<Marker> parse_marker(const std::string& text) {
    try {
        const json::Value v = json::parse(text);
        if (!v.is_object() || v["kind"] != json::Value(marker_kind) || !v["port"].is_integer()) {
            return std::nullopt;
        }
        Marker m;
        m.port = static_cast<int>(v["port"].as_int());
        if (v["database"].is_string()) {
            m.database = v["database"].as_string();
        }
        if (v["created_by"].is_string()) {
            m.created_by = v["created_by"].as_string();
        }
        return m;
    } catch (const json::ParseError&) {
        return std::nullopt;
    }
}

std::string default_dir(const char* xdg_runtime_dir, bool root) {
    if (!root && xdg_runtime_dir && *xdg_runtime_dir) {
        return std::string(xdg_runtime_dir) + "/pgtrickle-sandbox";
    }
    return "/tmp/pgtrickle-sandbox";
}

std::string server_settings(int port) {
    // Citus: when a multi-node sandbox is added, each node gets these settings plus
    // shared_preload_libraries = 'citus,pg_trickle' and citus.enable_change_data_capture.
    return "# pgtrickle sandbox: a throwaway server for trying pg_trickle\n"
           "listen_addresses = '127.0.0.1'\n"
           "port = " +
           std::to_string(port) +
           "\n"
           "unix_socket_directories = ''\n"
           "shared_preload_libraries = 'pg_trickle'\n"
           "wal_level = logical\n"
           "max_replication_slots = 16\n"
           "max_wal_senders = 16\n"
           "fsync = off\n"
           "synchronous_commit = off\n"
           "full_page_writes = off\n"
           "log_min_messages = warning\n";
}

std::string hba_conf() {
    return "# pgtrickle sandbox: trust on the loopback address only\n"
           "host all all 127.0.0.1/32 trust\n"
           "host replication all 127.0.0.1/32 trust\n";
}

std::string dsn(int port, const std::string& db) {
    return "postgresql://" + std::string(superuser) + "@127.0.0.1:" + std::to_string(port) + "/" +
           db;
}

const char* state_name(State s) {
    switch (s) {
        case State::absent:
            return "absent";
        case State::stopped:
            return "stopped";
        case State::running:
            return "running";
    }
    return "absent";
}

Sandbox::Sandbox(const std::string& dir, std::function<void(const std::string&)> log)
    : dir_(fs::absolute(dir).lexically_normal().string()),
      bindir_(find_bindir()),
      log_(std::move(log)) {
    while (dir_.size() > 1 && dir_.back() == '/') {
        dir_.pop_back();
    }
}

int Sandbox::run(const std::vector<std::string>& argv, const std::string& log_file) const {
    std::vector<std::string> full;
    if (is_root()) {  // PostgreSQL refuses to run as root
        full = {"runuser", "-u", superuser, "--"};
    }
    full.insert(full.end(), argv.begin(), argv.end());
    const int log_fd = open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) {
        throw SandboxError("cannot write " + log_file + ": " + std::strerror(errno),
                           "Check the directory's permissions.");
    }
    std::vector<char*> args;  // built before fork: the child only calls exec-safe functions
    args.reserve(full.size() + 1);
    for (std::string& a : full) {
        args.push_back(a.data());
    }
    args.push_back(nullptr);
    const pid_t pid = fork();
    if (pid == 0) {
        const int null_fd = open("/dev/null", O_RDONLY);
        dup2(null_fd, STDIN_FILENO);
        dup2(log_fd, STDOUT_FILENO);
        dup2(log_fd, STDERR_FILENO);
        execvp(args[0], args.data());
        std::fprintf(stderr, "cannot run %s: %s\n", args[0], std::strerror(errno));
        _exit(127);
    }
    close(log_fd);
    if (pid < 0) {
        throw SandboxError(std::string("fork failed: ") + std::strerror(errno), "");
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

Info Sandbox::inspect() const {
    Info info;
    info.dir = dir_;
    std::error_code ec;
    if (!fs::exists(dir_, ec)) {
        return info;
    }
    const fs::path marker = fs::path(dir_) / marker_file;
    if (fs::exists(marker, ec)) {
        info.marker = parse_marker(read_file(marker));
    }
    if (!info.marker) {
        if (fs::is_directory(dir_, ec) && fs::is_empty(dir_, ec)) {
            return info;  // an empty directory the user made for us
        }
        throw SandboxError(dir_ + " is not a pgtrickle sandbox (it has no " +
                               std::string(marker_file) + "): leaving it alone",
                           "Choose another directory with --dir.");
    }
    info.state = State::stopped;
    const fs::path data = fs::path(dir_) / "data";
    if (fs::exists(data / "PG_VERSION", ec)) {
        const fs::path status_log = fs::path(dir_) / "pg_ctl_status.log";
        fs::remove(status_log, ec);
        if (run({bindir_ + "/pg_ctl", "status", "-D", data.string()}, status_log.string()) == 0) {
            info.state = State::running;
            const std::string text = read_file(status_log);
            if (const auto p = text.find("PID: "); p != std::string::npos) {
                info.pid = std::atoll(text.c_str() + p + 5);
            }
        }
        fs::remove(status_log, ec);
    }
    return info;
}

void Sandbox::init(int port) const {
    const fs::path dir(dir_);
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) {
        throw SandboxError("cannot create " + dir_ + ": " + ec.message(),
                           "Choose another directory with --dir.");
    }
    if (is_root()) {
        const passwd* pw = getpwnam(superuser);
        if (!pw) {
            throw SandboxError("user 'postgres' does not exist (needed to run the server as root)",
                               "Install postgresql-15, or run pgtrickle sandbox as a normal user.",
                               true);
        }
        if (chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
            throw SandboxError("cannot chown " + dir_ + " to postgres: " + std::strerror(errno),
                               "Choose another directory with --dir.");
        }
        fs::permissions(dir, fs::perms(0755), ec);
    } else {
        fs::permissions(dir, fs::perms(0700), ec);
    }
    // The marker first: even a failed initdb leaves a directory that `down` may remove.
    Marker m;
    m.port = port;
    m.created_by = std::string("pgtrickle ") + PGTRICKLE_VERSION;
    write_file(dir / marker_file, marker_text(m));
    log_("initializing a PostgreSQL cluster in " + dir_);
    const fs::path data = dir / "data";
    const std::string initdb_log = (dir / "initdb.log").string();
    if (run({bindir_ + "/initdb", "-D", data.string(), "-U", superuser, "-A", "trust", "-E", "UTF8",
             "--locale=C.UTF-8", "-N"},
            initdb_log) != 0) {
        throw SandboxError("initdb failed in " + dir_ + ":\n" + log_tail(initdb_log),
                           "See " + initdb_log +
                               "; remove the directory with pgtrickle "
                               "sandbox down --dir " +
                               dir_ + ".");
    }
    std::ofstream conf(data / "postgresql.conf", std::ios::app);
    conf << "\ninclude '" << settings_file << "'\n";
    write_file(data / "pg_hba.conf", hba_conf());
}

int Sandbox::start(std::optional<int> port, int recorded) const {
    const fs::path dir(dir_);
    const fs::path data = dir / "data";
    const std::string log = (dir / "server.log").string();
    for (int attempt = 1; attempt <= start_attempts; ++attempt) {
        const int p = port ? *port : recorded > 0 && attempt == 1 ? recorded : free_port();
        write_file(data / settings_file, server_settings(p));
        Marker m = parse_marker(read_file(dir / marker_file)).value_or(Marker{});
        m.port = p;
        write_file(dir / marker_file, marker_text(m));
        log_("starting PostgreSQL on 127.0.0.1:" + std::to_string(p));
        if (run({bindir_ + "/pg_ctl", "-D", data.string(), "-l", log, "-w", "-t", "60", "start"},
                (dir / "pg_ctl.log").string()) == 0) {
            return p;
        }
        if (port) {
            break;  // the user's port: do not wander off to another
        }
        log_("start on port " + std::to_string(p) + " failed (attempt " + std::to_string(attempt) +
             "), retrying on another port");
    }
    throw SandboxError(
        "could not start PostgreSQL in " + dir_ + ":\n" + log_tail(log),
        "See " + log +
            (port ? "; is port " + std::to_string(*port) + " free? Try another with --port."
                  : "."));
}

void Sandbox::create_database(int port) const {
    {
        pqxx::connection admin(dsn(port, "postgres"));
        pqxx::nontransaction tx(admin);
        if (tx.exec_params("SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1",
                           std::string(database))
                .empty()) {
            log_(std::string("creating database ") + database);
            tx.exec0("CREATE DATABASE " + sql::quote_ident(database));
        }
    }
    pqxx::connection conn(dsn(port));
    pqxx::nontransaction tx(conn);
    tx.exec0("CREATE EXTENSION IF NOT EXISTS pg_trickle");
}

Info Sandbox::up(std::optional<int> port) const {
    Info info = inspect();
    std::error_code ec;
    const std::string citus = citus_control_path();
    info.citus_available = !citus.empty() && fs::exists(citus, ec);
    if (info.citus_available) {
        // Later: a coordinator and two workers with citus preloaded. Until then, one node.
        log_(
            "the citus extension is installed, but the sandbox starts a single node "
            "(a Citus coordinator with two workers is not supported yet)");
    }
    if (info.state == State::running) {
        info.already_running = true;
        if (port && info.marker && *port != info.marker->port) {
            log_("the sandbox is already running on port " + std::to_string(info.marker->port) +
                 "; --port " + std::to_string(*port) + " is ignored");
        }
        return info;
    }
    int recorded = 0;
    if (info.state == State::absent) {
        init(port.value_or(0));
    } else {
        recorded = info.marker->port;
    }
    const int p = start(port, recorded);
    create_database(p);
    Info now = inspect();
    now.citus_available = info.citus_available;
    return now;
}

bool Sandbox::down() const {
    const Info info = inspect();
    if (!info.marker) {
        return false;  // nothing of ours here (possibly an empty directory: left alone)
    }
    if (info.state == State::running) {
        log_("stopping PostgreSQL in " + dir_);
        const fs::path data = fs::path(dir_) / "data";
        if (run({bindir_ + "/pg_ctl", "-D", data.string(), "-m", "fast", "-w", "-t", "60", "stop"},
                (fs::path(dir_) / "pg_ctl.log").string()) != 0) {
            throw SandboxError("could not stop the server in " + dir_,
                               "See " + dir_ + "/server.log.");
        }
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
    if (ec) {
        throw SandboxError("could not remove " + dir_ + ": " + ec.message(), "");
    }
    return true;
}

}  // namespace pgt::client::sandbox
