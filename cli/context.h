// What a command's run function gets: the global options, the console, and connections.
#pragma once

#include <memory>
#include <string>

#include "client/connection.h"
#include "command_tree.h"
#include "console.h"

namespace pgt::cli {

/// Seconds libpq waits for a connection unless PGCONNECT_TIMEOUT or connect_timeout says
/// otherwise (libpq's own default is to wait forever).
inline constexpr int default_connect_timeout_s = 10;

/// Seconds one attempt to connect to another node of a cluster may take (unless the
/// connection settings say otherwise); connect_to_node makes up to 3 attempts in 15 s.
inline constexpr int node_connect_timeout_s = 5;

/// The environment of one command run.
class Context {
  public:
    Context(const GlobalOptions& globals, std::string command);

    const GlobalOptions& globals() const { return globals_; }
    const Console& console() const { return console_; }
    /// The subcommand being run ("status", ...).
    const std::string& command() const { return command_; }

    /// Connects to the target of --dsn / PGTRICKLE_DSN / libpq defaults. Throws
    /// client::InvalidDsn or client::ConnectionError.
    std::unique_ptr<client::Node> connect(int timeout_s = default_connect_timeout_s) const;

    /// Connects to another node of the cluster the command connected to: `host`:`port`,
    /// database `dbname`, with the other settings of --dsn / PGTRICKLE_DSN / libpq defaults
    /// (client::node_connection), retrying with jittered backoff (client::connect_with_retry).
    /// Throws client::InvalidDsn or client::ConnectionError (the last attempt's).
    std::unique_ptr<client::Node> connect_to_node(const std::string& host, int port,
                                                  const std::string& dbname) const;

    /// connect(), then checks that pg_trickle is installed (client::ExtensionMissing).
    std::unique_ptr<client::Node> connect_with_extension() const;

  private:
    client::Diagnostics diagnostics() const;

    const GlobalOptions& globals_;
    Console console_;
    std::string command_;
};

}  // namespace pgt::cli
