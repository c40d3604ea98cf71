#include "core/frontier.h"

#include <algorithm>
#include <stdexcept>

#include "core/json.h"
#include "core/sql_ident.h"

namespace pgt::frontier {
namespace {

uint64_t parse_xid(const std::string& s, const std::string& whole) {
    if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 20) {
        throw std::invalid_argument("invalid snapshot \"" + whole + "\"");
    }
    return std::stoull(s);
}

}  // namespace

Snapshot Snapshot::parse(const std::string& text) {
    const auto c1 = text.find(':');
    const auto c2 = c1 == std::string::npos ? c1 : text.find(':', c1 + 1);
    if (c2 == std::string::npos) {
        throw std::invalid_argument("invalid snapshot \"" + text + "\"");
    }
    Snapshot s;
    s.xmin = parse_xid(text.substr(0, c1), text);
    s.xmax = parse_xid(text.substr(c1 + 1, c2 - c1 - 1), text);
    std::string rest = text.substr(c2 + 1);
    size_t pos = 0;
    while (pos < rest.size()) {
        size_t comma = rest.find(',', pos);
        if (comma == std::string::npos) {
            comma = rest.size();
        }
        s.xip.push_back(parse_xid(rest.substr(pos, comma - pos), text));
        pos = comma + 1;
    }
    if (s.xmin > s.xmax || !std::is_sorted(s.xip.begin(), s.xip.end())) {
        throw std::invalid_argument("invalid snapshot \"" + text + "\"");
    }
    for (uint64_t x : s.xip) {
        if (x < s.xmin || x >= s.xmax) {
            throw std::invalid_argument("invalid snapshot \"" + text + "\"");
        }
    }
    return s;
}

std::string Snapshot::text() const {
    std::string out = std::to_string(xmin) + ":" + std::to_string(xmax) + ":";
    for (size_t i = 0; i < xip.size(); ++i) {
        out += (i ? "," : "") + std::to_string(xip[i]);
    }
    return out;
}

bool Snapshot::sees(uint64_t xid) const {
    if (xid < xmin) {
        return true;
    }
    if (xid >= xmax) {
        return false;
    }
    return !std::binary_search(xip.begin(), xip.end(), xid);
}

Snapshot Snapshot::with_running(uint64_t xid) const {
    if (!sees(xid)) {
        return *this;
    }
    Snapshot s = *this;
    s.xip.insert(std::lower_bound(s.xip.begin(), s.xip.end(), xid), xid);
    s.xmin = std::min(s.xmin, xid);
    return s;
}

Frontier Frontier::parse(const std::string& json_text) {
    Frontier f;
    json::Value doc;
    try {
        doc = json::parse(json_text);
    } catch (const json::ParseError& e) {
        throw std::invalid_argument(std::string("invalid frontier: ") + e.what());
    }
    if (!doc.is_object()) {
        throw std::invalid_argument("invalid frontier: not an object");
    }
    if (const auto* sysid = doc.find("sysid"); sysid && sysid->is_string()) {
        f.sysid = sysid->as_string();
    }
    const auto* sources = doc.find("sources");
    if (sources == nullptr || !sources->is_object()) {
        return f;
    }
    for (const auto& [key, v] : sources->as_object()) {
        SourceFrontier sf;
        if (const auto* snap = v.find("snapshot"); snap && snap->is_string()) {
            sf.snapshot = snap->as_string();
        } else {
            throw std::invalid_argument("invalid frontier: source \"" + key + "\" has no snapshot");
        }
        const auto* own_xid = v.find("own_xid");
        const auto* own_cid = v.find("own_cid");
        if (own_xid && own_cid && own_xid->is_string() && own_cid->is_integer()) {
            sf.own = OwnWrites{parse_xid(own_xid->as_string(), own_xid->as_string()),
                               static_cast<uint32_t>(own_cid->as_int())};
        }
        if (const auto* nodes = v.find("nodes"); nodes && nodes->is_object()) {
            for (const auto& [node, lsn] : nodes->as_object()) {
                if (lsn.is_string()) {
                    sf.node_lsn[node] = lsn.as_string();
                }
            }
        }
        f.sources[key] = std::move(sf);
    }
    return f;
}

