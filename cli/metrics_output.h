// Where `pgtrickle status --format prometheus` puts its text besides stdout: an HTTP
// endpoint (--listen, GET /metrics) and a file replaced atomically (--output, for the
// node exporter's textfile collector).
#pragma once

#include <functional>
#include <string>

#include "console.h"

namespace pgt::cli {

/// Serves GET (and HEAD) /metrics on listen ("HOST:PORT", "[::1]:PORT" or ":PORT" for
/// every interface; port 0 picks a free one) until SIGINT or SIGTERM, one request at a
/// time. Each request calls scrape() for the body; other paths get 404, other methods
/// 405. The address actually bound is reported on stderr. Throws UsageError for a
/// malformed address and CommandError when it cannot listen.
void serve_metrics(const std::string& listen, const std::function<std::string()>& scrape,
                   const Console& console);

/// Replaces path with text atomically: writes a temporary file in the same directory,
/// fsyncs it and renames it over path. Throws CommandError on failure.
void write_file_atomically(const std::string& path, const std::string& text);

}  // namespace pgt::cli
