#include "client/sandbox.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <pqxx/connection>
#include <pqxx/nontransaction>

#include "client/connection.h"
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
int free_port_once() {
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
    return port;
}

// A free port that is none of `taken` (the other nodes' ports).
int free_port(const std::vector<int>& taken = {}) {
    for (int tries = 0; tries < 20; ++tries) {
        const int p = free_port_once();
        if (p != 0 && std::find(taken.begin(), taken.end(), p) == taken.end()) {
            return p;
        }
    }
    throw SandboxError("no free port on 127.0.0.1", "Give one with --port.");
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

}  // namespace

std::string citus_missing(const std::string& bindir) {
    const std::string pg_config =
        access((bindir + "/pg_config").c_str(), X_OK) == 0 ? bindir + "/pg_config" : "pg_config";
    const std::string pkglibdir = command_output(pg_config + " --pkglibdir 2>/dev/null");
    const std::string sharedir = command_output(pg_config + " --sharedir 2>/dev/null");
    if (pkglibdir.empty() || sharedir.empty()) {
        return "Citus is not installed (" + pg_config + " --pkglibdir failed)";
    }
    std::error_code ec;
    if (!fs::exists(pkglibdir + "/citus.so", ec)) {
        return "Citus is not installed (no citus.so in " + pkglibdir + ")";
    }
    if (!fs::exists(sharedir + "/extension/citus.control", ec)) {
        return "Citus is not installed (no citus.control in " + sharedir + "/extension)";
    }
    return "";
}

const char* topology_name(Topology t) {
    return t == Topology::citus ? "citus" : "single";
}

