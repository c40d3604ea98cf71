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

    /// connect(), then checks that pg_trickle is installed (client::ExtensionMissing).
    std::unique_ptr<client::Node> connect_with_extension() const;

  private:
    const GlobalOptions& globals_;
    Console console_;
    std::string command_;
};

}  // namespace pgt::cli
