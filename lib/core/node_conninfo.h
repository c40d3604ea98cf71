// The libpq options of a connection from one node of a Citus cluster to another, merged the
// way Citus merges them (connection_configuration.c), as a pure function: the extension
// parses the option strings (citus.node_conninfo, pg_dist_authinfo.authinfo) with libpq and
// reads the catalog; this file decides what wins.
//
// Precedence, lowest first:
//  0. pg_trickle's own defaults (connection_defaults: TCP keepalives, tcp_user_timeout), so
//     that the kernel notices a node that vanished from the network;
//  1. citus.node_conninfo (cluster-wide: sslmode, sslrootcert, keepalives, ...);
//  2. the target itself: host, port, dbname, user, client_encoding, application_name. When
//     node_conninfo names a `host` (for certificate or Kerberos host checks), the node's
//     address goes into `hostaddr` instead and node_conninfo's `host` stays;
//  3. the pg_dist_authinfo row of (node, role): the node's own row, else the wildcard row
//     (nodeid 0); a connection back to the local node (citus.local_hostname and this
//     server's port) uses the loopback row (nodeid -1) before the wildcard one.
// Options with an empty value are ignored; anything missing is libpq's default (.pgpass).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace pgt::node_conninfo {

using Options = std::map<std::string, std::string>;

/// pg_dist_authinfo.nodeid of the row that applies to every node.
constexpr int32_t wildcard_node_id = 0;
/// pg_dist_authinfo.nodeid of the row for connections back to the local node.
constexpr int32_t loopback_node_id = -1;

/// What a connection is for: the node and the session on it.
struct Target {
    std::string host;
    int port = 0;
    std::string dbname;
    std::string user;
    std::string client_encoding;  ///< empty: not set (libpq's default)
    std::string application_name;
};

/// The pg_dist_authinfo nodeid to look up for pg_dist_node `nodeid`: the loopback id when
/// the connection goes back to the local node, else `nodeid` itself.
int32_t authinfo_node_id(int32_t nodeid, bool loopback);

/// Whether `host:port` is the local node as Citus decides it: the host equals
/// citus.local_hostname (compared as text, no name resolution) and the port is this
/// server's.
bool is_loopback(const std::string& host, int port, const std::string& local_hostname,
                 int local_port);

/// The authinfo string that applies among `rows` (nodeid, authinfo) of one role: the row of
/// `node_id`, else the wildcard row, else nullopt.
std::optional<std::string> pick_authinfo(const std::vector<std::pair<int32_t, std::string>>& rows,
                                         int32_t node_id);

/// pg_trickle's defaults for a connection to another node, overridden by any option of the
/// same name in citus.node_conninfo or pg_dist_authinfo: TCP keepalives (first probe after
/// 10 s of silence, then every 5 s, the connection is dead after 3 unanswered probes) and
/// tcp_user_timeout = 30 s (data sent but not acknowledged for that long closes the
/// connection). A node that vanished (power loss, a network black hole) is then detected
/// by the kernel, also on an idle cached connection and while a cancel request is sent.
Options connection_defaults();

/// The merged options (see the precedence above). `defaults` (normally
/// connection_defaults()) rank below everything else and must not name the target's keys.
Options merge(const Target& target, const Options& node_conninfo, const Options& authinfo,
              const Options& defaults = {});

}  // namespace pgt::node_conninfo
