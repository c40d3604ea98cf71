// Reading libpq connection strings without libpq: enough to validate their syntax and
// keywords up front and to name the node they point at when a connection fails.
// (libpq itself does the real connecting; see connection.h.)
#pragma once

#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgt::client {

/// Keyword/value pairs of a connection string, in the order given.
using ConninfoParams = std::vector<std::pair<std::string, std::string>>;

/// Thrown for a malformed connection string: bad syntax or an unknown keyword.
class ConninfoSyntaxError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

/// Parses a libpq connection string in either form: "host=a port=5432" (values may be
/// single-quoted with backslash escapes) or "postgresql://user:pw@host:port,h2/db?k=v"
/// (percent-decoded). URI parts are reported under their keywords (user, password, host,
/// port, dbname). Keywords are checked against PostgreSQL 15's libpq.
ConninfoParams parse_conninfo(std::string_view conninfo);

/// Looks up an environment variable; returns nullptr when unset.
using EnvLookup = std::function<const char*(const char*)>;

/// "host:port" pairs for libpq's host and port lists ("a,b" with "5432" gives
/// "a:5432,b:5432"). An empty host is the default Unix socket, shown as "[local]" as
/// psql does; a host that starts with '/' is a socket directory and is shown as is.
std::string format_node_name(const std::string& hosts, const std::string& ports);

/// The node a parsed connection string reaches, as format_node_name() renders it:
/// host/hostaddr and port from the string, else PGHOST/PGHOSTADDR and
/// PGPORT, else the default socket and 5432. With a service file entry that is not
/// expanded here, returns "service NAME" instead.
std::string conninfo_target(const ConninfoParams& params, const EnvLookup& env);

}  // namespace pgt::client
