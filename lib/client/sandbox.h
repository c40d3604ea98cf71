// A local throwaway PostgreSQL 15 server with pg_trickle preloaded (`pgtrickle sandbox`):
// initdb into a directory we mark as ours, trust authentication on 127.0.0.1 only, a free
// port, then a database with the extension. When Citus is installed (and --single is not
// given), three such servers instead: a Citus coordinator and two workers with change data
// capture on, registered with each other, citus and pg_trickle in the database of each.
// Runs initdb and pg_ctl as `postgres` (via runuser) when the caller is root, as
// tests/support/pgtmp.sh does.
#pragma once

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace pgt::client::sandbox {

/// The database `up` creates (with CREATE EXTENSION pg_trickle).
inline constexpr const char* database = "pgtrickle";
/// The superuser initdb creates.
inline constexpr const char* superuser = "postgres";
/// The file that marks a directory as a sandbox of ours (down refuses others).
inline constexpr const char* marker_file = "pgtrickle-sandbox.json";

/// Thrown when the sandbox cannot be set up or managed. configuration() is true when the
/// installation is at fault (no PostgreSQL binaries, no `postgres` user).
class SandboxError : public std::runtime_error {
  public:
    SandboxError(const std::string& msg, std::string hint, bool configuration = false)
        : std::runtime_error(msg), hint_(std::move(hint)), configuration_(configuration) {}
    const std::string& hint() const { return hint_; }
    bool configuration() const { return configuration_; }

  private:
    std::string hint_;
    bool configuration_;
};

/// One server (single) or a Citus coordinator and two workers (citus).
enum class Topology { single, citus };
/// "single", "citus".
const char* topology_name(Topology t);

/// The nodes of a Citus sandbox, in start order; each lives in DIR/<name>.
inline constexpr const char* citus_nodes[] = {"coordinator", "worker1", "worker2"};
inline constexpr int citus_node_count = 3;

/// A node's name and port as the marker records them.
struct NodePort {
    std::string name;
    int port = 0;
};

/// What the marker file records.
struct Marker {
    int port = 0;  ///< the server's, or the coordinator's
    std::string database = sandbox::database;
    std::string created_by;  ///< "pgtrickle 0.35.0"
    Topology topology = Topology::single;
    std::vector<NodePort> nodes;  ///< citus: coordinator, worker1, worker2; single: empty
};

/// The marker file's text (a JSON object with "kind": "pgtrickle-sandbox").
std::string marker_text(const Marker& m);
/// Parses marker_text(); nullopt when the text is not one of our markers.
std::optional<Marker> parse_marker(const std::string& text);

/// The default directory: $XDG_RUNTIME_DIR/pgtrickle-sandbox when that is set and the
/// caller is not root (the server user could not enter root's runtime directory), else
/// /tmp/pgtrickle-sandbox.
std::string default_dir(const char* xdg_runtime_dir, bool root);

/// The settings appended to postgresql.conf (through an included file). citus: also
/// citus preloaded first, citus.enable_change_data_capture, synchronous commits (a slot
/// decodes flushed WAL only) and prepared transactions (Citus's two-phase commits).
std::string server_settings(int port, Topology t = Topology::single);

/// pg_hba.conf: trust for 127.0.0.1 only (TCP; no Unix socket is opened).
std::string hba_conf();

/// postgresql://postgres@127.0.0.1:PORT/DATABASE
std::string dsn(int port, const std::string& db = database);

/// The state of a sandbox directory.
enum class State { absent, stopped, running };
/// "absent", "stopped", "running".
const char* state_name(State s);

/// One server of a sandbox, as inspect() finds it.
struct NodeInfo {
    std::string name;  ///< "server" (single), "coordinator", "worker1", "worker2"
    int port = 0;
    State state = State::stopped;
    std::optional<long long> pid;  ///< its postmaster's PID when running
};

/// What inspect() finds.
struct Info {
    State state = State::absent;   ///< running: every node runs
    std::string dir;               ///< absolute
    std::optional<Marker> marker;  ///< absent: no sandbox here
    std::optional<long long> pid;  ///< the (coordinator's) postmaster's PID when running
    std::vector<NodeInfo> nodes;   ///< every server of the sandbox, coordinator first
    bool already_running = false;  ///< set by up() when it found it running
    bool citus_available = false;  ///< set by up(): citus.so and citus.control are installed
    std::string single_reason;     ///< set by up() for a one-node sandbox: why not Citus
};

/// Where Citus would be: `pg_config --pkglibdir`/citus.so and
/// `pg_config --sharedir`/extension/citus.control. Empty when both exist, else why Citus
/// is not available (for people). pg_config: the one in bindir when there is one.
std::string citus_missing(const std::string& bindir);

/// A sandbox directory and the operations on it. log receives progress for people.
class Sandbox {
  public:
    Sandbox(const std::string& dir, std::function<void(const std::string&)> log);

    /// The state of the directory. Throws SandboxError when it exists, is not empty and
    /// has no marker (not ours).
    Info inspect() const;

    /// Creates and starts the sandbox (or starts a stopped one, or reports a running one
    /// with already_running), then makes sure the database and the extension exist.
    /// A new sandbox is a Citus one when Citus is installed and single is false.
    /// port: the port to use for a new sandbox (citus: the coordinator's; the workers get
    /// the next two); default: free ones.
    Info up(std::optional<int> port, bool single = false) const;

    /// Stops the servers and removes the directory. Refuses (SandboxError) a directory
    /// without our marker; a missing directory is not an error (returns false).
    bool down() const;

  private:
    std::string node_dir(const std::string& name) const;
    void make_dir(const std::string& path) const;
    void init(const Marker& m) const;
    void init_node(const std::string& ndir) const;
    std::optional<long long> node_pid(const std::string& ndir) const;
    int start_node(const std::string& ndir, int port, bool wander, Topology t,
                   const std::vector<int>& taken) const;
    Info up_single(const Info& info, std::optional<int> port) const;
    Info up_citus(const Info& info, std::optional<int> port) const;
    void create_database(int port, const char* extension) const;
    void setup_citus(const Marker& m) const;
    void write_marker(const Marker& m) const;
    int run(const std::vector<std::string>& argv, const std::string& log_file) const;

    std::string dir_;
    std::string bindir_;
    std::function<void(const std::string&)> log_;
};

}  // namespace pgt::client::sandbox