std::string Frontier::json() const {
    json::Value doc = json::Value::object();
    doc.set("format", 2);
    doc.set("sysid", sysid);
    json::Value srcs = json::Value::object();
    for (const auto& [key, sf] : sources) {
        json::Value v = json::Value::object();
        v.set("snapshot", sf.snapshot);
        if (sf.own) {
            // xid8 can exceed int64 in theory: kept as text, as PostgreSQL prints it.
            v.set("own_xid", std::to_string(sf.own->xid));
            v.set("own_cid", static_cast<long long>(sf.own->command_id));
        }
        if (!sf.node_lsn.empty()) {
            json::Value nodes = json::Value::object();
            for (const auto& [node, lsn] : sf.node_lsn) {
                nodes.set(node, lsn);
            }
            v.set("nodes", std::move(nodes));
        }
        srcs.set(key, std::move(v));
    }
    doc.set("sources", std::move(srcs));
    return json::dump(doc);
}

std::optional<SourceFrontier> Frontier::common() const {
    if (sources.empty()) {
        return std::nullopt;
    }
    const SourceFrontier& first = sources.begin()->second;
    for (const auto& [key, sf] : sources) {
        if (sf.snapshot != first.snapshot || sf.own != first.own) {
            return std::nullopt;
        }
    }
    SourceFrontier out;
    out.snapshot = first.snapshot;
    out.own = first.own;
    return out;
}

std::vector<std::optional<std::string>> window_params(const SourceFrontier& f) {
    std::vector<std::optional<std::string>> p{f.snapshot, std::nullopt, std::nullopt};
    if (f.own) {
        p[1] = std::to_string(f.own->xid);
        p[2] = std::to_string(f.own->command_id);
    }
    return p;
}

std::string window_condition(const std::string& row, const std::string& snapshot,
                             const std::string& own_xid, const std::string& own_cid) {
    const std::string xid = row + "\"__pgt_xid\"";
    // cid has no ordering operator: compare its text form as a number. The system column
    // cmin of a buffer row is the command that inserted it (rows are never updated).
    return "(" + xid + " OPERATOR(pg_catalog.>=) pg_catalog.pg_snapshot_xmin(" + snapshot +
           ") AND NOT pg_catalog.pg_visible_in_snapshot(" + xid + ", " + snapshot + ") AND (" +
           xid + " OPERATOR(pg_catalog.=) " + own_xid + " AND " + row +
           "cmin::pg_catalog.text::pg_catalog.int8 OPERATOR(pg_catalog.<) " + own_cid +
           ") IS NOT TRUE)";
}

std::string window_condition(const std::string& row, const SourceFrontier& f) {
    const std::string snap = sql::quote_literal(f.snapshot) + "::pg_catalog.pg_snapshot";
    if (!f.own) {
        return window_condition(row, snap, "NULL::pg_catalog.xid8", "NULL::pg_catalog.int8");
    }
    return window_condition(row, snap,
                            sql::quote_literal(std::to_string(f.own->xid)) + "::pg_catalog.xid8",
                            std::to_string(f.own->command_id) + "::pg_catalog.int8");
}

namespace {
std::string upto_condition(const std::string& row, const std::string& snapshot,
                           const std::string& own_xid) {
    const std::string xid = row + "\"__pgt_xid\"";
    return "(pg_catalog.pg_visible_in_snapshot(" + xid + ", " + snapshot + ") OR " + xid +
           " OPERATOR(pg_catalog.=) " + own_xid + ") IS TRUE";
}
}  // namespace

std::string upto_condition(const std::string& row, const SourceFrontier& upto) {
    return upto_condition(
        row, sql::quote_literal(upto.snapshot) + "::pg_catalog.pg_snapshot",
        upto.own ? sql::quote_literal(std::to_string(upto.own->xid)) + "::pg_catalog.xid8"
                 : std::string("NULL::pg_catalog.xid8"));
}

std::vector<std::optional<std::string>> upto_params(const SourceFrontier& upto) {
    std::vector<std::optional<std::string>> p{upto.snapshot, std::nullopt};
    if (upto.own) {
        p[1] = std::to_string(upto.own->xid);
    }
    return p;
}

std::string upto_condition_params(const std::string& row, int first) {
    return upto_condition(row, "$" + std::to_string(first) + "::pg_catalog.pg_snapshot",
                          "$" + std::to_string(first + 1) + "::pg_catalog.xid8");
}

std::string window_condition_params(const std::string& row, int first) {
    const auto p = [&](int i, const char* type) {
        return "$" + std::to_string(first + i) + "::pg_catalog." + type;
    };
    return window_condition(row, p(0, "pg_snapshot"), p(1, "xid8"), p(2, "int8"));
}

}  // namespace pgt::frontier
