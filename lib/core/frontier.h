// Frontiers and change windows: which buffered changes a stream table has consumed, and the
// one SQL definition of the rows a refresh consumes next.
//
// Trigger capture stamps every buffer row with the writer's top-level transaction id (xid8).
// A refresh consumes by *visibility*, never by order: the frontier is the pg_snapshot of the
// previous refresh, and the next window is the rows whose transaction that snapshot did not
// see (the refresh snapshot sees them: the SQL runs under it). A refresh inside a transaction
// that itself wrote to a source also consumes that transaction's own earlier rows; a snapshot
// never lists its own transaction as running, so the frontier records it explicitly: the
// transaction counts as not seen, except for its rows written before the refresh's command
// (`own`). Its later rows are consumed by the first refresh after it commits.
//
// Pure C++: no PostgreSQL headers. Unit-tested in tests/unit/frontier_test.cpp.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace pgt::frontier {

/// A pg_snapshot: transactions below xmin are finished; xmax and above are not seen; in
/// between, the ones listed in xip were running.
struct Snapshot {
    uint64_t xmin = 0;
    uint64_t xmax = 0;
    std::vector<uint64_t> xip;  ///< sorted, unique, each in [xmin, xmax)

    /// Parses PostgreSQL's text form "xmin:xmax:xip,xip,..."; throws std::invalid_argument.
    static Snapshot parse(const std::string& text);
    std::string text() const;

    /// Whether a transaction's effects are visible in this snapshot (pg_visible_in_snapshot).
    bool sees(uint64_t xid) const;

    /// The same snapshot with `xid` counted as running (not seen). A snapshot taken inside a
    /// transaction leaves that transaction out of xip; the frontier must not.
    Snapshot with_running(uint64_t xid) const;
};

/// Rows of the refreshing transaction's own writes that a refresh consumed: those of
/// `xid` whose buffer row was inserted by a command before `command_id` (the row's cmin).
struct OwnWrites {
    uint64_t xid = 0;
    uint32_t command_id = 0;
    bool operator==(const OwnWrites& o) const { return xid == o.xid && command_id == o.command_id; }
    bool operator!=(const OwnWrites& o) const { return !(*this == o); }
};

/// Where consumption of one source's buffer stands.
struct SourceFrontier {
    std::string snapshot;  ///< pg_snapshot text
    std::optional<OwnWrites> own;
    /// Per-node positions for sources read from logical replication slots (Citus workers):
    /// node id -> last LSN written into the buffer, as "X/X". Empty for trigger capture.
    std::map<std::string, std::string> node_lsn;
};

/// A stream table's frontier: cluster identity and one entry per captured source, keyed by
/// the source's stable name (its OID on 0.31.0 catalogs). Stored as jsonb in
/// pgt_stream_tables.frontier (format 2; format 1 had only "snapshot" per source).
struct Frontier {
    std::string sysid;  ///< the cluster's system identifier
    std::map<std::string, SourceFrontier> sources;

    /// Parses the stored jsonb text; throws std::invalid_argument on a malformed document.
    static Frontier parse(const std::string& json_text);
    std::string json() const;

    /// The snapshot every source is at, or nullopt when sources differ or there are none
    /// (then the next refresh must be a full one).
    std::optional<SourceFrontier> common() const;
};

/// The SQL parameters a window condition reads, in order: the frontier snapshot, the own
/// transaction's xid and command id (NULL when none).
std::vector<std::optional<std::string>> window_params(const SourceFrontier& f);

/// The one definition of a change window: an SQL condition over a buffer row (columns
/// prefixed by `row`, e.g. "b." or "") that is true for rows written by transactions the
/// frontier did not see. `snapshot`, `own_xid`, `own_cid` are SQL expressions of types
/// pg_snapshot, xid8 and bigint (parameters such as "$1" or literals).
std::string window_condition(const std::string& row, const std::string& snapshot,
                             const std::string& own_xid, const std::string& own_cid);

/// window_condition with the frontier's values inlined as literals.
std::string window_condition(const std::string& row, const SourceFrontier& f);

/// window_condition over parameters $first, $first+1, $first+2 (see window_params).
std::string window_condition_params(const std::string& row, int first);

/// The refresh's side of its window: an SQL condition over a buffer row that is true when
/// the refresh at point `upto` (its snapshot, its own transaction listed as running; its own
/// writes) consumes it: its transaction is visible in that snapshot, or is the refresh's own.
/// A trigger-captured row is visible to the refresh only then anyway (its writer inserted
/// it). A row drained from this server's slot carries its writer's id, and is visible to the
/// refresh that drained it also when its writer committed after the snapshot: it waits for
/// the next refresh, which is what keeps a delta's reads of the source and the buffer at one
/// point in time.
std::string upto_condition(const std::string& row, const SourceFrontier& upto);
/// The SQL parameters upto_condition_params reads: the snapshot, the own transaction's xid.
std::vector<std::optional<std::string>> upto_params(const SourceFrontier& upto);
/// upto_condition over parameters $first (pg_snapshot) and $first+1 (xid8, NULL when none).
std::string upto_condition_params(const std::string& row, int first);

}  // namespace pgt::frontier
