#include "citus/citus.h"

#include <algorithm>

#include "boundary/guard.h"
#include "boundary/spi.h"
#include "common/oids.h"

extern "C" {
#include "commands/extension.h"
#include "postmaster/postmaster.h"
#include "utils/guc.h"
}

namespace pgt::citus {
bool loaded() {
    Oid ext = InvalidOid;
    pg_call([&]() noexcept { ext = get_extension_oid("citus", true); });
    return ext != InvalidOid;
}

const char* Placement::name() const {
    switch (kind) {
        case Kind::reference:
            return "reference";
        case Kind::distributed:
            return "distributed";
        case Kind::local:
            break;
    }
    return "local";
}

Placement placement_of(Oid relid) {
    Placement p;
    if (!loaded()) {
        return p;
    }
    // partmethod 'h' (hash), 'r'/'a' (range/append): distributed; 'n' with repmodel 't':
    // reference; 'n' with repmodel 's': a Citus local table, which lives on this node.
    auto r = spi::exec(
        "SELECT p.partmethod::pg_catalog.text, p.repmodel::pg_catalog.text, CASE WHEN p.partkey IS "
        "NOT NULL THEN "
        "pg_catalog.column_to_column_name(p.logicalrelid, p.partkey) END "
        "FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid OPERATOR(pg_catalog.=) "
        "$1::pg_catalog.oid",
        {oid_text(relid)});
    if (r.rows.empty()) {
        return p;
    }
    const std::string method = r.rows[0][0].value_or("");
    const std::string repmodel = r.rows[0][1].value_or("");
    if (method == "n") {
        p.kind = repmodel == "t" ? Placement::Kind::reference : Placement::Kind::local;
    } else {
        p.kind = Placement::Kind::distributed;
        p.distribution_column = r.rows[0][2].value_or("");
    }
    return p;
}

std::vector<NodeInfo> active_primaries() {
    std::vector<NodeInfo> out;
    if (!loaded()) {
        return out;
    }
    auto r = spi::exec(
        "SELECT nodeid::pg_catalog.text, nodename, nodeport::pg_catalog.text, "
        "groupid::pg_catalog.text, shouldhaveshards::pg_catalog.text "
        "FROM pg_catalog.pg_dist_node WHERE isactive AND noderole OPERATOR(pg_catalog.=) "
        "'primary' ORDER BY groupid, nodeid");
    for (const auto& row : r.rows) {
        NodeInfo n;
        n.node.nodeid = std::stoi(*row[0]);
        n.node.host = *row[1];
        n.node.port = std::stoi(*row[2]);
        n.groupid = std::stoi(*row[3]);
        n.should_have_shards = row[4] == "true";
        out.push_back(n);
    }
    return out;
}

std::vector<remote::Node> capture_nodes(Oid relid, const Placement& placement) {
    std::vector<remote::Node> out;
    if (placement.kind == Placement::Kind::local) {
        return out;
    }
    if (placement.kind == Placement::Kind::reference) {
        out.push_back(coordinator());
        return out;
    }
    bool coordinator_holds = false;
    auto held = spi::exec(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_shard s JOIN "
        "pg_catalog.pg_dist_placement p ON p.shardid OPERATOR(pg_catalog.=) s.shardid "
        "WHERE s.logicalrelid OPERATOR(pg_catalog.=) $1::pg_catalog.oid AND p.groupid "
        "OPERATOR(pg_catalog.=) 0)::pg_catalog.text",
        {oid_text(relid)});
    coordinator_holds = held.scalar() == "true";
    for (const auto& n : active_primaries()) {
        if (!n.coordinator() || n.should_have_shards || coordinator_holds) {
            out.push_back(n.node);
        }
    }
    return out;
}

int32_t local_group() {
    auto r = spi::exec("SELECT groupid::pg_catalog.text FROM pg_catalog.pg_dist_local_group");
    return std::stoi(r.scalar().value_or("0"));
}

std::vector<remote::Node> placement_nodes(Oid relid) {
    std::vector<remote::Node> out;
    auto held = spi::exec(
        "SELECT DISTINCT p.groupid::pg_catalog.text FROM pg_catalog.pg_dist_shard s JOIN "
        "pg_catalog.pg_dist_placement p ON p.shardid OPERATOR(pg_catalog.=) s.shardid WHERE "
        "s.logicalrelid OPERATOR(pg_catalog.=) $1::pg_catalog.oid AND p.groupid "
        "OPERATOR(pg_catalog.<>) 0",
        {oid_text(relid)});
    std::vector<int32_t> groups;
    for (const auto& row : held.rows) {
        groups.push_back(std::stoi(row[0].value_or("0")));
    }
    for (const auto& n : active_primaries()) {
        if (std::find(groups.begin(), groups.end(), n.groupid) != groups.end()) {
            out.push_back(n.node);
        }
    }
    return out;
}

remote::Node coordinator() {
    for (const auto& n : active_primaries()) {
        if (n.coordinator()) {
            return n.node;
        }
    }
    remote::Node self;
    self.nodeid = -1;
    self.host = "127.0.0.1";
    int port = 0;
    pg_call([&]() noexcept { port = PostPortNumber; });
    self.port = port;
    return self;
}

remote::Node this_server() {
    remote::Node self;
    self.nodeid = -1;
    char dir[MAXPGPATH] = {0};
    int port = 0;
    pg_call([&]() noexcept {
        port = PostPortNumber;
        if (Unix_socket_directories != nullptr) {
            // The first directory of the comma-separated list (no quoting in practice).
            strlcpy(dir, Unix_socket_directories, sizeof(dir));
            if (char* comma = strchr(dir, ',')) {
                *comma = '\0';
            }
        }
    });
    std::string host(dir);
    while (!host.empty() && host.back() == ' ') {
        host.pop_back();
    }
    while (!host.empty() && host.front() == ' ') {
        host.erase(0, 1);
    }
    self.host = host.empty() ? "127.0.0.1" : host;
    self.port = port;
    return self;
}

std::string backend_gpid() {
    return spi::exec("SELECT pg_catalog.citus_backend_gpid()::pg_catalog.text")
        .scalar()
        .value_or("");
}

}  // namespace pgt::citus
