// Stopping long-running commands (status --watch, status --listen) on SIGINT or SIGTERM.
// The handlers only write to a self-pipe, so waits that poll it cannot miss a signal.
#pragma once

namespace pgt::cli {

/// Installs the SIGINT and SIGTERM handlers (idempotent). Call before the loop starts.
void install_stop_handlers();

/// True once SIGINT or SIGTERM arrived after install_stop_handlers().
bool stop_requested();

/// A descriptor that becomes readable when a stop is requested (for poll()).
int stop_fd();

/// Waits up to `seconds`; returns false when a stop was requested (before or during).
bool wait_unless_stopped(double seconds);

}  // namespace pgt::cli