std::string marker_text(const Marker& m) {
    json::Value v = json::Value::object();
    v.set("kind", marker_kind);
    v.set("format_version", 1);
    v.set("port", m.port);
    v.set("database", m.database);
    v.set("created_by", m.created_by);
    v.set("topology", topology_name(m.topology));
    if (m.topology == Topology::citus) {
        json::Value nodes = json::Value::array();
        for (const NodePort& n : m.nodes) {
            json::Value node = json::Value::object();
            node.set("name", n.name);
            node.set("port", n.port);
            nodes.push_back(std::move(node));
        }
        v.set("nodes", std::move(nodes));
    }
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
        if (v["topology"] == json::Value("citus")) {
            // Written before any node starts: the nodes are what makes it a Citus sandbox.
            m.topology = Topology::citus;
            if (!v["nodes"].is_array() ||
                v["nodes"].as_array().size() != static_cast<std::size_t>(citus_node_count)) {
                return std::nullopt;
            }
            for (int i = 0; i < citus_node_count; ++i) {
                const json::Value& n = v["nodes"].as_array()[static_cast<std::size_t>(i)];
                if (!n.is_object() || n["name"] != json::Value(citus_nodes[i]) ||
                    !n["port"].is_integer()) {
                    return std::nullopt;
                }
                m.nodes.push_back({citus_nodes[i], static_cast<int>(n["port"].as_int())});
            }
        } else if (!v["topology"].is_null() && v["topology"] != json::Value("single")) {
            return std::nullopt;  // a later format we do not know
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

std::string server_settings(int port, Topology t) {
    const bool citus = t == Topology::citus;
    return std::string("# pgtrickle sandbox: a throwaway server for trying pg_trickle\n") +
           "listen_addresses = '127.0.0.1'\n"
           "port = " +
           std::to_string(port) +
           "\n"
           "unix_socket_directories = ''\n" +
           (citus ? "shared_preload_libraries = 'citus,pg_trickle'\n"
                    "citus.enable_change_data_capture = on\n"
                    "max_prepared_transactions = 200\n"
                    "synchronous_commit = on\n"
                  : "shared_preload_libraries = 'pg_trickle'\n"
                    "synchronous_commit = off\n") +
           "wal_level = logical\n"
           "max_worker_processes = 16\n"
           "max_replication_slots = 16\n"
           "max_wal_senders = 16\n"
           "fsync = off\n"
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

std::string Sandbox::node_dir(const std::string& name) const {
    return name.empty() ? dir_ : dir_ + "/" + name;
}

// A directory the server user may write (created as the caller; given to `postgres` when
// the caller is root).
void Sandbox::make_dir(const std::string& path) const {
    std::error_code ec;
    fs::create_directories(path, ec);
    if (ec) {
        throw SandboxError("cannot create " + path + ": " + ec.message(),
                           "Choose another directory with --dir.");
    }
    if (is_root()) {
        const passwd* pw = getpwnam(superuser);
        if (!pw) {
            throw SandboxError("user 'postgres' does not exist (needed to run the server as root)",
                               "Install postgresql-15, or run pgtrickle sandbox as a normal user.",
                               true);
        }
        if (chown(path.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
            throw SandboxError("cannot chown " + path + " to postgres: " + std::strerror(errno),
                               "Choose another directory with --dir.");
        }
        fs::permissions(path, fs::perms(0755), ec);
    } else {
        fs::permissions(path, fs::perms(0700), ec);
    }
}

void Sandbox::write_marker(const Marker& m) const {
    write_file(fs::path(dir_) / marker_file, marker_text(m));
}

// The postmaster's PID when the server in ndir runs.
std::optional<long long> Sandbox::node_pid(const std::string& ndir) const {
    const fs::path data = fs::path(ndir) / "data";
    std::error_code ec;
    if (!fs::exists(data / "PG_VERSION", ec)) {
        return std::nullopt;
    }
    const fs::path status_log = fs::path(dir_) / "pg_ctl_status.log";
    fs::remove(status_log, ec);
    std::optional<long long> pid;
    if (run({bindir_ + "/pg_ctl", "status", "-D", data.string()}, status_log.string()) == 0) {
        const std::string text = read_file(status_log);
        const auto p = text.find("PID: ");
        pid = p != std::string::npos ? std::atoll(text.c_str() + p + 5) : 0;
    }
    fs::remove(status_log, ec);
    return pid;
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
                               std::string(marker_file) +
                               " that this pgtrickle reads): " + "leaving it alone",
                           "Choose another directory with --dir.");
    }
    std::vector<NodePort> nodes = info.marker->nodes;
    if (info.marker->topology == Topology::single) {
        nodes = {{"", info.marker->port}};
    }
    bool all = true;
    for (const NodePort& n : nodes) {
        NodeInfo node;
        node.name = n.name.empty() ? "server" : n.name;
        node.port = n.port;
        node.pid = node_pid(node_dir(n.name));
        node.state = node.pid ? State::running : State::stopped;
        all = all && node.pid;
        info.nodes.push_back(node);
    }
    info.state = all ? State::running : State::stopped;
    if (all) {
        info.pid = info.nodes.front().pid;
    }
    return info;
}

void Sandbox::init(const Marker& m) const {
    make_dir(dir_);
    // The marker first: even a failed initdb leaves a directory that `down` may remove.
    write_marker(m);
    if (m.topology == Topology::single) {
        init_node(dir_);
        return;
    }
    for (const NodePort& n : m.nodes) {
        make_dir(node_dir(n.name));
        init_node(node_dir(n.name));
    }
}

void Sandbox::init_node(const std::string& ndir) const {
    log_("initializing a PostgreSQL cluster in " + ndir);
    const fs::path data = fs::path(ndir) / "data";
    const std::string initdb_log = (fs::path(ndir) / "initdb.log").string();
    if (run({bindir_ + "/initdb", "-D", data.string(), "-U", superuser, "-A", "trust", "-E", "UTF8",
             "--locale=C.UTF-8", "-N"},
            initdb_log) != 0) {
        throw SandboxError("initdb failed in " + ndir + ":\n" + log_tail(initdb_log),
                           "See " + initdb_log +
                               "; remove the directory with pgtrickle "
                               "sandbox down --dir " +
                               dir_ + ".");
    }
    std::ofstream conf(data / "postgresql.conf", std::ios::app);
    conf << "\ninclude '" << settings_file << "'\n";
    write_file(data / "pg_hba.conf", hba_conf());
}

// Starts the server in ndir on port (0: a free one that is none of taken), and when wander
// is set on other free ports after a failed start. Returns the port it runs on.
int Sandbox::start_node(const std::string& ndir, int port, bool wander, Topology t,
                        const std::vector<int>& taken) const {
    const fs::path data = fs::path(ndir) / "data";
    const std::string log = (fs::path(ndir) / "server.log").string();
    for (int attempt = 1; attempt <= start_attempts; ++attempt) {
        const int p = port > 0 && attempt == 1 ? port : free_port(taken);
        write_file(data / settings_file, server_settings(p, t));
        log_("starting PostgreSQL on 127.0.0.1:" + std::to_string(p) + " (" + ndir + ")");
        if (run({bindir_ + "/pg_ctl", "-D", data.string(), "-l", log, "-w", "-t", "60", "start"},
                (fs::path(ndir) / "pg_ctl.log").string()) == 0) {
            return p;
        }
        if (!wander) {
            break;  // the user's port, or a Citus node's registered one: do not wander off
        }
        log_("start on port " + std::to_string(p) + " failed (attempt " + std::to_string(attempt) +
             "), retrying on another port");
    }
    throw SandboxError("could not start PostgreSQL in " + ndir + ":\n" + log_tail(log),
                       "See " + log +
                           (port > 0 ? "; is port " + std::to_string(port) +
                                           " free? Try another with --port (or pgtrickle sandbox "
                                           "down, then up)."
                                     : "."));
}

// Makes sure the database exists on the server at port and has the extension.
void Sandbox::create_database(int port, const char* extension) const {
    {
        pqxx::connection admin(dsn(port, "postgres"));
        pin_search_path(admin);
        pqxx::nontransaction tx(admin);
        if (tx.exec_params("SELECT 1 FROM pg_catalog.pg_database d "
                           "WHERE d.datname OPERATOR(pg_catalog.=) $1::pg_catalog.name",
                           std::string(database))
                .empty()) {
            log_(std::string("creating database ") + database + " on port " + std::to_string(port));
            tx.exec0("CREATE DATABASE " + sql::quote_ident(database));
        }
    }
    pqxx::connection conn(dsn(port));
    pin_search_path(conn);
    pqxx::nontransaction tx(conn);
    if (tx.exec_params("SELECT 1 FROM pg_catalog.pg_extension e "
                       "WHERE e.extname OPERATOR(pg_catalog.=) $1::pg_catalog.name",
                       std::string(extension))
            .empty()) {
        // One statement per call: Citus propagates CREATE EXTENSION from the coordinator
        // only when it is the only statement of its query string.
        tx.exec0("CREATE EXTENSION " + sql::quote_ident(extension));
    }
}

// citus on every node, the nodes registered on the coordinator, then pg_trickle on the
// coordinator (Citus creates it on the workers). Each step is skipped when done already.
void Sandbox::setup_citus(const Marker& m) const {
    for (const NodePort& n : m.nodes) {
        create_database(n.port, "citus");
    }
    const int coordinator = m.nodes.front().port;
    {
        pqxx::connection conn(dsn(coordinator));
        pin_search_path(conn);
        pqxx::nontransaction tx(conn);
        if (tx.exec("SELECT 1 FROM pg_catalog.pg_dist_node n "
                    "WHERE n.groupid OPERATOR(pg_catalog.=) 0")
                .empty()) {
            log_("registering the coordinator (citus_set_coordinator_host)");
            tx.exec_params(
                "SELECT pg_catalog.citus_set_coordinator_host('127.0.0.1', $1::pg_catalog.int4)",
                coordinator);
        }
        for (std::size_t i = 1; i < m.nodes.size(); ++i) {
            const int port = m.nodes[i].port;
            if (tx.exec_params("SELECT 1 FROM pg_catalog.pg_dist_node n "
                               "WHERE n.nodename OPERATOR(pg_catalog.=) '127.0.0.1' "
                               "AND n.nodeport OPERATOR(pg_catalog.=) $1::pg_catalog.int4",
                               port)
                    .empty()) {
                log_("adding " + m.nodes[i].name +
                     " (citus_add_node 127.0.0.1:" + std::to_string(port) + ")");
                tx.exec_params("SELECT pg_catalog.citus_add_node('127.0.0.1', $1::pg_catalog.int4)",
                               port);
            }
        }
    }
    create_database(coordinator, "pg_trickle");
}

Info Sandbox::up(std::optional<int> port, bool single) const {
    Info info = inspect();
    const std::string missing = citus_missing(bindir_);
    info.citus_available = missing.empty();
    Topology t = single || !info.citus_available ? Topology::single : Topology::citus;
    if (info.marker) {
        t = info.marker->topology;  // an existing sandbox keeps its topology
        if (single && t == Topology::citus) {
            throw SandboxError(
                dir_ + " holds a Citus sandbox; --single applies to a new one",
                "Remove it with pgtrickle sandbox down --dir " + dir_ + ", then up --single.");
        }
    }
    if (t == Topology::single) {
        info.single_reason = single                  ? "--single given"
                             : !info.citus_available ? missing
                                                     : "this sandbox was created with one node "
                                                       "(down, then up, for a Citus one)";
    }
    if (info.state == State::running) {
        info.already_running = true;
        if (port && *port != info.marker->port) {
            log_("the sandbox is already running on port " + std::to_string(info.marker->port) +
                 "; --port " + std::to_string(*port) + " is ignored");
        }
        return info;
    }
    Info now = t == Topology::citus ? up_citus(info, port) : up_single(info, port);
    now.citus_available = info.citus_available;
    now.single_reason = info.single_reason;
    return now;
}

Info Sandbox::up_single(const Info& info, std::optional<int> port) const {
    Marker m = info.marker.value_or(Marker{});
    if (info.state == State::absent) {
        m.port = port.value_or(0);
        m.created_by = std::string("pgtrickle ") + PGTRICKLE_VERSION;
        init(m);
    }
    // A stopped sandbox starts on its recorded port first (or --port); a new one on --port,
    // else on free ports until one works.
    const int wanted = port ? *port : m.port;
    m.port = start_node(dir_, wanted, !port, Topology::single, {});
    write_marker(m);
    create_database(m.port, "pg_trickle");
    return inspect();
}

Info Sandbox::up_citus(const Info& info, std::optional<int> port) const {
    Marker m;
    if (info.state == State::absent) {
        if (port && *port > 65535 - (citus_node_count - 1)) {
            throw SandboxError(
                "--port " + std::to_string(*port) +
                    " leaves no room for the workers (the next two ports)",
                "Give a port below " + std::to_string(65535 - citus_node_count + 2) + ".");
        }
        log_("Citus is installed: a coordinator and two workers");
        m.topology = Topology::citus;
        m.created_by = std::string("pgtrickle ") + PGTRICKLE_VERSION;
        for (int i = 0; i < citus_node_count; ++i) {
            m.nodes.push_back({citus_nodes[i], port ? *port + i : 0});
        }
        m.port = m.nodes.front().port;
        init(m);
    } else {
        m = *info.marker;
        if (port && *port != m.port) {
            throw SandboxError(
                "the Citus sandbox in " + dir_ + " has its ports (coordinator " +
                    std::to_string(m.port) + ") registered in pg_dist_node; --port " +
                    std::to_string(*port) + " cannot change them",
                "Start it without --port, or remove it with pgtrickle sandbox down --dir " + dir_ +
                    " and create a new one.");
        }
    }
    // The ports of a new sandbox without --port are free ones, re-picked when a start
    // fails; once the nodes are registered with each other (setup_citus) they are fixed.
    const bool wander = info.state == State::absent && !port;
    for (std::size_t i = 0; i < m.nodes.size(); ++i) {
        if (i < info.nodes.size() && info.nodes[i].state == State::running) {
            continue;  // a partly running sandbox: start the others
        }
        std::vector<int> taken;
        for (const NodePort& n : m.nodes) {
            if (&n != &m.nodes[i] && n.port > 0) {
                taken.push_back(n.port);
            }
        }
        m.nodes[i].port =
            start_node(node_dir(m.nodes[i].name), m.nodes[i].port, wander, Topology::citus, taken);
        m.port = m.nodes.front().port;
        write_marker(m);
    }
    setup_citus(m);
    return inspect();
}

bool Sandbox::down() const {
    const Info info = inspect();
    if (!info.marker) {
        return false;  // nothing of ours here (possibly an empty directory: left alone)
    }
    std::string failed;
    const bool citus = info.marker->topology == Topology::citus;
    for (const NodeInfo& n : info.nodes) {
        if (n.state != State::running) {
            continue;
        }
        const std::string ndir = node_dir(citus ? n.name : "");
        log_("stopping PostgreSQL in " + ndir);
        if (run({bindir_ + "/pg_ctl", "-D", ndir + "/data", "-m", "fast", "-w", "-t", "60", "stop"},
                ndir + "/pg_ctl.log") != 0) {
            failed += (failed.empty() ? "" : ", ") + ndir;
        }
    }
    if (!failed.empty()) {
        throw SandboxError("could not stop the server in " + failed,
                           "See server.log in each; the directory was kept.");
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
    if (ec) {
        throw SandboxError("could not remove " + dir_ + ": " + ec.message(), "");
    }
    return true;
}

}  // namespace pgt::client::sandbox
