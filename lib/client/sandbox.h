// A local throwaway PostgreSQL 15 server with pg_trickle preloaded (`pgtrickle sandbox`):
// initdb into a directory we mark as ours, trust authentication on 127.0.0.1 only, a free
// port, then a database with the extension. Runs initdb and pg_ctl as `postgres` (via
// runuser) when the caller is root, as tests/support/pgtmp.sh does.
#pragma once

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>

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

/// What the marker file records.
struct Marker {
    int port = 0;
    std::string database = sandbox::database;
    std::string created_by;  ///< "pgtrickle 0.35.0"
};

/// The marker file's text (a JSON object with "kind": "pgtrickle-sandbox").
std::string marker_text(const Marker& m);
/// Parses marker_text(); nullopt when the text is not one of our markers.
std::optional<Marker> parse_marker(const std::string& text);

/// The default directory: $XDG_RUNTIME_DIR/pgtrickle-sandbox when that is set and the
/// caller is not root (the server user could not enter root's runtime directory), else
/// /tmp/pgtrickle-sandbox.
std::string default_dir(const char* xdg_runtime_dir, bool root);

/// The settings appended to postgresql.conf (through an included file).
std::string server_settings(int port);

/// pg_hba.conf: trust for 127.0.0.1 only (TCP; no Unix socket is opened).
std::string hba_conf();

/// postgresql://postgres@127.0.0.1:PORT/DATABASE
std::string dsn(int port, const std::string& db = database);

/// The state of a sandbox directory.
enum class State { absent, stopped, running };
/// "absent", "stopped", "running".
const char* state_name(State s);

/// What inspect() finds.
struct Info {
    State state = State::absent;
    std::string dir;               ///< absolute
    std::optional<Marker> marker;  ///< absent: no sandbox here
    std::optional<long long> pid;  ///< the postmaster's PID when running
    bool already_running = false;  ///< set by up() when it found it running
    bool citus_available = false;  ///< set by up(): the citus extension is installed
};

/// A sandbox directory and the operations on it. log receives progress for people.
class Sandbox {
  public:
    Sandbox(const std::string& dir, std::function<void(const std::string&)> log);

    /// The state of the directory. Throws SandboxError when it exists, is not empty and
    /// has no marker (not ours).
    Info inspect() const;

    /// Creates and starts the sandbox (or starts a stopped one, or reports a running one
    /// with already_running), then makes sure the database and the extension exist.
    /// port: the port to use for a new sandbox; default: a free one.
    Info up(std::optional<int> port) const;

    /// Stops the server and removes the directory. Refuses (SandboxError) a directory
    /// without our marker; a missing directory is not an error (returns false).
    bool down() const;

  private:
    void init(int port) const;
    int start(std::optional<int> port, int recorded) const;
    void create_database(int port) const;
    int run(const std::vector<std::string>& argv, const std::string& log_file) const;

    std::string dir_;
    std::string bindir_;
    std::function<void(const std::string&)> log_;
};

}  // namespace pgt::client::sandbox
